"""Upstream's AVX512-BF16 layout of 4-bit weights for CPU inference (python_api.md section 2.8).

Upstream's CPU library has a gemv kernel for machines with AVX512-BF16 that reads
a re-tiled weight: ``Linear4bit`` converts its weight to that layout in eval mode
and back at every boundary (state dict, move to a GPU). Our native library reads
the standard layout on every CPU, so ``has_avx512bf16()`` is False and our
modules never convert; the conversions are kept, exact, for code that calls them.

The layout: the codes of a ``[N, K]`` weight are cut into tiles of ``block_n``
rows and two columns; the tiles of one group of rows are laid out column pair by
column pair, and every 64 consecutive codes are stored as 32 bytes whose low
nibble holds one of the first 32 codes and whose high nibble the code 32 places
later. The absmax is de-nested and kept as bfloat16 ``[K / blocksize, N]``.
"""

import torch

from ..cextension import lib
from .blockwise import _denested_absmax, _nested_offset, quantize_blockwise
from .quant_state import QuantState

_NIBBLES_PER_BYTE_GROUP = 32  # 64 codes -> 32 bytes: low nibbles, then high nibbles
_NESTED_ABSMAX_BLOCKSIZE = 256


def has_avx512bf16() -> bool:
    """Whether the native library has upstream's AVX512-BF16 kernel for the packed CPU layout.

    Asked of the library (``lib.has_avx512bf16_cpu``), as upstream does: ours has no
    such kernel (its CPU kernels read the standard layout at full speed), so the
    answer is False on every machine and ``Linear4bit`` keeps the standard layout.
    """
    try:
        return bool(lib.has_avx512bf16_cpu())
    except (AttributeError, RuntimeError, OSError):
        return False


def _unpack_codes(packed_bytes: torch.Tensor) -> torch.Tensor:
    """4-bit codes of a packed byte tensor, element 2i from the high nibble of byte i."""
    flat = packed_bytes.reshape(-1)
    return torch.stack([flat >> 4, flat & 0xF], dim=1).reshape(-1)


def _pack_codes(codes: torch.Tensor) -> torch.Tensor:
    pairs = codes.reshape(-1, 2)
    return (pairs[:, 0] << 4) | pairs[:, 1]


def _check_weight_shape(N: int, K: int, block_n: int, argument: str) -> None:
    if not isinstance(block_n, int) or block_n <= 0:
        raise ValueError(f"block_n must be a positive int, got {block_n!r}")
    if N % block_n != 0:
        raise ValueError(f"{argument}: N={N} must be divisible by block_n={block_n}")
    if K % 2 != 0:
        raise ValueError(f"{argument}: K={K} must be even")
    if (N * K) % (2 * _NIBBLES_PER_BYTE_GROUP) != 0:
        raise ValueError(f"{argument}: N*K={N * K} must be a multiple of 64")


def _convert_weight_packed_for_cpu(qweight: torch.Tensor, quant_state: QuantState, block_n: int = 32):
    """Re-tiles a packed 4-bit weight ``[N*K/2, 1]`` to ``[N, K/2]`` uint8; converts `quant_state` in place.

    Returns ``(packed, quant_state)``. The state records what the inverse needs:
    ``original_dtype``, ``original_nested``, ``original_qshape`` and, for a weight
    stored in another dtype than uint8, ``original_storage_type``.
    """
    if not isinstance(quant_state, QuantState) or quant_state.shape is None or len(quant_state.shape) != 2:
        raise ValueError("quant_state must be the QuantState of a 2-D weight [N, K]")
    if getattr(quant_state, "packing_format_for_cpu", False):
        raise ValueError("quant_state is already in the packed CPU format")
    N, K = quant_state.shape
    _check_weight_shape(N, K, block_n, "quant_state.shape")
    if K % quant_state.blocksize != 0:
        raise ValueError(f"quant_state.shape: K={K} must be a multiple of the blocksize {quant_state.blocksize}")
    if qweight.numel() * qweight.element_size() != N * K // 2:
        raise ValueError(f"qweight holds {qweight.numel() * qweight.element_size()} bytes; a 4-bit [{N}, {K}] "
                         f"weight takes {N * K // 2}")

    if qweight.dtype != torch.uint8:
        quant_state.original_storage_type = qweight.dtype
        qweight = qweight.view(torch.uint8)
    quant_state.original_dtype = quant_state.dtype
    quant_state.original_nested = quant_state.nested
    quant_state.original_qshape = qweight.shape

    codes = _unpack_codes(qweight).reshape(N // block_n, block_n, K // 2, 2).transpose(1, 2)
    groups = codes.reshape(-1, 2, _NIBBLES_PER_BYTE_GROUP)
    packed = ((groups[:, 1] << 4) | groups[:, 0]).reshape(N, K // 2)

    absmax = _denested_absmax(quant_state)
    quant_state.nested = False
    quant_state.state2 = None
    quant_state.absmax = absmax.reshape(N, K // quant_state.blocksize).T.to(torch.bfloat16).contiguous()
    quant_state.dtype = torch.bfloat16
    quant_state.packing_format_for_cpu = True
    return packed, quant_state


def _convert_weight_packed_for_cpu_inverse(packed_weight: torch.Tensor, quant_state: QuantState, block_n: int = 32):
    """Undoes :func:`_convert_weight_packed_for_cpu`: the standard packed weight and state, in place.

    The bytes come back exactly; the absmax went through bfloat16 and comes back
    rounded (re-nested with a fresh offset when it was nested), as in upstream.
    """
    if not getattr(quant_state, "packing_format_for_cpu", False):
        raise ValueError("quant_state is not in the packed CPU format (see _convert_weight_packed_for_cpu)")
    if packed_weight.dtype != torch.uint8 or packed_weight.dim() != 2:
        raise ValueError(f"packed_weight must be a 2-D uint8 tensor [N, K/2], got {packed_weight.dtype} "
                         f"{tuple(packed_weight.shape)}")
    N, K = packed_weight.shape[0], packed_weight.shape[1] * 2
    _check_weight_shape(N, K, block_n, "packed_weight")

    groups = packed_weight.reshape(-1, _NIBBLES_PER_BYTE_GROUP)
    codes = torch.stack([groups & 0xF, groups >> 4], dim=1)
    codes = codes.reshape(N // block_n, K // 2, block_n, 2).transpose(1, 2).reshape(-1)
    qweight = _pack_codes(codes).reshape(quant_state.original_qshape)

    absmax = quant_state.absmax.T.reshape(-1).float()
    if quant_state.original_nested:
        offset = _nested_offset(absmax)
        quant_state.absmax, quant_state.state2 = quantize_blockwise(absmax - offset,
                                                                    blocksize=_NESTED_ABSMAX_BLOCKSIZE)
        quant_state.offset = offset
        quant_state.nested = True
    else:
        quant_state.absmax = absmax
    quant_state.dtype = quant_state.original_dtype
    quant_state.packing_format_for_cpu = False
    storage_type = getattr(quant_state, "original_storage_type", None)
    if storage_type is not None:
        qweight = qweight.view(storage_type)
    return qweight, quant_state
