"""Pure-torch LLM.int8() kernels: row-wise int8 quantization, the exact int8 GEMM and its rescale.

They follow formats.md section 5 step by step, so their bytes equal upstream's CUDA
build wherever that section fixes them:

* int8_vectorwise_quant (5.1): absmax of each row over the non-outlier elements,
  ``scale = __fdividef(127, absmax)`` emulated as ``127 * rcp.approx.ftz(absmax)``
  rounded once (shared/golden/README.md), ``q = round_half_even(a * scale)``; a
  zero row gives NaN, stored as 0. Outlier columns (any ``|a| >= threshold``) are
  zeroed whole.
* int8_linear_matmul (5.3): exact int32 accumulation on every device.
  ``torch._int_mm`` on the CPU; elsewhere float32 products of int8 values over
  chunks of at most 1024 terms, which are exact (every partial sum is an integer
  below 2^24, also under TF32, whose mantissa holds any int8), summed in int32.
  A plain float32 matmul (upstream's default kernel) is inexact above 2^24.
* int8_mm_dequant (5.3): ``fma((float(C) * row) * col, float32(1/127^2), bias)``
  as one correctly rounded float32 fma (emulated exactly in float64 with round-to-
  odd), rounded once to the output dtype. For a float16 output with a float16 bias
  or none this is upstream's CUDA arithmetic bit for bit. For every other output or
  bias dtype upstream rounds to float16 first and then casts (or adds a non-fp16
  bias to the float16 result); here the float32 value is rounded once to the output
  dtype instead, a deliberate difference: more accurate, never overflowing at 65504,
  and within the matmul tolerances of shared/golden/README.md.
* int8_double_quant (5.2): the row part above; the column part multiplies by 127 in
  A's dtype and divides exactly in float32, as upstream's PyTorch code does. Where
  that float16 product overflows (|a| > 515.9) or a column is all zero, upstream's
  int8 is implementation-defined; here it saturates to +-127, and 0 for NaN.

Non-finite activations are not rejected (that would cost a device sync per call):
a row holding NaN gets NaN statistics and so NaN output, never finite garbage.

Arguments are checked as the native glue checks them (ValueError). Inputs with
more than two dimensions are viewed as ``[rows, A.shape[-1]]``.
"""

from math import isfinite, prod
from typing import Optional

import torch

from .common.checks import check_out, check_same_device, require
from .common.cuda_fast_math import canonical_nan, flush_denormal, ftz_mul, rcp_approx_ftz

# float32(1/127), the dequantization constant of formats.md 5.1.
INV_127 = 7.874015718698502e-3
# float32(1/(127*127)) = 6.200012e-05, the rescale constant of formats.md 5.3.
INV_127_SQUARED = torch.tensor(1.0 / (127.0 * 127.0), dtype=torch.float32).item()
# Terms per float32 partial product of the exact GEMM: 1024 * 128 * 128 = 2^24.
EXACT_FLOAT32_CHUNK = 1024


def _rows_of(A: torch.Tensor) -> int:
    return prod(A.shape[:-1])


def _as_matrix(A: torch.Tensor) -> torch.Tensor:
    return A.reshape(_rows_of(A), A.shape[-1])


def _check_float_input(A: torch.Tensor, op: str) -> None:
    require(A.dtype in (torch.float16, torch.bfloat16, torch.float32),
            f"{op}: A must be float16, bfloat16 or float32, got {A.dtype}")
    require(A.dim() >= 1, f"{op}: A must have at least one dimension, got a 0-dim tensor")


def _check_threshold(threshold: float) -> None:
    # The C ABI's rule: an infinite threshold would mark nothing, as 0 does.
    require(threshold >= 0.0 and isfinite(threshold), f"threshold must be non-negative and finite, got {threshold}")


def _check_stats(stats: torch.Tensor, name: str, length: int, device: torch.device) -> None:
    require(stats.dtype == torch.float32, f"{name} must be float32, got {stats.dtype}")
    require(stats.numel() == length, f"{name} must have {length} entries, got {stats.numel()}")
    check_same_device(stats, name, device)


# ---- quantization ------------------------------------------------------------------------------


