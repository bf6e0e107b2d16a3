"""Pure-torch 4-bit matrix products: dequantize the weight, then one torch GEMM.

Registered under the "default" key, so it serves every device without a native
kernel (the CPU included, until it has one). It is also the reference the native
gemv/gemm kernels are tested against: `out = A @ dequant(B).T (+ bias)` with the
weight dequantized exactly (bit-identical to dequantize_4bit) and the product
done by torch in A's dtype.
"""

from typing import Optional, Sequence

import torch

from ..._formats import NESTED_BLOCKSIZE, quant_type_error
from ..._ops import check_4bit_matmul_operands, check_format, check_nested_absmax, check_out
from .common.cuda_fast_math import canonical_nan


def _quant_type_of(code: torch.Tensor) -> str:
    # get_4bit_type("fp4")[1] is positive, get_4bit_type("nf4")[1] negative (formats.md 1.2).
    return "fp4" if code[1].item() > 0 else "nf4"


def _dequantized_weight(A, B, shapeB, absmax, blocksize, quant_type):
    return torch.ops.bitsandbytes.dequantize_4bit(B, absmax, blocksize, quant_type, list(shapeB), A.dtype)


def _matmul_checks(op, A, B, shapeB, blocksize):
    check_4bit_matmul_operands(op, A, B, blocksize)
    torch._check(len(shapeB) == 2, lambda: f"shapeB must be 2D [N, K], got {list(shapeB)}")
    torch._check(A.shape[-1] == shapeB[1], lambda: f"A inner dim ({A.shape[-1]}) must match shapeB ({shapeB[1]})")


def gemv_4bit(A: torch.Tensor, B: torch.Tensor, shapeB: Sequence[int], absmax: torch.Tensor, code: torch.Tensor,
              blocksize: int) -> torch.Tensor:
    _matmul_checks("gemv_4bit", A, B, shapeB, blocksize)
    weight = _dequantized_weight(A, B, shapeB, absmax, blocksize, _quant_type_of(code))
    return canonical_nan(torch.nn.functional.linear(A, weight))


def gemv_4bit_out(A: torch.Tensor, B: torch.Tensor, shapeB: Sequence[int], absmax: torch.Tensor, code: torch.Tensor,
                  blocksize: int, out: torch.Tensor) -> None:
    check_out(out, (*A.shape[:-1], shapeB[0]), A.device, A.dtype)
    out.copy_(gemv_4bit(A, B, shapeB, absmax, code, blocksize))


def denested_absmax(absmax: torch.Tensor, absmax_8bit: torch.Tensor, absmax_code: torch.Tensor,
                    absmax_offset: torch.Tensor) -> torch.Tensor:
    """Per-block float32 scales of nested statistics (formats.md 3.3: one multiply, then + offset)."""
    scales = torch.ops.bitsandbytes.dequantize_blockwise(
        absmax_8bit, absmax, absmax_code, NESTED_BLOCKSIZE, torch.float32
    )
    return scales + absmax_offset.to(torch.float32)


def gemm_4bit(A: torch.Tensor, B: torch.Tensor, shapeB: Sequence[int], absmax: torch.Tensor, blocksize: int,
              quant_type: str, bias: Optional[torch.Tensor] = None, absmax_8bit: Optional[torch.Tensor] = None,
              absmax_code: Optional[torch.Tensor] = None, absmax_offset: Optional[torch.Tensor] = None) -> torch.Tensor:
    _matmul_checks("gemm_4bit", A, B, shapeB, blocksize)
    torch._check(absmax.dtype == torch.float32, lambda: f"absmax must be float32, got {absmax.dtype}")
    check_format(quant_type_error(quant_type))
    if absmax_8bit is not None:
        # The eager op accepts a 16-bit offset (converted to float32), unlike the fake.
        if absmax_offset is not None and absmax_offset.dtype in (torch.float16, torch.bfloat16):
            absmax_offset = absmax_offset.to(torch.float32)
        check_nested_absmax(absmax_8bit, absmax_code, absmax_offset)
        absmax = denested_absmax(absmax, absmax_8bit, absmax_code, absmax_offset)
    if bias is not None:
        torch._check(bias.dim() == 1 and bias.shape[0] == shapeB[0],
                     lambda: f"bias length ({bias.shape[0]}) must match N ({shapeB[0]})")
        torch._check(bias.dtype == A.dtype, lambda: f"bias dtype ({bias.dtype}) must match A dtype ({A.dtype})")
    weight = _dequantized_weight(A, B, shapeB, absmax, blocksize, quant_type)
    return canonical_nan(torch.nn.functional.linear(A, weight, bias))


KERNELS = {
    "gemv_4bit": gemv_4bit,
    "gemv_4bit.out": gemv_4bit_out,
    "gemm_4bit": gemm_4bit,
}

