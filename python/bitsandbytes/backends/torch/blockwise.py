"""Pure-torch blockwise 8-bit quantization: codes into a 256-entry map, one absmax per block."""

import torch

from ..._formats import CODE_SIZE, blocksize_error, float_dtype_error, require_valid
from .common.blocks import scale_by_block, scaled_blocks
from .common.cuda_fast_math import canonical_nan
from .common.checks import check_absmax, check_code, check_out, require


def search_code(
    code: torch.Tensor, s: torch.Tensor, lower_start: float = -1.0, substitute_ends: bool = True
) -> torch.Tensor:
    """Upstream's code search (dQuantize) for every element of s; returns int64 indices.

    A 7-step binary descent from pivot 127 remembers the last pivots below and
    above s, then chooses between the final pivot and that neighbour by their
    float32 midpoint. NaN compares false everywhere and lands on index 0.
    The 8-bit optimizers' requantization (formats.md 6.0) starts the lower value at
    0.0 for the unsigned map and keeps the start values when the descent never
    replaced them (``substitute_ends=False``); quantize_blockwise substitutes the
    code's end values.
    """
    pivot = torch.full_like(s, 127, dtype=torch.int64)
    lower_pivot = torch.zeros_like(pivot)
    upper_pivot = torch.full_like(pivot, CODE_SIZE - 1)
    lower = torch.full_like(s, lower_start)
    upper = torch.full_like(s, 1.0)
    value = code[pivot]
    for step in (64, 32, 16, 8, 4, 2, 1):
        above = s > value
        lower_pivot = torch.where(above, pivot, lower_pivot)
        lower = torch.where(above, value, lower)
        upper_pivot = torch.where(above, upper_pivot, pivot)
        upper = torch.where(above, upper, value)
        pivot = torch.where(above, pivot + step, pivot - step)
        value = code[pivot]
    if substitute_ends:
        upper = torch.where(upper_pivot == CODE_SIZE - 1, code[CODE_SIZE - 1], upper)
        lower = torch.where(lower_pivot == 0, code[0], lower)
    go_up = s > (upper + value) * 0.5
    go_down = s < (lower + value) * 0.5
    return torch.where(
        s > value,
        torch.where(go_up, upper_pivot, pivot),
        torch.where(go_down, lower_pivot, pivot),
    )


def quantize_blockwise(A: torch.Tensor, code: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    require_valid(float_dtype_error("quantize_blockwise", A.dtype))
    require_valid(blocksize_error("quantize_blockwise", blocksize, A.device.type))
    check_code(code, A.device)
    scaled, absmax = scaled_blocks(A, blocksize)
    out = search_code(code.reshape(-1), scaled).to(torch.uint8).reshape(A.shape)
    return out, absmax


def _dequantized_values(
    A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype
) -> torch.Tensor:
    require(A.dtype == torch.uint8, f"A must be uint8, got {A.dtype}")
    require_valid(float_dtype_error("dequantize_blockwise", dtype))
    require_valid(blocksize_error("dequantize_blockwise", blocksize, A.device.type))
    check_code(code, A.device)
    check_absmax(absmax, A.numel(), blocksize, A.device)
    values = code.reshape(-1)[A.reshape(-1).long()]
    return canonical_nan(scale_by_block(values, absmax, blocksize).to(dtype)).reshape(A.shape)


def dequantize_blockwise(
    A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype
) -> torch.Tensor:
    return _dequantized_values(A, absmax, code, blocksize, dtype)


def dequantize_blockwise_out(
    A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype, out: torch.Tensor
) -> None:
    check_out(out, A.shape, dtype, A.device)
    out.copy_(_dequantized_values(A, absmax, code, blocksize, dtype))


KERNELS = {
    "quantize_blockwise": quantize_blockwise,
    "dequantize_blockwise": dequantize_blockwise,
    "dequantize_blockwise.out": dequantize_blockwise_out,
}
