"""Blockwise 8-bit quantization, and the nesting of statistics that 4-bit reuses."""

from typing import Optional

import torch

from .._formats import float_dtype_error, require_valid
from ..backends.torch.common.cuda_reduction import cuda_mean_float32
from .codebooks import _dynamic_map_on
from .quant_state import QuantState


def _nested_offset(absmax: torch.Tensor) -> torch.Tensor:
    """absmax.mean(), rounded as upstream's CUDA torch.mean rounds it, on every device.

    The last bit of this offset is stored in checkpoints; torch sums in a
    different order on the CPU, so other devices replay the CUDA order.
    """
    if absmax.device.type == "cuda":
        return absmax.mean()
    return cuda_mean_float32(absmax)


def _denested_absmax(quant_state: QuantState) -> torch.Tensor:
    """The float32 per-block absmax, de-nesting compressed statistics (formats.md 3.3)."""
    if not quant_state.nested:
        return quant_state.absmax
    absmax = dequantize_blockwise(quant_state.absmax, quant_state.state2)
    absmax += quant_state.offset
    return absmax if absmax.dtype == torch.float32 else absmax.float()


def quantize_blockwise(
    A: torch.Tensor,
    code: Optional[torch.Tensor] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=4096,
    nested=False,
) -> tuple[torch.Tensor, QuantState]:
    """Quantizes A blockwise to 8-bit indices into `code` (default: the signed dynamic map).

    Returns the uint8 codes (A's shape) and a QuantState. nested=True quantizes the
    absmax too (minus its mean, with the same blocksize). `out` / `absmax` receive
    copies of the results (legacy arguments).
    """
    if blocksize <= 0:
        raise ValueError(f"blocksize must be positive, got {blocksize}")
    require_valid(float_dtype_error("quantize_blockwise", A.dtype))
    if code is None:
        code = _dynamic_map_on(A.device)

    quantized, block_absmax = torch.ops.bitsandbytes.quantize_blockwise.default(A, code.to(A.device), blocksize)
    if nested:
        offset = _nested_offset(block_absmax)
        block_absmax -= offset
        quantized_absmax, state2 = quantize_blockwise(block_absmax, blocksize=blocksize, nested=False)
        quant_state = QuantState(
            absmax=quantized_absmax,
            code=code.to(A.device, copy=True),
            blocksize=blocksize,
            dtype=A.dtype,
            offset=offset,
            state2=state2,
        )
    else:
        quant_state = QuantState(
            absmax=block_absmax, code=code.to(A.device, copy=True), blocksize=blocksize, dtype=A.dtype
        )

    if out is not None:
        quantized = out.copy_(quantized)
    if absmax is not None:
        quant_state.absmax = absmax.copy_(quant_state.absmax)
    return quantized, quant_state


def dequantize_blockwise(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    code: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize: int = 4096,
    nested=False,
) -> torch.Tensor:
    """Dequantizes 8-bit blockwise codes: ``code[A] * absmax[block]`` in quant_state.dtype.

    Without a quant_state, `absmax` (and optionally `code`, `blocksize`) describe
    it and the output is float32. `nested` is accepted for compatibility and ignored:
    the state says whether its absmax is nested.
    """
    if quant_state is None and absmax is None:
        raise ValueError("dequantize_blockwise requires either quant_state or absmax")
    if A.dtype != torch.uint8:
        raise ValueError(f"A must be uint8, got {A.dtype}")
    if quant_state is None:
        if code is None:
            code = _dynamic_map_on(A.device)
        quant_state = QuantState(absmax=absmax, code=code, blocksize=blocksize, dtype=torch.float32)

    block_absmax = _denested_absmax(quant_state)
    code_on_device = quant_state.code.to(A.device)
    if out is not None:
        torch.ops.bitsandbytes.dequantize_blockwise.out(
            A, block_absmax, code_on_device, quant_state.blocksize, quant_state.dtype, out=out
        )
        return out
    return torch.ops.bitsandbytes.dequantize_blockwise.default(
        A, block_absmax, code_on_device, quant_state.blocksize, quant_state.dtype
    )
