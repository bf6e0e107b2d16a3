"""Argument checks of the pure-torch kernels: ValueError, as the native glue raises.

The rules and messages of the formats come from bitsandbytes._formats; the ones
here concern the tensors a kernel receives.
"""

from typing import Sequence

import torch

from ...._formats import CODE_SIZE, blocks_of


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_same_device(tensor: torch.Tensor, name: str, device: torch.device) -> None:
    require(tensor.device == device, f"{name} must be on {device} like A, got {tensor.device}")


def check_code(code: torch.Tensor, device: torch.device) -> None:
    require(code.dtype == torch.float32, f"code must be float32, got {code.dtype}")
    require(code.numel() == CODE_SIZE, f"code must have {CODE_SIZE} entries, got {code.numel()}")
    check_same_device(code, "code", device)


def check_absmax(absmax: torch.Tensor, n: int, blocksize: int, device: torch.device) -> None:
    require(absmax.dtype == torch.float32, f"absmax must be float32, got {absmax.dtype}")
    check_same_device(absmax, "absmax", device)
    blocks = blocks_of(n, blocksize)
    require(
        absmax.numel() >= blocks,
        f"absmax must have at least {blocks} entries for {n} elements, got {absmax.numel()}",
    )


def check_out(out: torch.Tensor, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> None:
    require(out.dtype == dtype, f"out must be {dtype}, got {out.dtype}")
    require(tuple(out.shape) == tuple(shape), f"out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    check_same_device(out, "out", device)
