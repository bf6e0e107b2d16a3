"""Autograd entry points: LLM.int8() (bnb.matmul, Linear8bitLt) and the 4-bit matmul (Linear4bit, QLoRA)."""

import logging
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

import bitsandbytes.functional as F
from bitsandbytes._formats import NESTED_BLOCKSIZE
from bitsandbytes._singleton import singleton_instance

logger = logging.getLogger(__name__)


class GlobalOutlierPooler:
    """Collects outlier feature indices across layers (LLM.int8() bookkeeping)."""

    _instance = None

    def __init__(self):
        raise RuntimeError("Call get_instance() instead")

    def initialize(self):
        self.outliers = set()
        self.model_dim = None

    get_instance = classmethod(singleton_instance)

    def add_outliers(self, outlier_idx, feature_dim):
        if self.model_dim is None:
            self.model_dim = feature_dim
        if feature_dim != self.model_dim:
            return  # outliers of layers with another width (e.g. the FFN output) are not tracked
        self.outliers.update(outlier_idx.tolist())

    def get_current_outlier_idx(self):
        return torch.tensor(sorted(self.outliers), dtype=torch.int64)


@dataclass
class MatmulLtState:
    """State of an LLM.int8() layer (Linear8bitLt.state)."""

    _deprecated_fields = frozenset({"CxB", "CxBt", "formatB", "_tile_indices"})

    force_no_igemmlt: bool = False
    CB: Optional[torch.Tensor] = None
    SB: Optional[torch.Tensor] = None
    SCB: Optional[torch.Tensor] = None
    SBt: Optional[torch.Tensor] = None
    CBt: Optional[torch.Tensor] = None
    subB: Optional[torch.Tensor] = None
    outlier_pool: Optional[GlobalOutlierPooler] = None
    has_accumulated_gradients = False
    threshold = 0.0
    idx: Optional[torch.Tensor] = None
    is_training = True
    has_fp16_weights = True
    use_pool = False

    def __getattr__(self, name):
        if name in MatmulLtState._deprecated_fields:
            warnings.warn(f"MatmulLtState.{name} is deprecated and will be removed in the next bitsandbytes release.",
                          FutureWarning, stacklevel=2)
            return None
        raise AttributeError(f"'MatmulLtState' object has no attribute '{name}'")

    def reset_grads(self):
        self.CB = None
        self.SB = None
        self.SCB = None
        self.SBt = None
        self.CBt = None


def _empty_matmul_shape(A: torch.Tensor, B: torch.Tensor) -> tuple:
    if A.shape[-1] == B.shape[0]:
        return (*A.shape[:-1], *B.shape[1:])
    return (*A.shape[:-1], *B.shape[:1])


def _weight_int8(B: torch.Tensor, state: MatmulLtState):
    """(CB, SCB) of the weight B [N, K], cached in the state.

    An already quantized weight (int8 data of an Int8Params) is used as it is. A
    float weight is quantized when the state holds none yet, and again at every
    training step when its fp16 weights train (unless gradients are accumulating).
    """
    if B.dtype == torch.int8:
        if state.CB is None:
            state.CB = B.data if isinstance(B, torch.nn.Parameter) else B
        if state.SCB is None:
            state.SCB = getattr(B, "SCB", None)
        if state.SCB is None:
            raise ValueError("bnb.matmul: B is an int8 weight without its row statistics (SCB); pass the "
                             "Int8Params of a quantized layer or a state holding SCB")
        return state.CB, state.SCB
    if state.has_fp16_weights or state.CB is None:
        accumulating = getattr(B, "grad", None) is not None
        if (state.is_training and not accumulating) or state.CB is None or state.SCB is None:
            state.reset_grads()
            state.CB, state.SCB, _ = F.int8_vectorwise_quant(B.detach().to(torch.float16))
    return state.CB, state.SCB


def _dequantized_weight(state: MatmulLtState, dtype: torch.dtype) -> torch.Tensor:
    if state.CB is None or state.SCB is None:
        raise RuntimeError("State must contain CB matrix for backward")
    return F.int8_vectorwise_dequant(state.CB, state.SCB).to(dtype)


# The input dtypes whose cast has been logged in this process.
_logged_casts: set = set()


