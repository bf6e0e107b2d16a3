"""LLM.int8() modules: Int8Params, Linear8bitLt, Embedding8bit, and the experimental OutlierAwareLinear.

The weight quantizes row-wise to int8 (``CB``, with float32 row absmax ``SCB``) when
its float data first moves from the CPU to any real device, CPU included
(integrations.md 0.7). State dicts use upstream's keys: ``weight`` (int8),
``SCB`` and ``weight_format`` at module level (python_api.md 3.3, 3.4).
"""

import copy
from typing import Optional

import torch
import torch.nn.functional as torch_F
from torch import nn

import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes.utils import INVERSE_LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING, OutlierTracer

from ._state_dict import record_load_problems

# weight_format of a saved Linear8bitLt: 0 is "row", the only layout of the int8 weight.
ROW_WEIGHT_FORMAT = 0


def _check_finite_rows(row_stats: torch.Tensor) -> None:
    """Refuses a weight with a NaN or Inf (or a value beyond float16's range) in a row.

    Such a value turns its row's absmax, and so the whole quantized row, into garbage
    without any error downstream. The quantizers make that row's statistic NaN or Inf,
    so the [rows] statistics are checked instead of the whole weight (which cost more
    than the quantization itself when loading a model).
    """
    if not torch.isfinite(row_stats).all():
        bad_rows = (~torch.isfinite(row_stats)).nonzero().view(-1)
        raise ValueError(
            f"Int8Params: cannot quantize a weight holding NaN or Inf after the cast to float16 (rows "
            f"{bad_rows[:8].tolist()}{' ...' if bad_rows.numel() > 8 else ''}); LLM.int8() quantizes each row by "
            "its absmax, so such a row would be lost")


class Int8Params(torch.nn.Parameter):
    """A parameter holding an LLM.int8() weight: int8 data (``CB``) and its row absmax (``SCB``)."""

    def __new__(cls, data: Optional[torch.Tensor] = None, requires_grad=True, has_fp16_weights=False,
                CB: Optional[torch.Tensor] = None, SCB: Optional[torch.Tensor] = None, **kwargs):
        # kwargs: attributes that other libraries attach (e.g. _is_hf_initialized) are not carried over.
        if data is None:
            data = torch.empty(0)
        self = torch.Tensor._make_subclass(cls, data, requires_grad)
        self.CB = CB
        self.SCB = SCB
        self.has_fp16_weights = has_fp16_weights
        return self

    def _quantize(self, device):
        if self.has_fp16_weights:
            self.data = self.data.to(device)
            return self
        # Moved first, cast there: torch casts a CPU -> GPU copy of another dtype on the
        # CPU, single-threaded per tensor (most of load_in_8bit's load time on the H200).
        weight = self.data.contiguous().to(device=device).to(torch.float16)
        CB, SCB, _ = F.int8_vectorwise_quant(weight)
        _check_finite_rows(SCB)
        self.data = CB
        self.CB = CB
        self.SCB = SCB
        return self

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self, device=None, non_blocking: bool = False):
        return self.to(device="cuda" if device is None else device, non_blocking=non_blocking)

    def xpu(self, device=None, non_blocking: bool = False):
        return self.to(device="xpu" if device is None else device, non_blocking=non_blocking)

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self), data=copy.deepcopy(self.data, memo), requires_grad=self.requires_grad,
                                 has_fp16_weights=self.has_fp16_weights, CB=copy.deepcopy(self.CB, memo),
                                 SCB=copy.deepcopy(self.SCB, memo))
        memo[id(self)] = new
        return new

    def to(self, *args, **kwargs):
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        quantizes = (device is not None and device.type != "meta" and self.data.device.type == "cpu"
                     and self.data.dtype != torch.int8 and not self.has_fp16_weights)
        if quantizes:
            return self._quantize(device)
        moved = Int8Params(super().to(device=device, dtype=dtype, non_blocking=non_blocking),
                           requires_grad=self.requires_grad, has_fp16_weights=self.has_fp16_weights)
        if self.data.dtype == torch.int8:
            moved.CB = moved.data
            moved.SCB = self.SCB
            if self.SCB is not None and self.SCB.device.type != "meta" and device is not None:
                moved.SCB = self.SCB.to(device, non_blocking=non_blocking)
        return moved


def _keep_statistics_with_weight(weight: Int8Params, state=None) -> None:
    """After a module move: the statistics follow the weight's device, CB stays its data.

    nn.Module._apply keeps the old parameter object and only replaces its data, so
    the attributes of the moved copy Int8Params.to made are lost on that path.
    """
    device = weight.device
    if device.type == "meta" or weight.dtype != torch.int8:
        return
    if weight.CB is not None:
        weight.CB = weight.data
    if weight.SCB is not None and weight.SCB.device != device and weight.SCB.device.type != "meta":
        weight.SCB = weight.SCB.to(device)
    if state is not None:
        if state.CB is not None and state.CB.device != device:
            state.CB = weight.data
        if state.SCB is not None and state.SCB.device != device and state.SCB.device.type != "meta":
            state.SCB = state.SCB.to(device)


