"""LLM.int8(): row-wise int8 quantization, the int8 GEMM and its rescale (python_api.md 2.5).

Thin over ``torch.ops.bitsandbytes.int8_*`` (ops.md section 1); the arithmetic is in
the kernels (formats.md section 5).
"""

from typing import Optional

import torch
from typing_extensions import deprecated

# The scale of the row-wise absmax quantization: q = round(a * C / absmax).
C = 127.0


def int8_vectorwise_quant(A: torch.Tensor, threshold: float = 0.0):
    """Quantizes each row of A to int8 by its absmax: ``(CA, row_stats, outlier_cols)``.

    With threshold > 0, columns holding any ``|a| >= threshold`` are outliers: their
    indices (int64, ascending) are returned, they are zeroed in CA, and their
    elements do not count towards row_stats. With threshold 0 outlier_cols is None.
    """
    return torch.ops.bitsandbytes.int8_vectorwise_quant.default(A, threshold)


def int8_vectorwise_dequant(A: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    """float32 ``A * stats[row] / 127``, the inverse of int8_vectorwise_quant."""
    return torch.ops.bitsandbytes.int8_vectorwise_dequant.default(A, stats)


def int8_double_quant(
    A: torch.Tensor,
    col_stats: Optional[torch.Tensor] = None,
    row_stats: Optional[torch.Tensor] = None,
    out_col: Optional[torch.Tensor] = None,
    out_row: Optional[torch.Tensor] = None,
    threshold=0.0,
):
    """Row-wise and column-wise int8 quantization of a 2-D matrix.

    Returns ``(out_row, out_col, row_stats, col_stats, outlier_cols)``; the row part
    is int8_vectorwise_quant's. Pre-allocated outputs are not supported.
    """
    for name, value in (("row_stats", row_stats), ("col_stats", col_stats), ("out_col", out_col),
                        ("out_row", out_row)):
        if value is not None:
            raise ValueError(f"{name} must be None. int8_double_quant() does not support pre-allocated {name}.")
    return torch.ops.bitsandbytes.int8_double_quant.default(A, threshold)


def int8_linear_matmul(A: torch.Tensor, B: torch.Tensor, out: Optional[torch.Tensor] = None, dtype=torch.int32):
    """Exact ``A @ B.T`` of int8 matrices, accumulated and returned in int32."""
    if dtype != torch.int32:
        raise ValueError(f"int8_linear_matmul: dtype must be torch.int32 (the accumulator), got {dtype}")
    if out is not None:
        torch.ops.bitsandbytes.int8_linear_matmul.out(A, B, out)
        return out
    return torch.ops.bitsandbytes.int8_linear_matmul.default(A, B)


def int8_mm_dequant(
    A: torch.Tensor,
    row_stats: torch.Tensor,
    col_stats: torch.Tensor,
    out: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
):
    """float16 ``A * row_stats[:, None] * col_stats[None, :] / 127^2 (+ bias)`` of an int32 product."""
    result = torch.ops.bitsandbytes.int8_mm_dequant.default(A, row_stats, col_stats, dtype=torch.float16, bias=bias)
    if out is not None:
        return out.copy_(result)
    return result


# ---- deprecated cuBLAS-era helpers, kept for callers of the old API --------------------------------


def _operand_shapes(A: torch.Tensor, B: torch.Tensor, transposed_A: bool, transposed_B: bool):
    """The shapes of the effective operands of A @ B (the last two dimensions swapped if transposed)."""
    shape_A, shape_B = list(A.shape), list(B.shape)
    if transposed_A:
        shape_A[-2:] = shape_A[-2:][::-1]
    if transposed_B:
        shape_B[-2:] = shape_B[-2:][::-1]
    return shape_A, shape_B


@deprecated("This function is deprecated and will be removed in a future release.", category=FutureWarning)
def check_matmul(A, B, out, transposed_A, transposed_B, expected_type=torch.int8):
    """Validates the operands of an int8 A @ B and returns the shape of the product."""
    if A.dtype != expected_type or B.dtype != expected_type:
        raise TypeError(f"Expected {expected_type} input tensors A and B, but got {A.dtype} and {B.dtype}")
    if A.dim() not in (2, 3) or B.dim() not in (2, 3) or (A.dim() == 2 and B.dim() == 3):
        raise ValueError(f"Unsupported operand dimensions for A x B: {tuple(A.shape)} x {tuple(B.shape)}")
    shape_A, shape_B = _operand_shapes(A, B, transposed_A, transposed_B)
    if B.dim() == 2:
        correct = shape_A[-1] == shape_B[0]
        product_shape = (*shape_A[:-1], shape_B[1])
    else:
        correct = shape_A[0] == shape_B[0] and shape_A[-1] == shape_B[1]
        product_shape = (shape_A[0], shape_A[1], shape_B[2])
    if not correct:
        raise ValueError(
            f"Tensor dimensions incorrect for matrix multiplication: A x B: {tuple(A.shape)} x {tuple(B.shape)} "
            f"with transpose for A x B: {transposed_A} x {transposed_B}."
        )
    if out is not None and tuple(out.shape) != product_shape:
        raise ValueError(f"out must have shape {product_shape}, got {tuple(out.shape)}")
    return product_shape


def _int8_product(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A @ B in int32 for int8 A [..., K] and B [K, N]."""
    return torch.ops.bitsandbytes.int8_linear_matmul.default(A.contiguous(), B.t().contiguous())


@deprecated("This function is deprecated and will be removed in a future release.", category=FutureWarning)
def igemm(A: torch.Tensor, B: torch.Tensor, out: Optional[torch.Tensor] = None, transposed_A=False,
          transposed_B=False):
    """int32 ``op(A) @ op(B)`` of int8 tensors, op transposing the last two dimensions when asked."""
    check_matmul.__wrapped__(A, B, out, transposed_A, transposed_B)
    if B.dim() == 3:
        return batched_igemm.__wrapped__(A, B, out, transposed_A, transposed_B)
    effective_A = A.transpose(-1, -2) if transposed_A else A
    effective_B = B.t() if transposed_B else B
    result = _int8_product(effective_A, effective_B)
    return result if out is None else out.copy_(result)


@deprecated("This function is deprecated and will be removed in a future release.", category=FutureWarning)
def batched_igemm(A: torch.Tensor, B: torch.Tensor, out: Optional[torch.Tensor] = None, transposed_A=False,
                  transposed_B=False):
    """int32 batched ``op(A[i]) @ op(B[i])`` of 3-D int8 tensors."""
    if A.dim() != 3 or B.dim() != 3:
        raise ValueError(
            f"Expected 3-dimensional tensors for bmm, but got shapes A and B: {tuple(A.shape)} and {tuple(B.shape)}"
        )
    check_matmul.__wrapped__(A, B, out, transposed_A, transposed_B)
    effective_A = A.transpose(1, 2) if transposed_A else A
    effective_B = B.transpose(1, 2) if transposed_B else B
    result = torch.stack([_int8_product(a, b) for a, b in zip(effective_A, effective_B)])
    return result if out is None else out.copy_(result)