def _warn_cast_to_float16(A: torch.Tensor) -> None:
    """Logs that A will be cast to float16, once per input dtype.

    A log record, as upstream's: a warning would fail test suites run with -W error.
    Upstream logs it at every call, which in a bfloat16 model's generation is a line on
    stderr per layer and token, and host time spent formatting it.
    """
    if A.dtype != torch.float16 and A.dtype not in _logged_casts and not torch.compiler.is_compiling():
        _logged_casts.add(A.dtype)
        logger.warning("MatMul8bitLt: inputs will be cast from %s to float16 during quantization", A.dtype)


def _int8_linear(A: torch.Tensor, B: torch.Tensor, bias: Optional[torch.Tensor], state: MatmulLtState,
                 keep_column_quantization: bool):
    """The LLM.int8() forward (formats.md 5.4): (output, CAt, SCAt, outlier_cols).

    Without keep_column_quantization (inference, or a weight that needs no gradient)
    it is one call of this package's int8_linear op: the activations' quantization and
    the product with the outlier columns, whose list and count stay on the device, so
    the host never waits for them (CAt, SCAt and outlier_cols are None). With it (the
    weight gradient needs A per column and the outlier columns) the activations are
    double-quantized and the product is int8_scaled_mm, or with a threshold
    int8_mixed_scaled_mm, which adds the outlier columns in A's dtype. Neither path
    branches on the (data-dependent) number of outliers here, so torch.compile traces
    it in one graph.
    """
    CB, SCB = _weight_int8(B, state)
    if not keep_column_quantization:
        output = torch.ops.bitsandbytes.int8_linear.default(A, CB, SCB, bias, state.threshold)
        return output, None, None, None
    A_rows = A.reshape(-1, A.shape[-1])
    CA, CAt, SCA, SCAt, outlier_cols = F.int8_double_quant(A_rows.to(torch.float16), threshold=state.threshold)
    if state.threshold > 0.0:
        output, _ = torch.ops.bitsandbytes.int8_mixed_scaled_mm.default(A_rows, CA, CB, SCA, SCB, outlier_cols, bias)
    else:
        output = torch.ops.bitsandbytes.int8_scaled_mm.default(CA, CB, SCA, SCB, bias=bias, dtype=A.dtype)
    return output.reshape(*A.shape[:-1], CB.shape[0]), CAt, SCAt, outlier_cols


class MatMul8bitLt(torch.autograd.Function):
    """out = A @ W.T + bias with W in int8 and LLM.int8()'s outlier decomposition.

    Gradients: A (through the dequantized weight), bias, and W when the state trains
    fp16 weights. The weight gradient is an int8 product of the column-quantized
    output gradient and the column-quantized A, plus the outlier columns in float.
    Upstream pairs the row-quantized output gradient with the column statistics
    there and counts the non-outlier elements of outlier columns twice; here both
    are correct (formats.md 5.4).
    """

    @staticmethod
    def forward(ctx, A, B, out=None, bias=None, state=None):
        state = MatmulLtState() if state is None else state
        ctx.state = state
        ctx.shape_A, ctx.dtype_A, ctx.dtype_B = A.shape, A.dtype, B.dtype
        ctx.dtype_bias = None if bias is None else bias.dtype
        ctx.empty = A.numel() == 0
        if ctx.empty:
            ctx.shape_B = B.shape
            return torch.empty(_empty_matmul_shape(A, B), dtype=A.dtype, device=A.device)
        _warn_cast_to_float16(A)
        needs_weight_grad = ctx.needs_input_grad[1]
        output, CAt, SCAt, outlier_cols = _int8_linear(A, B, bias, state, keep_column_quantization=needs_weight_grad)
        # Only the weight gradient's path materializes the outlier columns.
        if outlier_cols is not None:
            state.idx = outlier_cols
        ctx.save_for_backward(A if needs_weight_grad else None, CAt, SCAt, outlier_cols)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.empty:
            grad_bias = None if ctx.dtype_bias is None else torch.zeros(
                grad_output.shape[-1], dtype=ctx.dtype_bias, device=grad_output.device)
            return (torch.zeros(ctx.shape_A, dtype=ctx.dtype_A, device=grad_output.device),
                    torch.zeros(ctx.shape_B, dtype=ctx.dtype_B, device=grad_output.device), None, grad_bias, None)
        need_A, need_B, _, need_bias, _ = ctx.needs_input_grad
        A, CAt, SCAt, outlier_cols = ctx.saved_tensors
        state = ctx.state
        grad_rows = grad_output.reshape(-1, grad_output.shape[-1])
        grad_A = grad_B = grad_bias = None
        if need_bias:
            grad_bias = grad_rows.sum(0, dtype=ctx.dtype_bias)
        if need_B:
            grad_B = _int8_weight_gradient(grad_rows, A.reshape(-1, A.shape[-1]), CAt, SCAt, outlier_cols, state)
            grad_B = grad_B.to(ctx.dtype_B)
        if need_A:
            weight = _dequantized_weight(state, ctx.dtype_A)
            grad_A = torch.matmul(grad_rows.to(ctx.dtype_A), weight).reshape(ctx.shape_A)
        return grad_A, grad_B, None, grad_bias, None