def maybe_rearrange_weight(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    """Load pre-hook: accepts only the row layout of a saved int8 weight, and drops its ``weight_format``."""
    if state_dict.get(f"{prefix}weight") is None:
        return
    key = f"{prefix}weight_format"
    weight_format = state_dict.pop(key, "row")
    if isinstance(weight_format, torch.Tensor):
        if weight_format.numel() != 1 or weight_format.is_meta or weight_format.is_floating_point():
            raise ValueError(f"{key}: expected one integer (0 is 'row'), got a {weight_format.dtype} tensor of "
                             f"shape {tuple(weight_format.shape)} on {weight_format.device}")
        weight_format = weight_format.item()
    if isinstance(weight_format, int):
        if weight_format not in INVERSE_LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING:
            raise ValueError(f"Expected supported weight format - got {weight_format} ({key})")
        weight_format = INVERSE_LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING[weight_format]
    if weight_format != "row":
        raise ValueError(f"Only 'row' weight format is supported, got {weight_format} ({key})")


class Linear8bitLt(nn.Linear):
    """nn.Linear computed with LLM.int8(): int8 weight and activations, outlier input columns in 16-bit.

    threshold > 0 sends the input columns holding any |x| >= threshold through a
    16-bit product; has_fp16_weights=True keeps (and trains) a float weight,
    quantized again at every step.
    """

    def __init__(self, input_features: int, output_features: int, bias=True, has_fp16_weights=True,
                 threshold=0.0, index=None, device=None):
        super().__init__(input_features, output_features, bias, device)
        self.state = bnb.MatmulLtState()
        self.index = index
        self.state.threshold = threshold
        self.state.has_fp16_weights = has_fp16_weights
        if threshold > 0.0 and not has_fp16_weights:
            self.state.use_pool = True
        self.weight = Int8Params(self.weight.data, has_fp16_weights=has_fp16_weights, requires_grad=has_fp16_weights)
        self._register_load_state_dict_pre_hook(maybe_rearrange_weight)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.state.has_fp16_weights:
            return
        SCB = self.weight.SCB if self.weight.SCB is not None else self.state.SCB
        if SCB is None:
            return
        destination[prefix + "SCB"] = SCB if keep_vars else SCB.detach()
        destination[prefix + "weight_format"] = torch.tensor(ROW_WEIGHT_FORMAT, dtype=torch.uint8)

    def _check_checkpoint(self, state_dict, prefix) -> None:
        """Refuses int8 codes without their row statistics (or the reverse) and a float weight over codes:
        either pairs codes with scales they were not quantized with. Raises before anything is loaded."""
        scb_key, weight_key = prefix + "SCB", prefix + "weight"
        weight, scb = state_dict.get(weight_key), state_dict.get(scb_key)
        if scb is None:
            if not isinstance(weight, torch.Tensor):
                return
            if weight.dtype == torch.int8:
                raise ValueError(f"{scb_key}: missing, and {weight_key} holds int8 codes that need it")
            if self.weight.dtype == torch.int8:
                raise ValueError(f"{weight_key}: the layer is quantized (int8), the checkpoint's weight is "
                                 f"{weight.dtype}; load a float checkpoint before the layer is moved to a device")
            return
        if weight is None:
            return
        if not isinstance(weight, torch.Tensor) or weight.dtype != torch.int8:
            raise ValueError(f"{weight_key}: a checkpoint with {scb_key} holds int8 codes, got "
                             f"{getattr(weight, 'dtype', type(weight).__name__)}")
        rows = self.out_features
        if not isinstance(scb, torch.Tensor) or not scb.is_floating_point() or tuple(scb.shape) != (rows,):
            described = f"{scb.dtype} of shape {tuple(scb.shape)}" if isinstance(scb, torch.Tensor) else type(scb)
            raise ValueError(f"{scb_key}: expected the float32 row statistics of shape ({rows},), got {described}")
        if self.weight.device.type != "meta" and (scb.is_meta or weight.is_meta):
            raise ValueError(f"{scb_key if scb.is_meta else weight_key}: the checkpoint's tensor is on the meta "
                             "device and holds no data to copy")
        if self.weight.device.type != "meta" and (self.weight.SCB if self.weight.SCB is not None
                                                  else self.state.SCB) is None:
            raise RuntimeError("Loading a quantized checkpoint into non-quantized Linear8bitLt is not supported. "
                               "Please call module.cuda() before module.load_state_dict()")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key, weight_key = prefix + "SCB", prefix + "weight"
        self._check_checkpoint(state_dict, prefix)
        state_dict = dict(state_dict)
        # The pre-hook checks and drops weight_format; it runs here so that it runs before anything loads.
        maybe_rearrange_weight(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        scb = state_dict.pop(key, None)
        if weight_key not in state_dict:
            scb = None  # statistics without their codes: the weight is missing (an error if strict)
        on_meta = scb is not None and self.weight.device.type == "meta"
        if record_load_problems(self, state_dict, prefix, strict, missing_keys, unexpected_keys, error_msgs,
                                rebuilt=("weight",) if on_meta else ()):
            return
        if on_meta:
            # A layer built on the meta device takes the checkpoint's tensors as they are.
            weight = state_dict.pop(weight_key)
            errors_before = len(error_msgs)
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)
            if weight_key in missing_keys:
                missing_keys.remove(weight_key)
            if len(error_msgs) == errors_before:
                self.weight = Int8Params(weight, requires_grad=False, has_fp16_weights=False, CB=weight, SCB=scb)
            return
        errors_before = len(error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if scb is None or len(error_msgs) > errors_before:
            return
        # After the first forward the statistics live in the state (init_8bit_state).
        target = self.weight.SCB if self.weight.SCB is not None else self.state.SCB
        with torch.no_grad():
            target.copy_(scb)
        if self.state.SCB is not None:
            self.state.SCB = target

    def init_8bit_state(self):
        self.state.CB = self.weight.CB
        self.state.SCB = self.weight.SCB
        self.weight.CB = None
        self.weight.SCB = None

    def to(self, *args, **kwargs):
        result = super().to(*args, **kwargs)
        device, _, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None:
            if result.state.CB is not None:
                result.state.CB = result.state.CB.to(device)
            if result.state.SCB is not None:
                result.state.SCB = result.state.SCB.to(device)
        return result

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        if isinstance(self.weight, Int8Params):
            _keep_statistics_with_weight(self.weight, self.state)
        return result

    def forward(self, x: torch.Tensor):
        self.state.is_training = self.training
        if self.weight.CB is not None:
            self.init_8bit_state()
        bias = self.bias
        if bias is not None and bias.dtype != x.dtype:
            # The bias parameter follows the input's dtype, permanently as upstream does; under
            # torch.compile (which cannot change a tensor's dtype through .data) for this call only.
            if torch.compiler.is_compiling():
                bias = bias.to(x.dtype)
            else:
                self.bias.data = self.bias.data.to(x.dtype)
        out = bnb.matmul(x, self.weight, bias=bias, state=self.state)
        # A weight that was still float (never moved) is int8 from now on. Under
        # torch.compile this is skipped: the weight is int8 already by then.
        if not self.state.has_fp16_weights and self.state.CB is not None and not torch.compiler.is_compiling():
            self.weight.data = self.state.CB
        return out


class Embedding8bit(nn.Embedding):
    """nn.Embedding with an int8 table (row-wise absmax); a lookup dequantizes only the rows it reads."""

    def __init__(self, num_embeddings, embedding_dim, device=None, dtype=None):
        super().__init__(num_embeddings, embedding_dim, device=device, dtype=dtype)
        self.dtype = self.weight.data.dtype
        self.weight = Int8Params(self.weight.data, has_fp16_weights=False, requires_grad=False)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        raise NotImplementedError("Saving Embedding8bit module is not implemented")

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        if isinstance(self.weight, Int8Params):
            _keep_statistics_with_weight(self.weight)
        return result

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows, row_stats = self.weight.data, self.weight.SCB
        if row_stats is None:
            raise RuntimeError("Embedding8bit: the table is not quantized yet; move the module to a device "
                               "(.to(device), .cuda() or .cpu()) first")
        if rows.shape != (self.num_embeddings, self.embedding_dim) or row_stats.shape != (self.num_embeddings,):
            raise RuntimeError(f"Embedding8bit: expected an int8 table {(self.num_embeddings, self.embedding_dim)} "
                               f"and statistics {(self.num_embeddings,)}, got {tuple(rows.shape)} and "
                               f"{tuple(row_stats.shape)}")
        selected_rows = torch_F.embedding(input, rows)
        selected_stats = torch_F.embedding(input, row_stats.view(self.num_embeddings, 1))
        return (selected_rows * (selected_stats / 127.0)).to(self.dtype)


class OutlierAwareLinear(nn.Linear):
    """Experimental: a linear layer that quantizes its weight knowing the outlier input dimensions.

    Subclasses implement quantize_weight and forward_with_outliers; the outlier
    dimensions come from an initialized OutlierTracer. Upstream's forward never
    calls forward_with_outliers (it returns None); this one does.
    """

    def __init__(self, input_features, output_features, bias=True, device=None):
        super().__init__(input_features, output_features, bias, device)
        self.outlier_dim = None
        self.is_quantized = False

    def forward_with_outliers(self, x, outlier_idx):
        raise NotImplementedError("Please override the `forward_with_outliers(self, x, outlier_idx)` function")

    def quantize_weight(self, w, outlier_idx):
        raise NotImplementedError("Please override the `quantize_weights(self, w, outlier_idx)` function")

    def forward(self, x):
        if self.outlier_dim is None:
            tracer = OutlierTracer.get_instance()
            if not tracer.is_initialized():
                print("Please use OutlierTracer.initialize(model) before using the OutlierAwareLinear layer")
            self.outlier_dim = tracer.get_outliers(self.weight)
        if not self.is_quantized:
            with torch.no_grad():
                self.weight.data.copy_(self.quantize_weight(self.weight, self.outlier_dim))
            self.is_quantized = True
        return self.forward_with_outliers(x, self.outlier_dim)