def _row_quantize(A: torch.Tensor, threshold: float):
    """(int8 rows, float32 row absmax, bool mask of outlier columns or None) of a 2-D tensor."""
    values = A.float()
    magnitude = values.abs()
    outlier_columns = None
    if threshold > 0.0:
        is_outlier = magnitude >= torch.tensor(threshold, dtype=torch.float32)
        magnitude = magnitude.masked_fill(is_outlier, 0.0)
        outlier_columns = is_outlier.any(dim=0)
    if A.shape[1] == 0:
        absmax = values.new_zeros(A.shape[0])
    else:
        absmax = magnitude.amax(dim=1)
    scale = ftz_mul(torch.tensor(127.0, device=A.device), rcp_approx_ftz(absmax))
    quantized = torch.round(ftz_mul(values, scale[:, None]))
    # 0 * inf of an all-zero row (and any NaN) is stored as 0, as the CUDA conversion does.
    quantized = torch.nan_to_num(quantized, nan=0.0).to(torch.int8)
    if outlier_columns is not None:
        quantized = quantized.masked_fill(outlier_columns[None, :], 0)
    return quantized, absmax, outlier_columns


def int8_vectorwise_quant(A: torch.Tensor, threshold: float = 0.0):
    _check_float_input(A, "int8_vectorwise_quant")
    _check_threshold(threshold)
    quantized, row_stats, outlier_columns = _row_quantize(_as_matrix(A), threshold)
    outlier_cols = None if outlier_columns is None else outlier_columns.nonzero().view(-1)
    return quantized.reshape(A.shape), row_stats, outlier_cols