def _int8_weight_gradient(grad_rows, A_rows, CAt, SCAt, outlier_cols, state):
    """grad_output.T @ A, [N, K], as an int8 product (the outlier columns of A in float)."""
    _, grad_by_column, _, grad_column_stats, _ = F.int8_double_quant(grad_rows.to(torch.float16))
    has_outliers = state.threshold > 0.0 and outlier_cols is not None and outlier_cols.numel() > 0
    if has_outliers:
        CAt = CAt.index_fill(1, outlier_cols, 0)
    grad_B = torch.ops.bitsandbytes.int8_scaled_mm.default(
        grad_by_column.t().contiguous(), CAt.t().contiguous(), grad_column_stats, SCAt, dtype=torch.float32)
    if has_outliers:
        outlier_product = torch.matmul(grad_rows.t().float(), A_rows[:, outlier_cols].float())
        grad_B[:, outlier_cols] += outlier_product
    return grad_B


class MatMul8bitFp(torch.autograd.Function):
    """Training on CPU and XPU: the int8 weight dequantized, then a plain float linear.

    Faster there than the int8 product with its quantization of every gradient, and
    exact in the activations; the weight gradient (trainable fp16 weights only) is
    grad_output.T @ A in A's dtype.
    """

    @staticmethod
    def forward(ctx, A, B, out=None, bias=None, state=MatmulLtState):
        state = MatmulLtState() if state is None or state is MatmulLtState else state
        _weight_int8(B, state)
        ctx.state = state
        ctx.shape_A, ctx.dtype_A, ctx.dtype_B = A.shape, A.dtype, B.dtype
        ctx.dtype_bias = None if bias is None else bias.dtype
        ctx.save_for_backward(A if ctx.needs_input_grad[1] else None)
        return torch.nn.functional.linear(A, _dequantized_weight(state, A.dtype), bias)

    @staticmethod
    def backward(ctx, grad_output):
        need_A, need_B, _, need_bias, _ = ctx.needs_input_grad
        (A,) = ctx.saved_tensors
        grad_rows = grad_output.reshape(-1, grad_output.shape[-1])
        grad_A = grad_B = grad_bias = None
        if need_bias:
            grad_bias = grad_rows.sum(0, dtype=ctx.dtype_bias)
        if need_B:
            A_rows = A.reshape(-1, A.shape[-1])
            grad_B = torch.matmul(grad_rows.t().to(A.dtype), A_rows).to(ctx.dtype_B)
        if need_A:
            weight = _dequantized_weight(ctx.state, ctx.dtype_A)
            grad_A = torch.matmul(grad_rows.to(ctx.dtype_A), weight).reshape(ctx.shape_A)
        return grad_A, grad_B, None, grad_bias, None


def matmul(A: torch.Tensor, B: torch.Tensor, out: Optional[torch.Tensor] = None,
           state: Optional[MatmulLtState] = None, threshold=0.0, bias: Optional[torch.Tensor] = None):
    """LLM.int8() ``A @ B.T (+ bias)`` for a weight B [N, K] (fp16, or the Int8Params of Linear8bitLt).

    threshold > 0 sets state.threshold: input columns with any |a| >= threshold are
    computed in A's dtype. Training on CPU/XPU takes MatMul8bitFp. Without any
    gradient to compute, the forward runs without an autograd.Function, which
    torch.compile traces as plain ops.
    """
    state = MatmulLtState() if state is None else state
    if threshold > 0.0:
        state.threshold = threshold
    if state.is_training and A.device.type in ("cpu", "xpu"):
        return MatMul8bitFp.apply(A, B, out, bias, state)
    needs_grad = torch.is_grad_enabled() and (
        A.requires_grad or B.requires_grad or (bias is not None and bias.requires_grad))
    if needs_grad or A.numel() == 0:
        return MatMul8bitLt.apply(A, B, out, bias, state)
    _warn_cast_to_float16(A)
    output, _, _, _ = _int8_linear(A, B, bias, state, keep_column_quantization=False)
    return output


