"""4-bit NF4/FP4 quantization and the 4-bit inference matmul (gemv_4bit)."""

from math import prod
from typing import Optional

import torch

from .._formats import (
    BLOCKSIZES,
    FOURBIT_STORAGE_DTYPES,
    NESTED_BLOCKSIZE,
    blocksize_error,
    float_dtype_error,
    packed_4bit_storage_elements,
    quant_type_error,
    require_valid,
)
from .blockwise import _denested_absmax, _nested_offset, quantize_blockwise
from .codebooks import get_4bit_type
from .quant_state import QuantState

# The names these constants have always had in bitsandbytes.functional.
FOURBIT_BLOCKSIZES = BLOCKSIZES["quantize_4bit"]
NESTED_4BIT_BLOCKSIZE = NESTED_BLOCKSIZE


def _check_4bit_arguments(op: str, blocksize, quant_type: str, dtype: torch.dtype) -> None:
    """The op's own checks, raised before any statistics are nested or de-nested."""
    require_valid(blocksize_error(op, blocksize))
    require_valid(quant_type_error(quant_type))
    require_valid(float_dtype_error(op, dtype))


def check_packed_4bit_data(data, quant_state: QuantState, key: str = "weight", device=None) -> None:
    """Rejects `data` that is not the packed storage `quant_state` describes (a corrupt or mismatched checkpoint).

    Only the layout quantize_4bit writes, ``[elements, 1]`` of a storage dtype, is
    accepted: a tensor of any other size is something else (a float weight, packed
    bytes cast to another dtype) whose bytes would be read as 4-bit codes.
    """
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"{key}: expected a tensor, got {type(data).__name__}")
    if quant_state.quant_type is None or quant_state.shape is None:
        raise ValueError(f"{key}: its statistics are not those of a 4-bit tensor (no quant_type or shape)")
    if data.dtype not in FOURBIT_STORAGE_DTYPES:
        raise ValueError(f"{key}: 4-bit codes are stored as {', '.join(map(str, FOURBIT_STORAGE_DTYPES))}, "
                         f"got {data.dtype}")
    values = prod(quant_state.shape)
    expected = (packed_4bit_storage_elements(values, data.dtype), 1)
    if tuple(data.shape) != expected:
        raise ValueError(f"{key}: expected the packed {data.dtype} storage of shape {expected} for the "
                         f"{values} 4-bit values of shape {list(quant_state.shape)}, got {tuple(data.shape)}")
    if data.is_meta and device is not None and torch.device(device).type != "meta":
        raise ValueError(f"{key}: is on the meta device (it holds no data) and cannot be moved to {device}")


def quantize_4bit(
    A: torch.Tensor,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    compress_statistics=False,
    quant_type="fp4",
    quant_storage=torch.uint8,
) -> tuple[torch.Tensor, QuantState]:
    """Quantizes A to packed 4-bit codes (two per byte) with one absmax per block.

    Returns the packed storage ``[(n + 1) // (2 * itemsize), 1]`` of dtype
    quant_storage and the QuantState. compress_statistics=True quantizes the
    absmax once more: its mean is subtracted and the rest is quantized 8-bit
    blockwise (blocksize 256, signed dynamic map). blocksize None means 64.
    """
    if blocksize is None:
        blocksize = 64
    _check_4bit_arguments("quantize_4bit", blocksize, quant_type, A.dtype)
    packed, block_absmax = torch.ops.bitsandbytes.quantize_4bit.default(A, blocksize, quant_type, quant_storage)
    code = get_4bit_type(quant_type, device=A.device)

    if compress_statistics:
        offset = _nested_offset(block_absmax)
        quantized_absmax, state2 = quantize_blockwise(block_absmax - offset, blocksize=NESTED_4BIT_BLOCKSIZE)
        state = QuantState(
            absmax=quantized_absmax,
            shape=A.shape,
            dtype=A.dtype,
            blocksize=blocksize,
            code=code,
            quant_type=quant_type,
            offset=offset,
            state2=state2,
        )
    else:
        state = QuantState(
            absmax=block_absmax, shape=A.shape, dtype=A.dtype, blocksize=blocksize, code=code, quant_type=quant_type
        )

    if out is not None:
        packed = out.copy_(packed)
    if absmax is not None:
        state.absmax = absmax.copy_(state.absmax)
    return packed, state


def quantize_fp4(
    A: torch.Tensor,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    compress_statistics=False,
    quant_storage=torch.uint8,
):
    return quantize_4bit(A, absmax, out, blocksize, compress_statistics, "fp4", quant_storage)


def quantize_nf4(
    A: torch.Tensor,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    compress_statistics=False,
    quant_storage=torch.uint8,
):
    return quantize_4bit(A, absmax, out, blocksize, compress_statistics, "nf4", quant_storage)


def dequantize_4bit(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    quant_type="fp4",
) -> torch.Tensor:
    """Dequantizes packed 4-bit codes to quant_state.dtype and quant_state.shape.

    Without a quant_state, `absmax` and `out` describe it (shape and dtype from
    `out`). A packed weight passed transposed (``A.shape[0] == 1``) gives a
    transposed result, as upstream does for backward compatibility.
    """
    if blocksize is None:
        blocksize = 64
    if quant_state is None:
        if absmax is None or out is None:
            raise ValueError("dequantize_4bit requires both absmax and out when quant_state is not provided")
        quant_state = QuantState(
            absmax=absmax, shape=out.shape, dtype=out.dtype, blocksize=blocksize, quant_type=quant_type
        )
    _check_4bit_arguments("dequantize_4bit", quant_state.blocksize, quant_state.quant_type, quant_state.dtype)

    block_absmax = _denested_absmax(quant_state)
    shape = list(quant_state.shape)
    if out is not None:
        torch.ops.bitsandbytes.dequantize_4bit.out(
            A, block_absmax, quant_state.blocksize, quant_state.quant_type, shape, quant_state.dtype, out=out
        )
    else:
        out = torch.ops.bitsandbytes.dequantize_4bit.default(
            A, block_absmax, quant_state.blocksize, quant_state.quant_type, shape, quant_state.dtype
        )
    if A.shape[0] == 1:
        return out.t()
    return out


def dequantize_fp4(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
) -> torch.Tensor:
    return dequantize_4bit(A, quant_state, absmax, out, blocksize, "fp4")


def dequantize_nf4(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
) -> torch.Tensor:
    return dequantize_4bit(A, quant_state, absmax, out, blocksize, "nf4")


def gemv_4bit(
    A: torch.Tensor,
    B: torch.Tensor,
    out: Optional[torch.Tensor] = None,
    transposed_A=False,
    transposed_B=False,
    state: Optional[QuantState] = None,
) -> torch.Tensor:
    """A @ W.T for a packed 4-bit weight W described by `state` (upstream's gemv_4bit).

    A holds one row (or a few) of length K = state.shape[1]; B is the packed weight
    in its [X, 1] or transposed [1, X] form. The transposed flags are accepted for
    compatibility and ignored, as upstream does.
    """
    if state is None:
        raise ValueError("state cannot be None. gemv_4bit() requires the state from quantize_4bit()")
    absmax = _denested_absmax(state)
    shape = list(state.shape)
    if out is not None:
        torch.ops.bitsandbytes.gemv_4bit.out(A, B, shape, absmax, state.code, state.blocksize, out=out)
        return out
    return torch.ops.bitsandbytes.gemv_4bit.default(A, B, shape, absmax, state.code, state.blocksize)