def int8_vectorwise_dequant(A: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    require(A.dtype == torch.int8, f"A must be int8, got {A.dtype}")
    require(A.dim() >= 1, "A must have at least one dimension, got a 0-dim tensor")
    matrix = _as_matrix(A)
    _check_stats(stats, "stats", matrix.shape[0], A.device)
    # Two float32 multiplies, as upstream's (pure-torch) kernel rounds them.
    return canonical_nan((matrix.float() * stats.reshape(-1, 1)) * INV_127).reshape(A.shape)


def _column_quantize(A: torch.Tensor, threshold: float):
    """(int8 columns, float32 column absmax) of a 2-D tensor, outlier elements counted as 0."""
    if threshold > 0.0:
        A = A.masked_fill(A.float().abs() >= torch.tensor(threshold, dtype=torch.float32), 0)
    if A.shape[0] == 0:
        col_stats = torch.zeros(A.shape[1], dtype=torch.float32, device=A.device)
    else:
        col_stats = A.abs().amax(dim=0).float()
    scaled = (A * 127).float() / col_stats[None, :]
    quantized = torch.nan_to_num(torch.round(scaled), nan=0.0, posinf=127.0, neginf=-127.0).clamp(-127.0, 127.0)
    return quantized.to(torch.int8), col_stats


def int8_double_quant(A: torch.Tensor, threshold: float = 0.0):
    _check_float_input(A, "int8_double_quant")
    _check_threshold(threshold)
    matrix = _as_matrix(A)
    out_row, row_stats, outlier_columns = _row_quantize(matrix, threshold)
    out_col, col_stats = _column_quantize(matrix, threshold)
    outlier_cols = None if outlier_columns is None else outlier_columns.nonzero().view(-1)
    return out_row.reshape(A.shape), out_col.reshape(A.shape), row_stats, col_stats, outlier_cols


# ---- the integer product -----------------------------------------------------------------------


def _check_int8_operands(A: torch.Tensor, B: torch.Tensor) -> None:
    require(A.dtype == torch.int8, f"A must be int8, got {A.dtype}")
    require(B.dtype == torch.int8, f"B must be int8, got {B.dtype}")
    require(B.dim() == 2, f"Only two dimensional matrices are supported for argument B, got shape {tuple(B.shape)}")
    require(A.dim() >= 1, "A must have at least one dimension, got a 0-dim tensor")
    require(A.shape[-1] == B.shape[-1],
            "int8_linear_matmul only supports B^T @ A. Inner dimensions do not match: "
            f"B @ A = {tuple(B.shape)} @ {tuple(A.shape)}")
    check_same_device(B, "B", A.device)


def exact_int8_matmul_by_float32_chunks(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A @ B.T in int32 for a 2-D A, on any device with a float32 matmul (see the module docstring)."""
    result = torch.zeros((A.shape[0], B.shape[0]), dtype=torch.int32, device=A.device)
    for start in range(0, A.shape[1], EXACT_FLOAT32_CHUNK):
        stop = start + EXACT_FLOAT32_CHUNK
        partial = A[:, start:stop].float() @ B[:, start:stop].float().t()
        result += partial.to(torch.int32)
    return result


def _exact_int8_matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    if A.device.type == "cpu":
        return torch._int_mm(A, B.t())
    return exact_int8_matmul_by_float32_chunks(A, B)


def int8_linear_matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    _check_int8_operands(A, B)
    return _exact_int8_matmul(_as_matrix(A), B).reshape(*A.shape[:-1], B.shape[0])


def int8_linear_matmul_out(A: torch.Tensor, B: torch.Tensor, out: torch.Tensor) -> None:
    _check_int8_operands(A, B)
    check_out(out, (*A.shape[:-1], B.shape[0]), torch.int32, A.device)
    out.copy_(int8_linear_matmul(A, B))


# ---- rescale -------------------------------------------------------------------------------------


def fma_float32(p: torch.Tensor, k: float, b: torch.Tensor) -> torch.Tensor:
    """fma(p, k, b) of float32 operands, correctly rounded to float32 once.

    p * k is exact in float64 (24 + 24 bits). The float64 sum is made round-to-odd
    (a lost remainder sets the last bit), after which rounding to float32 is
    correct: 53 bits >= 24 + 2.
    """
    product = p.double() * k
    addend = b.double()
    total = product + addend
    addend_part = total - product
    remainder = (product - (total - addend_part)) + (addend - addend_part)
    bits = total.view(torch.int64)
    make_odd = (remainder != 0) & ((bits & 1) == 0) & torch.isfinite(total)
    toward_remainder = torch.where((remainder > 0) == (total > 0), 1, -1)
    bits = torch.where(make_odd, bits + toward_remainder, bits)
    return flush_denormal(bits.view(torch.float64).to(torch.float32))


def _check_rescale_operands(A: torch.Tensor, row_stats: torch.Tensor, col_stats: torch.Tensor,
                            bias: Optional[torch.Tensor], dtype: Optional[torch.dtype]) -> None:
    require(A.dim() >= 1, "A must have at least one dimension, got a 0-dim tensor")
    rows, cols = _rows_of(A), A.shape[-1]
    _check_stats(row_stats, "row_stats", rows, A.device)
    _check_stats(col_stats, "col_stats", cols, A.device)
    if bias is not None:
        require(bias.dtype in (torch.float16, torch.bfloat16, torch.float32),
                f"bias must be float16, bfloat16 or float32, got {bias.dtype}")
        require(bias.numel() == cols, f"bias must have {cols} entries, got {bias.numel()}")
        check_same_device(bias, "bias", A.device)
    require(dtype in (None, torch.float16, torch.bfloat16, torch.float32),
            f"dtype must be float16, bfloat16 or float32, got {dtype}")


def _rescaled(A: torch.Tensor, row_stats: torch.Tensor, col_stats: torch.Tensor,
              bias: Optional[torch.Tensor], dtype: Optional[torch.dtype]) -> torch.Tensor:
    matrix = _as_matrix(A)
    product = ftz_mul(ftz_mul(matrix.float(), row_stats.reshape(-1, 1)), col_stats.reshape(1, -1))
    addend = torch.zeros((), dtype=torch.float32, device=A.device) if bias is None else bias.reshape(1, -1).float()
    return canonical_nan(fma_float32(product, INV_127_SQUARED, addend).to(dtype or torch.float16)).reshape(A.shape)


def int8_mm_dequant(A: torch.Tensor, row_stats: torch.Tensor, col_stats: torch.Tensor,
                    dtype: Optional[torch.dtype] = None, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    require(A.dtype == torch.int32, f"A must be int32, got {A.dtype}")
    _check_rescale_operands(A, row_stats, col_stats, bias, dtype)
    return _rescaled(A, row_stats, col_stats, bias, dtype)


def int8_scaled_mm(A: torch.Tensor, B: torch.Tensor, row_stats: torch.Tensor, col_stats: torch.Tensor,
                   bias: Optional[torch.Tensor] = None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    _check_int8_operands(A, B)
    _check_stats(row_stats, "row_stats", _rows_of(A), A.device)
    _check_stats(col_stats, "col_stats", B.shape[0], A.device)
    product = int8_linear_matmul(A, B)
    _check_rescale_operands(product, row_stats, col_stats, bias, dtype)
    return _rescaled(product, row_stats, col_stats, bias, dtype)


def int8_mixed_scaled_mm(A: torch.Tensor, CA: torch.Tensor, CB: torch.Tensor, SCA: torch.Tensor,
                         SCB: torch.Tensor, outlier_cols: Optional[torch.Tensor] = None,
                         bias: Optional[torch.Tensor] = None):
    """The LLM.int8() forward (ops.md 1.6): the int8 product plus the outlier columns in A's dtype.

    Built from this module's kernels, not the dispatcher's, so that it stays the
    pure oracle: a device with native int8 kernels registers its own (one fused call).
    """
    _check_float_input(A, "int8_mixed_scaled_mm")
    require(A.dim() == 2, f"int8_mixed_scaled_mm: A must be 2-D [rows, K], got shape {tuple(A.shape)}")
    require(tuple(CA.shape) == tuple(A.shape), f"CA must have A's shape {tuple(A.shape)}, got {tuple(CA.shape)}")
    if outlier_cols is not None:
        require(outlier_cols.dtype == torch.int64, f"outlier_cols must be int64, got {outlier_cols.dtype}")
        require(outlier_cols.dim() == 1, f"outlier_cols must be 1-D, got shape {tuple(outlier_cols.shape)}")
        check_same_device(outlier_cols, "outlier_cols", A.device)
    out = int8_scaled_mm(CA, CB, SCA, SCB, bias=bias, dtype=A.dtype)
    if outlier_cols is None or outlier_cols.numel() == 0:
        return out, A.new_empty(0)
    subA = A[:, outlier_cols]
    outlier_weight = int8_vectorwise_dequant(CB[:, outlier_cols].contiguous(), SCB)
    return canonical_nan(out.addmm(subA, outlier_weight.to(A.dtype).t())), subA


def int8_linear(A: torch.Tensor, CB: torch.Tensor, SCB: torch.Tensor, bias: Optional[torch.Tensor] = None,
                threshold: float = 0.0) -> torch.Tensor:
    """This package's LLM.int8() inference forward: ``A @ dequant(CB, SCB).T + bias`` in A's dtype.

    A's rows are quantized from its float16 rounding, as upstream's Linear8bitLt casts
    them, then multiplied by int8_mixed_scaled_mm (int8_scaled_mm without outliers):
    the composition the native kernel fuses, from this module's kernels.
    """
    _check_float_input(A, "int8_linear")
    require(CB.dtype == torch.int8, f"int8_linear: CB must be int8, got {CB.dtype}")
    require(CB.dim() == 2, f"int8_linear: CB must be 2-D [N, K], got shape {tuple(CB.shape)}")
    require(CB.shape[1] == A.shape[-1],
            f"int8_linear: CB must have K = {A.shape[-1]} columns like A, got shape {tuple(CB.shape)}")
    check_same_device(CB, "CB", A.device)
    _check_stats(SCB, "SCB", CB.shape[0], A.device)
    A_rows = _as_matrix(A)
    CA, SCA, outlier_cols = int8_vectorwise_quant(A_rows.to(torch.float16), threshold)
    out, _ = int8_mixed_scaled_mm(A_rows, CA, CB, SCA, SCB, outlier_cols, bias)
    return out.reshape(*A.shape[:-1], CB.shape[0])


KERNELS = {
    "int8_vectorwise_quant": int8_vectorwise_quant,
    "int8_vectorwise_dequant": int8_vectorwise_dequant,
    "int8_double_quant": int8_double_quant,
    "int8_linear_matmul": int8_linear_matmul,
    "int8_linear_matmul.out": int8_linear_matmul_out,
    "int8_mm_dequant": int8_mm_dequant,
    "int8_scaled_mm": int8_scaled_mm,
    "int8_mixed_scaled_mm": int8_mixed_scaled_mm,
    "int8_linear": int8_linear,
}