def _gemm_4bit(A, B, quant_state, bias):
    """The forward product through the gemm_4bit op, with the statistics as the op takes them."""
    N, K = quant_state.shape
    if quant_state.nested:
        if quant_state.state2.blocksize != NESTED_BLOCKSIZE:
            raise NotImplementedError(
                f"matmul_4bit: nested statistics with blocksize {quant_state.state2.blocksize} are not "
                f"supported (the nested blocksize of quantize_4bit is {NESTED_BLOCKSIZE})")
        return torch.ops.bitsandbytes.gemm_4bit(
            A, B, [N, K], quant_state.state2.absmax, quant_state.blocksize, quant_state.quant_type, bias,
            quant_state.absmax, quant_state.state2.code, quant_state.offset)
    return torch.ops.bitsandbytes.gemm_4bit(A, B, [N, K], quant_state.absmax, quant_state.blocksize,
                                            quant_state.quant_type, bias)


class MatMul4Bit(torch.autograd.Function):
    """out = A @ dequant(B).T + bias; gradients for A and bias only (the weight is frozen)."""

    @staticmethod
    def forward(ctx, A, B, out=None, bias=None, quant_state=None):
        ctx.quant_state = quant_state
        ctx.dtype_A, ctx.dtype_bias = A.dtype, None if bias is None else bias.dtype
        ctx.empty = A.numel() == 0
        if ctx.empty:
            result = torch.empty((*A.shape[:-1], quant_state.shape[0]), dtype=A.dtype, device=A.device)
        else:
            result = _gemm_4bit(A, B, quant_state, bias)
        ctx.save_for_backward(B if ctx.needs_input_grad[0] else None)
        if out is not None:
            out.copy_(result)
            return out
        return result

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.empty:
            return (torch.zeros(grad_output.shape[:-1] + (ctx.quant_state.shape[1],), dtype=ctx.dtype_A,
                                device=grad_output.device), None, None,
                    None if ctx.dtype_bias is None else torch.zeros(ctx.quant_state.shape[0], dtype=ctx.dtype_bias,
                                                                    device=grad_output.device), None)
        grad_A = grad_bias = None
        if ctx.needs_input_grad[3]:
            grad_bias = grad_output.reshape(-1, grad_output.shape[-1]).sum(0, dtype=ctx.dtype_bias)
        if ctx.needs_input_grad[0]:
            (B,) = ctx.saved_tensors
            weight = F.dequantize_4bit(B, ctx.quant_state).to(grad_output.dtype)
            grad_A = torch.matmul(grad_output, weight)
        return grad_A, None, None, grad_bias, None


def matmul_4bit(A: torch.Tensor, B: torch.Tensor, quant_state: F.QuantState, out: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None):
    """A @ W.T (+ bias) for a packed 4-bit weight W described by quant_state (shape [N, K])."""
    if quant_state is None:
        raise ValueError("quant_state is required")
    if len(quant_state.shape) != 2:
        raise ValueError("matmul_4bit: quant_state.shape must be 2D [N, K]")
    B = B.view(-1, 1)
    N, K = quant_state.shape
    if A.shape[-1] != K:
        if A.shape[-1] == N:
            # A weight quantized from a [K, N] tensor: the product with its transpose.
            if not torch.compiler.is_compiling():
                # Upstream's wording, word for word: users filter warnings on it.
                warnings.warn(
                    f"matmul_4bit: weight was quantized from a [K, N] tensor (quant_state.shape="
                    f"{list(quant_state.shape)}). Re-quantize from the weight in [N, K] (out_features, in_features) "
                    "orientation. This will be an error in a future version.",
                    DeprecationWarning,
                    stacklevel=2,
                )
            result = torch.nn.functional.linear(A, F.dequantize_4bit(B, quant_state).to(A.dtype).t(), bias)
            if out is not None:
                return out.copy_(result)
            return result
        raise ValueError(f"matmul_4bit: A's last dimension ({A.shape[-1]}) must equal the weight's in_features "
                         f"({K}), quant_state.shape is {tuple(quant_state.shape)}")
    needs_grad = torch.is_grad_enabled() and (A.requires_grad or (bias is not None and bias.requires_grad))
    if not needs_grad:
        if A.numel() == 0:
            result = torch.empty((*A.shape[:-1], N), dtype=A.dtype, device=A.device)
        else:
            result = _gemm_4bit(A, B, quant_state, bias)
        if out is not None:
            out.copy_(result)
            return out
        return result
    return MatMul4Bit.apply(A, B, out, bias, quant_state)
