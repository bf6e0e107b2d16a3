"""Pure-torch 4-bit quantization: NF4 and FP4 codes, two per byte, one absmax per block.

Codebooks and thresholds come from the native library, never retyped here.
"""

import functools
from math import prod
from typing import Sequence

import torch

from ... import _C
from ..._formats import blocksize_error, float_dtype_error, quant_type_error, require_valid
from .common.blocks import scale_by_block, scaled_blocks
from .common.cuda_fast_math import canonical_nan
from .common.checks import check_absmax, check_out, require


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
    require_valid(quant_type_error(quant_type))
    require_valid(float_dtype_error("quantize_4bit", A.dtype))
    require_valid(blocksize_error("quantize_4bit", blocksize))
    scaled, absmax = scaled_blocks(A, blocksize)
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


def _dequantized_values(
    A: torch.Tensor,
    absmax: torch.Tensor,
    blocksize: int,
    quant_type: str,
    shape: Sequence[int],
    dtype: torch.dtype,
) -> torch.Tensor:
    require_valid(quant_type_error(quant_type))
    require_valid(float_dtype_error("dequantize_4bit", dtype))
    require_valid(blocksize_error("dequantize_4bit", blocksize))
    require(all(size >= 0 for size in shape), f"shape must not contain negative sizes, got {list(shape)}")
    n = prod(shape)
    check_absmax(absmax, n, blocksize, A.device)
    # Packed storage of any dtype is read as its bytes.
    packed_bytes = A.contiguous().reshape(-1).view(torch.uint8)
    needed = (n + 1) // 2
    require(
        packed_bytes.numel() >= needed,
        f"A holds {packed_bytes.numel()} bytes, but shape {list(shape)} needs {needed}",
    )
    codes = unpack_4bit(packed_bytes[:needed], n)
    values = _dequantization_values(quant_type, A.device)[codes.long()]
    return canonical_nan(scale_by_block(values, absmax, blocksize).to(dtype)).reshape(shape)


def dequantize_4bit(
    A: torch.Tensor, absmax: torch.Tensor, blocksize: int, quant_type: str, shape: Sequence[int], dtype: torch.dtype
) -> torch.Tensor:
    return _dequantized_values(A, absmax, blocksize, quant_type, shape, dtype)


def dequantize_4bit_out(
    A: torch.Tensor,
    absmax: torch.Tensor,
    blocksize: int,
    quant_type: str,
    shape: Sequence[int],
    dtype: torch.dtype,
    out: torch.Tensor,
) -> None:
    check_out(out, shape, dtype, A.device)
    out.copy_(_dequantized_values(A, absmax, blocksize, quant_type, shape, dtype))


KERNELS = {
    "quantize_4bit": quantize_4bit,
    "dequantize_4bit": dequantize_4bit,
    "dequantize_4bit.out": dequantize_4bit_out,
}
