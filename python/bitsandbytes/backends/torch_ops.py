"""Pure-torch blockwise 8-bit and 4-bit (NF4/FP4) quantization.

This is the implementation for every device without native kernels (registered
under the "default" key, i.e. CompositeExplicitAutograd, so the native CPU and
CUDA registrations win) and the readable reference the tests compare the native
kernels against. It follows upstream's CUDA rounding rules of formats.md sections
2 and 3 step by step, so its bytes equal upstream's on every device:

1. absmax of each block in float32, NaN ignored, subnormals flushed;
2. r = rcp.approx.ftz(absmax), then s = x * r (ftz);
3. 8-bit: upstream's binary code search; 4-bit: strict comparisons with the
   thresholds of src/codebooks.h;
4. dequantization: one float32 multiply (ftz), one rounding to the output dtype.

Codebooks and thresholds come from the native library, never retyped here.
"""

import functools
from math import prod
from typing import Sequence

import torch

from .. import _C
from .._ops import FLOAT_DTYPES, FOURBIT_BLOCKSIZES, FOURBIT_QUANT_TYPES, blocks_of
from .cuda_fast_math import flush_denormal, ftz_mul, rcp_approx_ftz

# The C ABI's accepted blocksizes (src/ops/blockwise.cpp): quantization as upstream's
# CUDA kernel; dequantization any power of two that some quantizer produces.
BLOCKWISE_QUANTIZE_BLOCKSIZES = (64, 128, 256, 512, 1024, 2048, 4096)
BLOCKWISE_DEQUANTIZE_BLOCKSIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CODE_SIZE = 256


# ---- constants from the native library -----------------------------------------------


@functools.lru_cache(maxsize=None)
def _float32_on(name: str, device: torch.device, kind: str) -> torch.Tensor:
    values = _C.codebook(name) if kind == "codebook" else _C.quantize_thresholds(name)
    return torch.tensor(values, dtype=torch.float32, device=device)


def codebook(name: str, device: torch.device) -> torch.Tensor:
    """A native codebook ("dynamic_signed", "dynamic_unsigned", "nf4", "fp4") on `device`."""
    return _float32_on(name, torch.device(device), "codebook")


def _thresholds(quant_type: str, device: torch.device) -> torch.Tensor:
    return _float32_on(quant_type, torch.device(device), "thresholds")


@functools.lru_cache(maxsize=None)
def _fp4_magnitude_order(device: torch.device) -> torch.Tensor:
    # Codes 0..7 are the FP4 magnitudes in bit-pattern order; the k-th smallest
    # magnitude is the one chosen above the (k-1)-th threshold.
    return torch.argsort(codebook("fp4", device)[:8]).to(torch.uint8)


def _dequantization_values(quant_type: str, device: torch.device) -> torch.Tensor:
    """Value of each 4-bit code as the kernels decode it."""
    table = codebook(quant_type, device)
    if quant_type == "fp4":
        # The sign applies to zero too: code 8 decodes to -0.0, unlike the codebook's +0.
        magnitudes = table[:8]
        table = torch.cat([magnitudes, -magnitudes])
    return table


# ---- eager argument checks (ValueError, as the native glue raises) ---------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_same_device(tensor: torch.Tensor, name: str, device: torch.device) -> None:
    _require(tensor.device == device, f"{name} must be on {device} like A, got {tensor.device}")


def _check_code(code: torch.Tensor, device: torch.device) -> None:
    _require(code.dtype == torch.float32, f"code must be float32, got {code.dtype}")
    _require(code.numel() == CODE_SIZE, f"code must have {CODE_SIZE} entries, got {code.numel()}")
    _check_same_device(code, "code", device)


def _check_absmax(absmax: torch.Tensor, n: int, blocksize: int, device: torch.device) -> None:
    _require(absmax.dtype == torch.float32, f"absmax must be float32, got {absmax.dtype}")
    _check_same_device(absmax, "absmax", device)
    blocks = blocks_of(n, blocksize)
    _require(
        absmax.numel() >= blocks,
        f"absmax must have at least {blocks} entries for {n} elements, got {absmax.numel()}",
    )


def _check_blocksize(blocksize: int, allowed: Sequence[int]) -> None:
    _require(blocksize in allowed, f"invalid blocksize {blocksize}: must be one of {tuple(allowed)}")


def _check_quant_type(quant_type: str) -> None:
    _require(quant_type in FOURBIT_QUANT_TYPES, f"quant_type must be 'nf4' or 'fp4', got {quant_type!r}")


