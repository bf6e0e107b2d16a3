"""LARS (python_api.md 5.4): op `lars`, momentum SGD whose update is scaled down to
max_unorm * ||p|| (32-bit states; the 8-bit op has no clipping), and PytorchLARS, the
same rule in plain PyTorch."""

import torch
from torch.optim import Optimizer

from bitsandbytes.optim.optimizer import Optimizer1State


def _require_momentum(momentum) -> None:
    if momentum == 0:
        raise NotImplementedError("LARS without momentum is not supported!")


class LARS(Optimizer1State):
    def __init__(
        self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, optim_bits=32, args=None,
        min_8bit_size=4096, max_unorm=0.02
    ):
        """LARS with optim_bits-bit states; dampening and nesterov are not applied (formats.md 6.3)."""
        _require_momentum(momentum)
        super().__init__(
            "lars", params, lr, (momentum, dampening), 0.0, weight_decay, optim_bits, args, min_8bit_size,
            max_unorm=max_unorm,
        )


class LARS8bit(Optimizer1State):
    def __init__(
        self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, args=None, min_8bit_size=4096,
        max_unorm=0.02
    ):
        """LARS with 8-bit states."""
        _require_momentum(momentum)
        super().__init__(
            "lars", params, lr, (momentum, dampening), 0.0, weight_decay, 8, args, min_8bit_size, max_unorm=max_unorm
        )


class LARS32bit(Optimizer1State):
    def __init__(
        self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, args=None, min_8bit_size=4096,
        max_unorm=0.02
    ):
        """LARS with 32-bit states."""
        _require_momentum(momentum)
        super().__init__(
            "lars", params, lr, (momentum, dampening), 0.0, weight_decay, 32, args, min_8bit_size,
            max_unorm=max_unorm,
        )


class PytorchLARS(Optimizer):
    """LARS in plain PyTorch: a momentum buffer and a trust-ratio clip with ||p|| (float32 parameters)."""

    def __init__(
        self, params, lr=0.01, momentum=0, dampening=0, weight_decay=0, nesterov=False, max_unorm=0.02
    ):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
            max_unorm=max_unorm,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum, max_unorm = group["momentum"], group["max_unorm"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if group["weight_decay"] != 0:
                    update = update.add(p, alpha=group["weight_decay"])
                if momentum != 0:
                    buffer = self.state[p].get("momentum_buffer")
                    if buffer is None:
                        buffer = self.state[p]["momentum_buffer"] = torch.clone(update).detach()
                    else:
                        buffer.mul_(momentum).add_(update, alpha=1 - group["dampening"])
                    update = update + buffer * momentum if group["nesterov"] else buffer
                scale = 1.0
                if max_unorm > 0.0:
                    assert p.dtype == torch.float32
                    param_norm, update_norm = torch.norm(p.detach()), torch.norm(update)
                    if update_norm > max_unorm * param_norm:
                        scale = max_unorm * param_norm / update_norm
                p.add_(update, alpha=-group["lr"] * scale)
        return loss
