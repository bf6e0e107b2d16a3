"""AdEMAMix (python_api.md 5.4, formats.md 6.2, 7 and 8.3): Adam's two moments plus a slow
EMA m2 of the gradient, mixed in with weight alpha. state1 stacks m1 and m2 as
``(2, *p.shape)`` (absmax1 ``(2, blocks)`` for 8-bit); state2 is the second moment.
"""

import math
from collections.abc import Iterable
from typing import Literal, Optional

import torch

from bitsandbytes.optim.optimizer import Optimizer2State


class _ReferenceAdEMAMix(torch.optim.Optimizer):
    """AdEMAMix in plain PyTorch (float math, per-group step counter), the tests' reference."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        t_beta3: Optional[int] = None,
        t_alpha: Optional[int] = None,
    ):
        defaults = dict(
            lr=lr, betas=betas, alpha=alpha, eps=eps, weight_decay=weight_decay, t_beta3=t_beta3, t_alpha=t_alpha
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
            step = group["step"]
            beta1, beta2, _ = group["betas"]
            beta3, alpha = scheduled_beta3_alpha(group["betas"], group["alpha"], group["t_alpha"], group["t_beta3"],
                                                 step)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["m1_m2"] = p.new_zeros((2, *p.size()))
                    state["nu"] = torch.zeros_like(p)
                m1, m2, nu = state["m1_m2"][0], state["m1_m2"][1], state["nu"]
                m1.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                m2.mul_(beta3).add_(p.grad, alpha=1 - beta3)
                nu.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denominator = (nu.sqrt() / math.sqrt(1 - beta2**step)).add(group["eps"])
                update = (m1 / (1 - beta1**step) + alpha * m2) / denominator
                update.add_(p, alpha=group["weight_decay"])
                p.add_(-group["lr"] * update)
        return loss


def scheduled_beta3_alpha(betas, alpha, t_alpha, t_beta3, step: int) -> tuple[float, float]:
    """beta3 and alpha at this step: linear warm-up of alpha over t_alpha steps and the
    beta1 -> beta3 interpolation of half-lives over t_beta3 steps (in float64)."""
    beta1, beta3 = betas[0], betas[2]
    alpha_t = min(step * alpha / t_alpha, alpha) if t_alpha else alpha
    if not t_beta3:
        return beta3, alpha_t
    ln_beta1, ln_beta3 = math.log(beta1), math.log(beta3)
    progress = step / t_beta3
    beta3_t = min(math.exp((ln_beta1 * ln_beta3) / ((1 - progress) * ln_beta3 + progress * ln_beta1)), beta3)
    return beta3_t, alpha_t


class _AdEMAMixState:
    """The double-buffered state1 and the schedules, shared by AdEMAMix and AdEMAMix32bit."""

    def _state1_shape(self, p) -> tuple:
        return (2, *p.shape)

    def _scheduled_beta3_alpha(self, config, step: int) -> tuple[float, float]:
        return scheduled_beta3_alpha(config["betas"], config["alpha"], config["t_alpha"], config["t_beta3"], step)

    def _get_state_double_buffer(self, p, dtype=torch.float32):
        return self._state_buffer(p, (2, *p.shape), dtype)


class AdEMAMix(_AdEMAMixState, Optimizer2State):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha: Optional[int] = None,
        t_beta3: Optional[int] = None,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        optim_bits: Literal[8, 32] = 32,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ):
        """AdEMAMix with 32- or 8-bit states.

        Arguments:
            betas: (beta1, beta2, beta3), beta3 the slow EMA's.
            alpha: weight of the slow EMA.
            t_alpha, t_beta3: warm-up lengths of alpha and beta3 (None: no schedule).
        """
        super().__init__(
            "ademamix", params=params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            optim_bits=optim_bits, args=None, min_8bit_size=min_8bit_size, is_paged=is_paged, alpha=alpha,
            t_alpha=t_alpha, t_beta3=t_beta3,
        )


class AdEMAMix8bit(AdEMAMix):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha: Optional[int] = None,
        t_beta3: Optional[int] = None,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ):
        """AdEMAMix with 8-bit states."""
        super().__init__(
            params, lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
            weight_decay=weight_decay, optim_bits=8, min_8bit_size=min_8bit_size, is_paged=is_paged,
        )


class PagedAdEMAMix8bit(AdEMAMix8bit):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha: Optional[int] = None,
        t_beta3: Optional[int] = None,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        min_8bit_size: int = 4096,
    ):
        """AdEMAMix with paged 8-bit states."""
        super().__init__(
            params, lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
            weight_decay=weight_decay, min_8bit_size=min_8bit_size, is_paged=True,
        )


class PagedAdEMAMix(AdEMAMix):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha: Optional[int] = None,
        t_beta3: Optional[int] = None,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        optim_bits: Literal[8, 32] = 32,
        min_8bit_size: int = 4096,
    ):
        """AdEMAMix with paged states."""
        super().__init__(
            params, lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
            weight_decay=weight_decay, optim_bits=optim_bits, min_8bit_size=min_8bit_size, is_paged=True,
        )


class AdEMAMix32bit(_AdEMAMixState, Optimizer2State):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha: Optional[int] = None,
        t_beta3: Optional[int] = None,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ):
        """AdEMAMix with 32-bit states. Upstream allocates a p-shaped state1 here, which the
        ademamix kernels overrun (python_api.md 5.4); this one allocates the double buffer."""
        super().__init__(
            "ademamix", params=params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, optim_bits=32,
            args=None, min_8bit_size=min_8bit_size, is_paged=is_paged, alpha=alpha, t_alpha=t_alpha,
            t_beta3=t_beta3,
        )


class PagedAdEMAMix32bit(AdEMAMix32bit):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha: Optional[int] = None,
        t_beta3: Optional[int] = None,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        min_8bit_size: int = 4096,
    ):
        """AdEMAMix with paged 32-bit states."""
        super().__init__(
            params, lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
            weight_decay=weight_decay, min_8bit_size=min_8bit_size, is_paged=True,
        )