def _check_out(out: torch.Tensor, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> None:
    _require(out.dtype == dtype, f"out must be {dtype}, got {out.dtype}")
    _require(tuple(out.shape) == tuple(shape), f"out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    _check_same_device(out, "out", device)


# ---- shared steps ---------------------------------------------------------------------------


def _scaled_blocks(A: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-2: the float32 absmax of each block and s = x * rcp(absmax), flat."""
    values = A.reshape(-1).to(torch.float32)  # fp16/bf16 widen exactly
    n = values.numel()
    blocks = blocks_of(n, blocksize)
    # Zeros never change a block's absmax, so the partial last block is padded with them.
    padded = torch.nn.functional.pad(values, (0, blocks * blocksize - n)).view(blocks, blocksize)
    magnitudes = flush_denormal(padded).abs()
    # NaN never wins (fmaxf); an inf element makes the absmax inf.
    absmax = torch.where(torch.isnan(magnitudes), 0.0, magnitudes).amax(dim=1)
    scaled = ftz_mul(padded, rcp_approx_ftz(absmax).unsqueeze(1))
    return scaled.reshape(-1)[:n], absmax


def _per_element_scale(absmax: torch.Tensor, n: int, blocksize: int) -> torch.Tensor:
    block_of_element = torch.arange(n, device=absmax.device) // blocksize
    return absmax.reshape(-1)[block_of_element]


# ---- blockwise 8-bit ----------------------------------------------------------------------


def search_code(code: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Upstream's code search (dQuantize) for every element of s; returns int64 indices.

    A 7-step binary descent from pivot 127 remembers the last pivots below and
    above s, then chooses between the final pivot and that neighbour by their
    float32 midpoint. NaN compares false everywhere and lands on index 0.
    """
    pivot = torch.full_like(s, 127, dtype=torch.int64)
    lower_pivot = torch.zeros_like(pivot)
    upper_pivot = torch.full_like(pivot, CODE_SIZE - 1)
    lower = torch.full_like(s, -1.0)
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
    _require(
        A.dtype in FLOAT_DTYPES,
        f"Blockwise quantization only supports 16/32-bit floats, but got {A.dtype}",
    )
    _check_blocksize(blocksize, BLOCKWISE_QUANTIZE_BLOCKSIZES)
    _check_code(code, A.device)
    scaled, absmax = _scaled_blocks(A, blocksize)
    out = search_code(code.reshape(-1), scaled).to(torch.uint8).reshape(A.shape)
    return out, absmax


def _dequantize_blockwise_values(
    A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype
) -> torch.Tensor:
    _require(A.dtype == torch.uint8, f"A must be uint8, got {A.dtype}")
    _require(dtype in FLOAT_DTYPES, f"Blockwise dequantization only supports 16/32-bit floats, but got {dtype}")
    _check_blocksize(blocksize, BLOCKWISE_DEQUANTIZE_BLOCKSIZES)
    _check_code(code, A.device)
    n = A.numel()
    _check_absmax(absmax, n, blocksize, A.device)
    values = code.reshape(-1)[A.reshape(-1).long()]
    return ftz_mul(values, _per_element_scale(absmax, n, blocksize)).to(dtype).reshape(A.shape)


def dequantize_blockwise(
    A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype
) -> torch.Tensor:
    return _dequantize_blockwise_values(A, absmax, code, blocksize, dtype)


def dequantize_blockwise_out(
    A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype, out: torch.Tensor
) -> None:
    _check_out(out, A.shape, dtype, A.device)
    out.copy_(_dequantize_blockwise_values(A, absmax, code, blocksize, dtype))


# ---- 4-bit NF4 / FP4 ----------------------------------------------------------------------


def encode_4bit(s: torch.Tensor, quant_type: str) -> torch.Tensor:
    """The 4-bit code (uint8, 0..15) of each scaled value s (formats.md 3.1)."""
    if quant_type == "nf4":
        # The number of thresholds that s exceeds; NaN exceeds none (code 0).
        code = torch.zeros_like(s, dtype=torch.uint8)
        for threshold in _thresholds("nf4", s.device):
            code += s > threshold
        return code
    # FP4: sign bit for s < 0 only (so -0.0 and NaN are positive), then the
    # magnitude by the same counting over the magnitude thresholds.
    magnitude = s.abs()
    rank = torch.zeros_like(s, dtype=torch.uint8)
    for threshold in _thresholds("fp4", s.device):
        rank += magnitude > threshold
    sign = (s < 0).to(torch.uint8) << 3
    return _fp4_magnitude_order(s.device)[rank.long()] | sign


def pack_4bit(codes: torch.Tensor) -> torch.Tensor:
    """Two codes per byte, the lower flat index in the high nibble."""
    pairs = codes.view(-1, 2)
    return (pairs[:, 0] << 4) | pairs[:, 1]


def unpack_4bit(packed_bytes: torch.Tensor, n: int) -> torch.Tensor:
    """The first n codes of packed bytes, in flat order."""
    return torch.stack([packed_bytes >> 4, packed_bytes & 0x0F], dim=1).reshape(-1)[:n]


def quantize_4bit(
    A: torch.Tensor, blocksize: int, quant_type: str, quant_storage: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_quant_type(quant_type)
    _require(
        A.dtype in FLOAT_DTYPES,
        f"Blockwise 4bit quantization only supports 16/32-bit floats, but got {A.dtype}",
    )
    _check_blocksize(blocksize, FOURBIT_BLOCKSIZES)
    scaled, absmax = _scaled_blocks(A, blocksize)
    codes = encode_4bit(scaled, quant_type)
    if codes.numel() % 2:
        # The missing partner of an odd last element is the value 0.0 itself (not
        # 0.0 scaled, which is NaN in an all-zero block).
        codes = torch.cat([codes, encode_4bit(torch.zeros(1, device=A.device), quant_type)])
    packed_bytes = pack_4bit(codes)
    # Storage dtypes wider than a byte hold the same bytes; a partial last element
    # is zero-filled rather than written past the end as upstream does.
    itemsize = quant_storage.itemsize
    padding = -packed_bytes.numel() % itemsize
    packed_bytes = torch.nn.functional.pad(packed_bytes, (0, padding))
    return packed_bytes.view(quant_storage).reshape(-1, 1), absmax


def _dequantize_4bit_values(
    A: torch.Tensor,
    absmax: torch.Tensor,
    blocksize: int,
    quant_type: str,
    shape: Sequence[int],
    dtype: torch.dtype,
) -> torch.Tensor:
    _check_quant_type(quant_type)
    _require(
        dtype in FLOAT_DTYPES,
        f"Blockwise 4bit dequantization only supports 16/32-bit floats, but got {dtype}",
    )
    _check_blocksize(blocksize, FOURBIT_BLOCKSIZES)
    _require(all(size >= 0 for size in shape), f"shape must not contain negative sizes, got {list(shape)}")
    n = prod(shape)
    _check_absmax(absmax, n, blocksize, A.device)
    # Packed storage of any dtype is read as its bytes.
    packed_bytes = A.contiguous().reshape(-1).view(torch.uint8)
    needed = (n + 1) // 2
    _require(
        packed_bytes.numel() >= needed,
        f"A holds {packed_bytes.numel()} bytes, but shape {list(shape)} needs {needed}",
    )
    codes = unpack_4bit(packed_bytes[:needed], n)
    values = _dequantization_values(quant_type, A.device)[codes.long()]
    return ftz_mul(values, _per_element_scale(absmax, n, blocksize)).to(dtype).reshape(shape)


def dequantize_4bit(
    A: torch.Tensor, absmax: torch.Tensor, blocksize: int, quant_type: str, shape: Sequence[int], dtype: torch.dtype
) -> torch.Tensor:
    return _dequantize_4bit_values(A, absmax, blocksize, quant_type, shape, dtype)


def dequantize_4bit_out(
    A: torch.Tensor,
    absmax: torch.Tensor,
    blocksize: int,
    quant_type: str,
    shape: Sequence[int],
    dtype: torch.dtype,
    out: torch.Tensor,
) -> None:
    _check_out(out, shape, dtype, A.device)
    out.copy_(_dequantize_4bit_values(A, absmax, blocksize, quant_type, shape, dtype))


# ---- registration ------------------------------------------------------------------------

KERNELS = {
    "quantize_blockwise": quantize_blockwise,
    "dequantize_blockwise": dequantize_blockwise,
    "dequantize_blockwise.out": dequantize_blockwise_out,
    "quantize_4bit": quantize_4bit,
    "dequantize_4bit": dequantize_4bit,
    "dequantize_4bit.out": dequantize_4bit_out,
}


def register_default_kernels(kernels: dict = KERNELS) -> None:
    """Serve devices without a native kernel ("default" = CompositeExplicitAutograd)."""
    for name, kernel in kernels.items():
        torch.library.register_kernel(f"bitsandbytes::{name}", "default", kernel)
