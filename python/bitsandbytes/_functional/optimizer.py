"""Optimizer updates (python_api.md 2.6): argument plumbing onto the optimizer ops.

The update rules are in the kernels (formats.md sections 6 and 7); these functions keep
upstream's argument order and defaults, compute the parameter norm that update-norm
clipping needs and check that the tensors share a device.
"""

from typing import Optional, Sequence

import torch

from .devices import is_on_gpu


def optimizer_update_32bit(
    optimizer_name: str,
    g: torch.Tensor,
    p: torch.Tensor,
    state1: torch.Tensor,
    beta1: float,
    eps: float,
    step: int,
    lr: float,
    state2: Optional[torch.Tensor] = None,
    beta2: float = 0.0,
    beta3: float = 0.0,
    alpha: float = 0.0,
    weight_decay: float = 0.0,
    gnorm_scale: float = 1.0,
    unorm_vec: Optional[torch.Tensor] = None,
    max_unorm: float = 0.0,
    skip_zeros: bool = False,
) -> None:
    """One step of a 32-bit optimizer on p, in place (states float32)."""
    # Clipping scales the update relative to ||p||; upstream reads it on the host.
    param_norm = torch.norm(p.data.float()).item() if max_unorm > 0.0 else 0.0
    is_on_gpu([g, p, state1, state2, unorm_vec])
    torch.ops.bitsandbytes.optimizer_update_32bit(
        optimizer_name, g, p, state1, state2, unorm_vec, max_unorm, param_norm, beta1, beta2, beta3, alpha, eps,
        weight_decay, step, lr, gnorm_scale, skip_zeros,
    )


def optimizer_update_8bit_blockwise(
    optimizer_name: str,
    g: torch.Tensor,
    p: torch.Tensor,
    state1: torch.Tensor,
    state2: Optional[torch.Tensor],
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    step: int,
    lr: float,
    qmap1: torch.Tensor,
    qmap2: Optional[torch.Tensor],
    absmax1: torch.Tensor,
    absmax2: Optional[torch.Tensor],
    weight_decay: float = 0.0,
    gnorm_scale: float = 1.0,
    skip_zeros: bool = False,
) -> None:
    """One step of an 8-bit blockwise optimizer on p, in place (uint8 states, 256-element blocks)."""
    is_on_gpu([p, g, state1, state2, qmap1, qmap2, absmax1, absmax2])
    torch.ops.bitsandbytes.optimizer_update_8bit_blockwise(
        optimizer_name, g, p, state1, state2, beta1, beta2, beta3, alpha, eps, step, lr, qmap1, qmap2, absmax1,
        absmax2, weight_decay, gnorm_scale, skip_zeros,
    )


def optimizer_update_multi_tensor(
    optimizer_name: str,
    g: Sequence[torch.Tensor],
    p: Sequence[torch.Tensor],
    state1: Sequence[torch.Tensor],
    state2: Sequence[torch.Tensor],
    absmax1: Sequence[torch.Tensor],
    absmax2: Sequence[torch.Tensor],
    qmap1: Optional[torch.Tensor],
    qmap2: Optional[torch.Tensor],
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    step: int,
    lr: float,
    gnorm_scale: float = 1.0,
    skip_zeros: bool = False,
) -> None:
    """The update of each parameter of the lists in one call (this package's extension).

    8-bit blockwise when state1[0] is uint8, else 32-bit; state2/absmax2 are empty lists
    for one-state optimizers and the absmax lists are empty for 32-bit states. No
    update-norm clipping. The result equals one single-tensor update per parameter.
    """
    # The op checks every tensor's device; a Python scan of hundreds of lists costs
    # more than the update itself.
    torch.ops.bitsandbytes.optimizer_update_multi_tensor(
        optimizer_name, list(g), list(p), list(state1), list(state2), list(absmax1), list(absmax2), qmap1, qmap2,
        beta1, beta2, beta3, alpha, eps, weight_decay, step, lr, gnorm_scale, skip_zeros,
    )
