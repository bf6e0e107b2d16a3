"""Fake (meta) kernels of every ``torch.ops.bitsandbytes`` op.

The schemas themselves are declared once, natively (python/csrc/schemas.cpp); this
module only tells torch.compile, FakeTensorMode and opcheck what each op returns
(shape, dtype, device) without running it, and checks what can be checked from
metadata alone. ``torch._check`` raises RuntimeError; the messages are upstream's
(shared/contract/ops.md).
"""

import functools
import inspect
from math import prod
from typing import Optional, Sequence

import torch

from ._formats import (
    FLOAT_DTYPES,
    CODE_SIZE,
    FOURBIT_STORAGE_DTYPES,
    blocks_of,
    blocksize_error,
    float_dtype_error,
    packed_4bit_storage_elements,
    quant_type_error,
)


def _register_fake(name: str):
    """Registers `name`'s fake kernel, behind the check that no meta tensor is mixed with real ones."""
    register = torch.library.register_fake(f"bitsandbytes::{name}")

    def decorator(fake):
        @functools.wraps(fake)
        def checked(*args, **kwargs):
            _check_meta_not_mixed(name, fake, args, kwargs)
            return fake(*args, **kwargs)

        return register(checked)

    return decorator


def _tensors_in(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors_in(item)


def _check_meta_not_mixed(name: str, fake, args, kwargs) -> None:
    """A call with one meta tensor among real ones dispatches here (Meta outranks CPU and CUDA), and
    a fake kernel would return uninitialised memory for it: such a call is an error.

    Under torch.compile the fake tensors report their real device, so this never fires there.
    """
    values = (*args, *kwargs.values())
    device_types = {tensor.device.type for value in values for tensor in _tensors_in(value)}
    if "meta" not in device_types or len(device_types) == 1:
        return
    bound = inspect.signature(fake).bind(*args, **kwargs)
    on_meta = [arg for arg, value in bound.arguments.items() if any(t.is_meta for t in _tensors_in(value))]
    others = [arg for arg, value in bound.arguments.items()
              if any(not t.is_meta for t in _tensors_in(value))]
    raise RuntimeError(
        f"bitsandbytes::{name}: {', '.join(on_meta)} on the meta device (no data), but {', '.join(others)} "
        f"on {', '.join(sorted(device_types - {'meta'}))}: move every tensor to one device"
    )


def check_format(error: Optional[str]) -> None:
    """Raises a _formats rule's message the fake-kernel way (RuntimeError)."""
    torch._check(error is None, lambda: error)


def check_out(out: torch.Tensor, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> None:
    torch._check(
        tuple(out.shape) == tuple(shape),
        lambda: f"Expected out.shape == {tuple(shape)}, got {tuple(out.shape)}",
    )
    torch._check(out.device == device, lambda: f"Expected out.device == {device}, got {out.device}")
    torch._check(out.dtype == dtype, lambda: f"Expected out.dtype == {dtype}, got {out.dtype}")


def _data_dependent_length() -> int:
    return torch.library.get_ctx().new_dynamic_size()


def _rows(A: torch.Tensor) -> int:
    return prod(A.shape[:-1])


# ---- LLM.int8() -------------------------------------------------------------------


def _check_int8_matmul_inputs(A: torch.Tensor, B: torch.Tensor) -> None:
    torch._check(A.dtype == torch.int8, lambda: "A must be int8")
    torch._check(B.dtype == torch.int8, lambda: "B must be int8")


@_register_fake("int8_linear_matmul")
def _(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    _check_int8_matmul_inputs(A, B)
    return A.new_empty((*A.shape[:-1], B.shape[0]), dtype=torch.int32)


@_register_fake("int8_linear_matmul.out")
def _(A: torch.Tensor, B: torch.Tensor, out: torch.Tensor) -> None:
    _check_int8_matmul_inputs(A, B)
    check_out(out, (*A.shape[:-1], B.shape[0]), A.device, torch.int32)


@_register_fake("int8_vectorwise_quant")
def _(A: torch.Tensor, threshold: float = 0.0):
    out_row = torch.empty_like(A, dtype=torch.int8)
    row_stats = A.new_empty((_rows(A),), dtype=torch.float32)
    if threshold == 0.0:
        return out_row, row_stats, None
    outlier_cols = A.new_empty((_data_dependent_length(),), dtype=torch.int64)
    return out_row, row_stats, outlier_cols


@_register_fake("int8_vectorwise_dequant")
def _(A: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    torch._check(A.dtype == torch.int8, lambda: "A must be int8")
    return torch.empty_like(A, dtype=torch.float32)


@_register_fake("int8_mm_dequant")
def _(
    A: torch.Tensor,
    row_stats: torch.Tensor,
    col_stats: torch.Tensor,
    dtype: Optional[torch.dtype] = None,
    bias: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    torch._check(A.dtype == torch.int32, lambda: "A must be int32")
    return torch.empty_like(A, dtype=dtype or torch.float16)


@_register_fake("int8_scaled_mm")
def _(
    A: torch.Tensor,
    B: torch.Tensor,
    row_stats: torch.Tensor,
    col_stats: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    _check_int8_matmul_inputs(A, B)
    return A.new_empty((*A.shape[:-1], B.shape[0]), dtype=dtype or torch.float16)


@_register_fake("int8_mixed_scaled_mm")
def _(
    A: torch.Tensor,
    CA: torch.Tensor,
    CB: torch.Tensor,
    SCA: torch.Tensor,
    SCB: torch.Tensor,
    outlier_cols: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
):
    out = A.new_empty((*CA.shape[:-1], CB.shape[0]), dtype=A.dtype)
    # Declared as upstream declares it (its eager second output differs; ops.md 1.6).
    subA = A.new_empty((_data_dependent_length(),), dtype=torch.int64)
    return out, subA


@_register_fake("int8_linear")
def _(
    A: torch.Tensor,
    CB: torch.Tensor,
    SCB: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    threshold: float = 0.0,
) -> torch.Tensor:
    # This package's op: the outliers stay inside it, so the output shape is static.
    torch._check(
        A.dtype in FLOAT_DTYPES, lambda: f"int8_linear: A must be float16, bfloat16 or float32, got {A.dtype}"
    )
    torch._check(A.dim() >= 1, lambda: "int8_linear: A must have at least one dimension, got a 0-dim tensor")
    torch._check(CB.dtype == torch.int8, lambda: f"int8_linear: CB must be int8, got {CB.dtype}")
    torch._check(CB.dim() == 2, lambda: f"int8_linear: CB must be 2-D [N, K], got shape {tuple(CB.shape)}")
    torch._check(
        CB.shape[-1] == A.shape[-1],
        lambda: f"int8_linear: CB must have K = {A.shape[-1]} columns like A, got shape {tuple(CB.shape)}",
    )
    torch._check(SCB.dtype == torch.float32, lambda: f"SCB must be float32, got {SCB.dtype}")
    return A.new_empty((*A.shape[:-1], CB.shape[0]))


@_register_fake("int8_double_quant")
def _(A: torch.Tensor, threshold: float = 0.0):
    rows, cols = _rows(A), A.shape[-1]
    out_row = torch.empty_like(A, dtype=torch.int8)
    out_col = torch.empty_like(A, dtype=torch.int8)
    row_stats = A.new_empty((rows,), dtype=torch.float32)
    col_stats = A.new_empty((cols,), dtype=torch.float32)
    # Upstream's fake always declares a tensor here; the eager op returns None at
    # threshold 0, as int8_vectorwise_quant does, and so does this fake.
    if threshold == 0.0:
        return out_row, out_col, row_stats, col_stats, None
    outlier_cols = A.new_empty((_data_dependent_length(),), dtype=torch.int64)
    return out_row, out_col, row_stats, col_stats, outlier_cols


# ---- blockwise 8-bit ----------------------------------------------------------------


@_register_fake("quantize_blockwise")
def _(A: torch.Tensor, code: torch.Tensor, blocksize: int):
    torch._check(blocksize > 0, lambda: f"blocksize must be positive, got {blocksize}")
    check_format(blocksize_error("quantize_blockwise", blocksize, A.device.type))
    check_format(float_dtype_error("quantize_blockwise", A.dtype))
    out = torch.empty_like(A, dtype=torch.uint8)
    absmax = A.new_empty((blocks_of(A.numel(), blocksize),), dtype=torch.float32)
    return out, absmax


def _check_dequantize_blockwise(A: torch.Tensor, blocksize: int, dtype: torch.dtype) -> None:
    torch._check(blocksize > 0, lambda: f"blocksize must be positive, got {blocksize}")
    check_format(blocksize_error("dequantize_blockwise", blocksize, A.device.type))
    torch._check(A.dtype == torch.uint8, lambda: f"A must be uint8, got {A.dtype}")
    check_format(float_dtype_error("dequantize_blockwise", dtype))


@_register_fake("dequantize_blockwise")
def _(A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype):
    _check_dequantize_blockwise(A, blocksize, dtype)
    return torch.empty_like(A, dtype=dtype)


@_register_fake("dequantize_blockwise.out")
def _(
    A: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, blocksize: int, dtype: torch.dtype, out: torch.Tensor
) -> None:
    _check_dequantize_blockwise(A, blocksize, dtype)
    check_out(out, A.shape, A.device, dtype)


# ---- 4-bit ----------------------------------------------------------------------------


@_register_fake("quantize_4bit")
def _(A: torch.Tensor, blocksize: int, quant_type: str, quant_storage: torch.dtype):
    check_format(blocksize_error("quantize_4bit", blocksize))
    check_format(quant_type_error(quant_type))
    check_format(float_dtype_error("quantize_4bit", A.dtype))
    n = A.numel()
    packed = A.new_empty((packed_4bit_storage_elements(n, quant_storage), 1), dtype=quant_storage)
    absmax = A.new_empty((blocks_of(n, blocksize),), dtype=torch.float32)
    return packed, absmax


def _check_dequantize_4bit(
    absmax: torch.Tensor, blocksize: int, quant_type: str, dtype: torch.dtype
) -> None:
    check_format(blocksize_error("dequantize_4bit", blocksize))
    check_format(quant_type_error(quant_type))
    torch._check(absmax.dtype == torch.float32, lambda: f"absmax must be float32, got {absmax.dtype}")
    check_format(float_dtype_error("dequantize_4bit", dtype))


@_register_fake("dequantize_4bit")
def _(
    A: torch.Tensor, absmax: torch.Tensor, blocksize: int, quant_type: str, shape: Sequence[int], dtype: torch.dtype
) -> torch.Tensor:
    _check_dequantize_4bit(absmax, blocksize, quant_type, dtype)
    return A.new_empty(shape, dtype=dtype)


@_register_fake("dequantize_4bit.out")
def _(
    A: torch.Tensor,
    absmax: torch.Tensor,
    blocksize: int,
    quant_type: str,
    shape: Sequence[int],
    dtype: torch.dtype,
    out: torch.Tensor,
) -> None:
    _check_dequantize_4bit(absmax, blocksize, quant_type, dtype)
    check_out(out, shape, A.device, dtype)


def check_4bit_matmul_operands(op: str, A: torch.Tensor, B: torch.Tensor, blocksize: int) -> None:
    check_format(blocksize_error(op, blocksize))
    torch._check(
        A.dtype in FLOAT_DTYPES,
        lambda: f"A must be float16, bfloat16, or float32, got {A.dtype}",
    )
    torch._check(
        B.dtype in FOURBIT_STORAGE_DTYPES,
        lambda: f"B must be backed by storage of type uint8, bfloat16, float16, or float32, got {B.dtype}",
    )


@_register_fake("gemv_4bit")
def _(
    A: torch.Tensor, B: torch.Tensor, shapeB: Sequence[int], absmax: torch.Tensor, code: torch.Tensor, blocksize: int
) -> torch.Tensor:
    check_4bit_matmul_operands("gemv_4bit", A, B, blocksize)
    return A.new_empty((*A.shape[:-1], shapeB[0]))


@_register_fake("gemv_4bit.out")
def _(
    A: torch.Tensor,
    B: torch.Tensor,
    shapeB: Sequence[int],
    absmax: torch.Tensor,
    code: torch.Tensor,
    blocksize: int,
    out: torch.Tensor,
) -> None:
    check_4bit_matmul_operands("gemv_4bit", A, B, blocksize)
    check_out(out, (*A.shape[:-1], shapeB[0]), A.device, A.dtype)


def check_nested_absmax(
    absmax_8bit: Optional[torch.Tensor], absmax_code: Optional[torch.Tensor], absmax_offset: Optional[torch.Tensor]
) -> None:
    if absmax_8bit is None:
        return
    torch._check(absmax_8bit.dim() == 1, lambda: f"absmax_8bit must be 1D, got {absmax_8bit.dim()}D")
    torch._check(absmax_8bit.dtype == torch.uint8, lambda: f"absmax_8bit must be uint8, got {absmax_8bit.dtype}")
    torch._check(absmax_code is not None, lambda: "absmax_code required when absmax_8bit is provided")
    torch._check(absmax_code.dim() == 1, lambda: f"absmax_code must be 1D, got {absmax_code.dim()}D")
    torch._check(
        absmax_code.numel() == CODE_SIZE, lambda: f"absmax_code must have {CODE_SIZE} entries, got {absmax_code.numel()}"
    )
    torch._check(
        absmax_code.dtype == torch.float32, lambda: f"absmax_code must be float32, got {absmax_code.dtype}"
    )
    torch._check(absmax_offset is not None, lambda: "absmax_offset required when absmax_8bit is provided")
    torch._check(
        absmax_offset.dim() == 0, lambda: f"absmax_offset must be a scalar (0-dim), got {absmax_offset.dim()}D"
    )
    torch._check(
        absmax_offset.dtype == torch.float32, lambda: f"absmax_offset must be float32, got {absmax_offset.dtype}"
    )


@_register_fake("gemm_4bit")
def _(
    A: torch.Tensor,
    B: torch.Tensor,
    shapeB: Sequence[int],
    absmax: torch.Tensor,
    blocksize: int,
    quant_type: str,
    bias: Optional[torch.Tensor] = None,
    absmax_8bit: Optional[torch.Tensor] = None,
    absmax_code: Optional[torch.Tensor] = None,
    absmax_offset: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    torch._check(len(shapeB) == 2, lambda: f"shapeB must be 2D [N, K], got {list(shapeB)}")
    N, K = shapeB[0], shapeB[1]
    torch._check(A.shape[-1] == K, lambda: f"A inner dim ({A.shape[-1]}) must match shapeB ({K})")
    check_4bit_matmul_operands("gemm_4bit", A, B, blocksize)
    check_format(quant_type_error(quant_type))
    torch._check(absmax.dtype == torch.float32, lambda: f"absmax must be float32, got {absmax.dtype}")
    check_nested_absmax(absmax_8bit, absmax_code, absmax_offset)
    if bias is not None:
        torch._check(bias.dim() == 1, lambda: f"bias must be 1D, got {bias.dim()}D")
        torch._check(bias.shape[0] == N, lambda: f"bias length ({bias.shape[0]}) must match N ({N})")
        torch._check(bias.dtype == A.dtype, lambda: f"bias dtype ({bias.dtype}) must match A dtype ({A.dtype})")
    return A.new_empty((*A.shape[:-1], N))


# ---- optimizers -----------------------------------------------------------------------


def _check_gradient_and_parameter(g: torch.Tensor, p: torch.Tensor) -> None:
    torch._check(
        g.numel() == p.numel(),
        lambda: f"g and p must have the same number of elements, got {g.numel()} and {p.numel()}",
    )
    torch._check(g.dtype in FLOAT_DTYPES, lambda: f"g must be bfloat16, float16, or float32, got {g.dtype}")
    torch._check(
        g.dtype == p.dtype,
        lambda: f"Expected all tensors to have the same dtype, got g.dtype={g.dtype}, p.dtype={p.dtype}",
    )


@_register_fake("optimizer_update_32bit")
def _(
    optimizer_name: str,
    g: torch.Tensor,
    p: torch.Tensor,
    state1: torch.Tensor,
    state2: Optional[torch.Tensor],
    unorm_vec: Optional[torch.Tensor],
    max_unorm: float,
    param_norm: float,
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    step: int,
    lr: float,
    gnorm_scale: float,
    skip_zeros: bool = False,
) -> None:
    _check_gradient_and_parameter(g, p)


@_register_fake("optimizer_update_8bit_blockwise")
def _(
    optimizer_name: str,
    g: torch.Tensor,
    p: torch.Tensor,
    state1: torch.Tensor,
    state2: Optional[torch.Tensor],
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    step: int,
    lr: float,
    qmap1: torch.Tensor,
    qmap2: Optional[torch.Tensor],
    absmax1: torch.Tensor,
    absmax2: Optional[torch.Tensor],
    weight_decay: float,
    gnorm_scale: float,
    skip_zeros: bool = False,
) -> None:
    _check_gradient_and_parameter(g, p)
    torch._check(state1.dtype == torch.uint8, lambda: f"state1 must be uint8, got {state1.dtype}")
    torch._check(
        qmap1.dtype == absmax1.dtype == torch.float32,
        lambda: f"Expected qmap1 and absmax1 to be float32, got qmap1.dtype={qmap1.dtype}, "
        f"absmax1.dtype={absmax1.dtype}",
    )
    if state2 is not None:
        torch._check(state2.dtype == torch.uint8, lambda: f"state2 must be uint8, got {state2.dtype}")
        torch._check(
            qmap2 is not None and absmax2 is not None,
            lambda: "qmap2 and absmax2 are required when state2 is provided",
        )
        torch._check(
            qmap2.dtype == absmax2.dtype == torch.float32,
            lambda: f"Expected qmap2 and absmax2 to be float32, got qmap2.dtype={qmap2.dtype}, "
            f"absmax2.dtype={absmax2.dtype}",
        )


@_register_fake("optimizer_update_multi_tensor")
def _(
    optimizer_name: str,
    g: Sequence[torch.Tensor],
    p: Sequence[torch.Tensor],
    state1: Sequence[torch.Tensor],
    state2: Sequence[torch.Tensor],
    absmax1: Sequence[torch.Tensor],
    absmax2: Sequence[torch.Tensor],
    qmap1: Optional[torch.Tensor],
    qmap2: Optional[torch.Tensor],
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    step: int,
    lr: float,
    gnorm_scale: float,
    skip_zeros: bool = False,
) -> None:
    torch._check(len(g) == len(p), lambda: f"g and p must be lists of the same length, got {len(g)} and {len(p)}")
    torch._check(len(state1) == len(p), lambda: f"state1 must have one tensor per parameter, got {len(state1)}")
    for gradient, parameter in zip(g, p):
        _check_gradient_and_parameter(gradient, parameter)


# ---- paged memory ---------------------------------------------------------------------------


@_register_fake("paged_empty")
def _(size: Sequence[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Managed memory is addressed from the host: the tensor is a CPU tensor for any device.
    return torch.empty(tuple(size), dtype=dtype, device="cpu")


@_register_fake("paged_prefetch")
def _(t: torch.Tensor, device: torch.device, to_device: bool) -> None:
    return None
