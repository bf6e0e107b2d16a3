"""Autograd entry points: the 4-bit matmul used by Linear4bit and QLoRA."""

import logging
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

import bitsandbytes.functional as F
from bitsandbytes._formats import NESTED_BLOCKSIZE

logger = logging.getLogger(__name__)


class GlobalOutlierPooler:
    """Collects outlier feature indices across layers (LLM.int8() bookkeeping)."""

    _instance = None

    def __init__(self):
        raise RuntimeError("Call get_instance() instead")

    def initialize(self):
        self.outliers = set()
        self.model_dim = None

    @classmethod
    def get_instance(cls):
        if cls._instance is None:
            cls._instance = cls.__new__(cls)
            cls._instance.initialize()
        return cls._instance

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
            warnings.warn(f"MatmulLtState.{name} is deprecated and will be removed in a future release.",
                          FutureWarning, stacklevel=2)
            return None
        raise AttributeError(f"'MatmulLtState' object has no attribute '{name}'")

    def reset_grads(self):
        self.CB = None
        self.SB = None
        self.SCB = None
        self.SBt = None
        self.CBt = None


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
                warnings.warn("matmul_4bit: the weight was quantized transposed ([K, N]); this path is "
                              "deprecated and slow", DeprecationWarning, stacklevel=2)
            return torch.nn.functional.linear(A, F.dequantize_4bit(B, quant_state).to(A.dtype).t(), bias)
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
