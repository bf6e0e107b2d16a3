"""bitsandbytes.nn.modules: the 4-bit modules (Params4bit, Linear4bit, Embedding4bit) defined here,
and the LLM.int8() ones of nn/int8.py re-exported under upstream's module path.

A 4-bit weight quantizes when it first moves to a real device (`.to()`, `.cuda()`,
`.cpu()`); the packed bytes live in the parameter's data, the statistics in its
QuantState. State dicts use upstream's keys (`weight.absmax`,
`weight.quant_map`, `weight.nested_*`, `weight.quant_state.bitsandbytes__<type>`).

Under FSDP2 the module's weight is FSDP's own parameter (a DTensor; a plain one over the
all-gathered bytes during forward): the QuantState stays on the module, the forward re-wraps
the bytes, and the state dict saves and loads the module's state around FSDP's parameter.
"""

import copy
import logging
from typing import Any, Optional

import torch
import torch.nn.functional as torch_F
from torch import nn

import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes._functional.fourbit import check_packed_4bit_data
from bitsandbytes.functional import QuantState

from ._state_dict import record_load_problems

logger = logging.getLogger(__name__)

# Attributes a Params4bit carries in its __dict__ (callers rebuild one from another's __dict__).
_PARAMS4BIT_ATTRIBUTES = ("blocksize", "compress_statistics", "quant_type", "quant_state", "quant_storage",
                          "bnb_quantized", "module")


def _rebuild_params4bit(state):
    param = Params4bit.__new__(Params4bit)
    param.__setstate__(state)
    return param


class Params4bit(torch.nn.Parameter):
    """A parameter holding a 4-bit packed weight and its QuantState."""

    def __new__(cls, data: Optional[torch.Tensor] = None, requires_grad=False, quant_state: Optional[QuantState] = None,
                blocksize: Optional[int] = None, compress_statistics: bool = True, quant_type: str = "fp4",
                quant_storage: torch.dtype = torch.uint8, module: Optional["Linear4bit"] = None,
                bnb_quantized: bool = False, **kwargs) -> "Params4bit":
        # kwargs: attributes that other libraries attach (e.g. _is_hf_initialized) are not carried over.
        if data is None:
            data = torch.empty(0)
        self = torch.Tensor._make_subclass(cls, data, requires_grad)
        self.blocksize = 64 if blocksize is None else blocksize
        self.compress_statistics = compress_statistics
        self.quant_type = quant_type
        self.quant_state = quant_state
        self.quant_storage = quant_storage
        self.bnb_quantized = bnb_quantized
        self.data = data
        self.module = module
        return self

    # ---- pickling and copies -------------------------------------------------

    def __getstate__(self):
        state = self.__dict__.copy()
        state["data"] = self.data
        state["requires_grad"] = self.requires_grad
        return state

    def __setstate__(self, state):
        self.requires_grad = state["requires_grad"]
        for name in _PARAMS4BIT_ATTRIBUTES:
            setattr(self, name, state.get(name))
        self.data = state["data"]

    def __reduce_ex__(self, protocol):
        return _rebuild_params4bit, (self.__getstate__(),)

    def __deepcopy__(self, memo):
        state = self.__getstate__()
        # The copy belongs to the module's copy when the module is being copied, and to no module when
        # only the parameter is: quantizing it must never write into the original module.
        state = {**state, "data": copy.deepcopy(state["data"], memo),
                 "quant_state": copy.deepcopy(state["quant_state"], memo),
                 "module": memo.get(id(state["module"])) if state["module"] is not None else None}
        new = type(self).__new__(type(self))
        new.__setstate__(state)
        memo[id(self)] = new
        return new

    def __copy__(self):
        new = type(self).__new__(type(self))
        new.__setstate__(self.__getstate__())
        return new

    # ---- the QuantState, reachable as attributes (FSDP state-dict traversal) ---

    def _state(self, name, nested=False):
        state = self.__dict__.get("quant_state")
        if state is None or (nested and state.state2 is None):
            raise AttributeError(f"'Params4bit' object has no attribute '{name}'")
        return state

    @property
    def absmax(self):
        return self._state("absmax").absmax

    @property
    def code(self):
        return self._state("code").code

    @property
    def quant_map(self):
        return self._state("quant_map").code

    @property
    def offset(self):
        return self._state("offset").offset

    @property
    def state2(self):
        return self._state("state2").state2

    @property
    def nested_absmax(self):
        return self._state("nested_absmax", nested=True).state2.absmax

    @property
    def nested_blocksize(self):
        return self._state("nested_blocksize", nested=True).state2.blocksize

    @property
    def nested_quant_map(self):
        return self._state("nested_quant_map", nested=True).state2.code

    @property
    def nested_dtype(self):
        return self._state("nested_dtype", nested=True).state2.dtype

    @property
    def nested_offset(self):
        return self._state("nested_offset", nested=True).offset

    # ---- construction from a checkpoint -----------------------------------------

    @classmethod
    def from_prequantized(cls, data: torch.Tensor, quantized_stats: dict[str, Any], requires_grad: bool = False,
                          device="cuda", module: Optional["Linear4bit"] = None, **kwargs) -> "Params4bit":
        quant_state = QuantState.from_dict(qs_dict=quantized_stats, device=device)
        weight_key = _weight_key(quantized_stats)
        check_packed_4bit_data(data, quant_state, weight_key, device)
        _check_module_shape(module, quant_state, quantized_stats)
        self = cls(data.to(device), requires_grad=requires_grad, quant_state=quant_state,
                   blocksize=quant_state.blocksize, compress_statistics=quant_state.nested,
                   quant_type=quant_state.quant_type, quant_storage=data.dtype, module=module, bnb_quantized=True)
        if module is not None:
            module.quant_state = quant_state
        return self

    # ---- device moves ----------------------------------------------------------

    def _quantize(self, device):
        weight = self.data.contiguous().to(device)
        packed, quant_state = F.quantize_4bit(weight, blocksize=self.blocksize,
                                              compress_statistics=self.compress_statistics,
                                              quant_type=self.quant_type, quant_storage=self.quant_storage)
        self.data = packed
        self.quant_state = quant_state
        if self.module is not None:
            self.module.quant_state = quant_state
        self.bnb_quantized = True
        return self

    def cpu(self):
        return self.to(device="cpu")

    def _restore_standard_layout(self):
        """Converts a weight in upstream's AVX512-BF16 CPU layout (python_api.md 2.8) back, in place.

        Every kernel of this package, and every boundary (state dict, GPU copy), reads
        the standard layout.
        """
        if getattr(self.quant_state, "packing_format_for_cpu", False):
            self.data, self.quant_state = F._convert_weight_packed_for_cpu_inverse(self.data, self.quant_state)
            if self.module is not None:
                self.module.quant_state = self.quant_state

    def cuda(self, device=None, non_blocking: bool = False):
        self._restore_standard_layout()
        return self.to(device="cuda" if device is None else device, non_blocking=non_blocking)

    def xpu(self, device=None, non_blocking: bool = False):
        self._restore_standard_layout()
        return self.to(device="xpu" if device is None else device, non_blocking=non_blocking)

    def to(self, *args, **kwargs):
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and device.type != "meta" and not self.bnb_quantized:
            return self._quantize(device)
        if self.quant_state is not None and device is not None:
            self.quant_state.to(device)
        return Params4bit(super().to(device=device, dtype=dtype, non_blocking=non_blocking),
                          requires_grad=self.requires_grad, quant_state=self.quant_state, blocksize=self.blocksize,
                          compress_statistics=self.compress_statistics, quant_type=self.quant_type,
                          quant_storage=self.quant_storage, bnb_quantized=self.bnb_quantized)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs or {})
        if func not in (torch.chunk, torch.split):
            return result
        # FSDP2 shards parameters with chunk/split: the shards keep the 4-bit identity.
        source = args[0]

        def wrap(piece):
            return cls(piece, requires_grad=source.requires_grad, quant_state=source.quant_state,
                       blocksize=source.blocksize, compress_statistics=source.compress_statistics,
                       quant_type=source.quant_type, quant_storage=source.quant_storage, module=source.module,
                       bnb_quantized=source.bnb_quantized)

        return tuple(wrap(piece) for piece in result) if isinstance(result, tuple) else wrap(result)


def _weight_key(quantized_stats: dict[str, Any]) -> str:
    """The state-dict key of the packed data whose statistics these are ("layer.weight"; "weight" unprefixed)."""
    for key in quantized_stats:
        if key.split(".")[-1] == "absmax" and "." in key:
            return key[: -len(".absmax")]
    return "weight"


def _logical_weight_shape(module) -> Optional[torch.Size]:
    """The [rows, columns] a 4-bit module's weight stands for; None for other modules."""
    if isinstance(module, nn.Linear):
        return torch.Size((module.out_features, module.in_features))
    if isinstance(module, nn.Embedding):
        return torch.Size((module.num_embeddings, module.embedding_dim))
    return None


def _check_module_shape(module, quant_state: QuantState, quantized_stats: dict[str, Any]) -> None:
    """A checkpoint of another layer size (or a transposed `shape`) must not load: its codes would be read
    in the wrong order, silently."""
    expected = _logical_weight_shape(module)
    if expected is not None and quant_state.shape != expected:
        packed_key = next((key for key in quantized_stats if "quant_state" in key), "quant_state")
        raise ValueError(f"{packed_key}: the checkpoint's weight has shape {list(quant_state.shape)}, but "
                         f"{type(module).__name__} expects {list(expected)}")


def _apply_keeping_packed_storage(module, fn, apply):
    """Module._apply for a 4-bit layer: the packed weight follows device moves but never a dtype
    conversion (``model.half()``, ``.to(torch.float16)``), which would convert its code bytes as
    numbers; its dtype is the storage of the codes, not a precision."""
    weight = module.weight
    if not (isinstance(weight, Params4bit) and weight.bnb_quantized):
        return apply(fn)

    def keep_packed_storage(tensor):
        applied = fn(tensor)
        if tensor is weight and isinstance(applied, torch.Tensor) and applied.dtype != tensor.dtype:
            return tensor.to(applied.device)
        return applied

    return apply(keep_packed_storage)


def fix_4bit_weight_quant_state_from_module(module: "Linear4bit | Embedding4bit"):
    """Restores a weight's QuantState from its module (FSDP can replace the parameter object)."""
    if getattr(module.weight, "quant_state", None) is not None:
        return
    if getattr(module, "quant_state", None) is None:
        logger.warning("FP4 quantization state not initialized. Please call .cuda() or .to(device) on the "
                       "LinearFP4 layer first.")
    if module.weight.shape[1] != 1:
        raise RuntimeError("weight: expected the packed 4-bit layout [n, 1], got shape "
                           f"{tuple(module.weight.shape)} (was the layer quantized?)")
    if not isinstance(module.weight, Params4bit):
        if module.weight.dtype != module.quant_storage:
            # The bytes were converted as numbers (e.g. FSDP's MixedPrecisionPolicy param_dtype): not 4-bit codes any more.
            raise RuntimeError(f"weight: the packed 4-bit data is stored as {module.quant_storage} but arrived as "
                               f"{module.weight.dtype}; keep a mixed-precision param_dtype equal to the quant_storage")
        module.weight = Params4bit(module.weight, quant_storage=module.quant_storage, bnb_quantized=True)
    module.weight.quant_state = module.quant_state


def _quant_state_of(module: "Linear4bit") -> Optional[QuantState]:
    """The weight's QuantState, else the module's (FSDP replaces the Params4bit by its own parameter)."""
    quant_state = getattr(module.weight, "quant_state", None)
    return module.quant_state if quant_state is None else quant_state


def _weight_held_by_fsdp(module: "Linear4bit") -> bool:
    """Whether FSDP2 holds the packed weight in its own parameter (a DTensor), which must stay the module's."""
    return not isinstance(module.weight, Params4bit) and hasattr(module.weight, "device_mesh")


def _expose_quant_state(weight: torch.Tensor, quant_state: QuantState, entries: dict):
    """Gives a tensor standing in for a Params4bit the attributes that name its state-dict entries.

    torch.distributed.checkpoint resolves every state-dict key by attribute access from the
    model (`...weight.absmax`, `...weight.quant_state.bitsandbytes__nf4`); FSDP2's DTensor
    parameter has none of Params4bit's properties, so a save or load would fail on them.
    """
    for key, value in entries.items():
        name = key.split(".", 1)[0]
        setattr(weight, name, quant_state if name == "quant_state" else value)


class Linear4bit(nn.Linear):
    """nn.Linear with a 4-bit (NF4/FP4) weight, quantized on the first move to a device."""

    def __init__(self, input_features, output_features, bias=True, compute_dtype=None, compress_statistics=True,
                 quant_type="fp4", quant_storage=torch.uint8, device=None):
        super().__init__(input_features, output_features, bias, device)
        self.weight = Params4bit(self.weight.data, requires_grad=False, compress_statistics=compress_statistics,
                                 quant_type=quant_type, quant_storage=quant_storage, module=self)
        self.compute_dtype = compute_dtype
        self.compute_type_is_set = compute_dtype is not None
        self.quant_state = None
        self.quant_storage = quant_storage
        # False: upstream's AVX512-BF16 packed CPU layout has no kernel here (ours read the standard layout).
        self.support_avx512bf16_for_cpu = F.has_avx512bf16()

    def set_compute_type(self, x):
        if x.dtype in (torch.float32, torch.bfloat16):
            # The input is safe to compute in (fp32 is slow but exact, bf16 is fast and safe).
            self.compute_dtype = x.dtype
        elif x.dtype == torch.float16:
            if self.compute_dtype in (None, torch.float32):
                if x.numel() == x.shape[-1]:
                    logger.warning("Input type into Linear4bit is torch.float16, but bnb_4bit_compute_dtype="
                                   "torch.float32 (default). This will lead to slow inference.")
                else:
                    logger.warning("Input type into Linear4bit is torch.float16, but bnb_4bit_compute_dtype="
                                   "torch.float32 (default). This will lead to slow inference or training speed.")

    def _apply(self, fn, recurse=True):
        return _apply_keeping_packed_storage(self, fn, lambda fn: super(Linear4bit, self)._apply(fn, recurse))

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        if isinstance(self.weight, Params4bit):
            self.weight._restore_standard_layout()
        super()._save_to_state_dict(destination, prefix, keep_vars)
        quant_state = _quant_state_of(self)
        if quant_state is not None:
            entries = quant_state.as_dict(packed=True)
            if not isinstance(self.weight, Params4bit):
                _expose_quant_state(self.weight, quant_state, entries)
            for key, value in entries.items():
                destination[prefix + "weight." + key] = value if keep_vars else value.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A quantized checkpoint (our or upstream's keys) rebuilds the weight from its statistics;
        # a float checkpoint (e.g. an nn.Linear's) loads as usual and quantizes on the next move.
        # Everything is checked before anything changes (nn/_state_dict.py).
        weight_key = prefix + "weight"
        stats = {key: value for key, value in state_dict.items() if key.startswith(weight_key + ".")}
        if not stats:
            if weight_key in state_dict and isinstance(self.weight, Params4bit) and self.weight.bnb_quantized:
                raise ValueError(f"{weight_key}: the layer is quantized, and the checkpoint has no statistics "
                                 f"({weight_key}.absmax, {weight_key}.quant_state.bitsandbytes__*) for its weight")
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                          error_msgs)
            return
        if stats and weight_key in state_dict and _weight_held_by_fsdp(self):
            # The packed bytes are copied into FSDP's parameter as they are (same dtype: no conversion).
            packed = state_dict[weight_key]
            quant_state = QuantState.from_dict(qs_dict={key[len(weight_key) + 1:]: value for key, value in stats.items()},
                                               device=self.weight.device)
            check_packed_4bit_data(packed, quant_state, key=weight_key)
            _check_module_shape(self, quant_state, stats)
            self.quant_state = quant_state
            _expose_quant_state(self.weight, quant_state, quant_state.as_dict(packed=True))
            super()._load_from_state_dict({key: value for key, value in state_dict.items() if key not in stats}, prefix,
                                          local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
            return
        rest = {key: value for key, value in state_dict.items() if key != weight_key and key not in stats}
        if weight_key not in state_dict:
            # Statistics without their codes rebuild nothing: the weight is missing (an error if strict).
            if not record_load_problems(self, rest, prefix, strict, missing_keys, unexpected_keys, error_msgs):
                super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                              error_msgs)
            return
        packed = state_dict[weight_key]
        device = self.weight.device if self.weight.device.type != "meta" else getattr(packed, "device", None)
        weight = Params4bit.from_prequantized(packed, stats, requires_grad=False, device=device, module=None)
        _check_module_shape(self, weight.quant_state, stats)
        if record_load_problems(self, rest, prefix, strict, missing_keys, unexpected_keys, error_msgs,
                                rebuilt=("weight",)):
            return
        errors_before = len(error_msgs)
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if weight_key in missing_keys:
            missing_keys.remove(weight_key)
        if len(error_msgs) > errors_before:
            return
        weight.module = self
        self.weight = weight
        self.quant_state = weight.quant_state
        self.quant_storage = packed.dtype

    def forward(self, x: torch.Tensor):
        fix_4bit_weight_quant_state_from_module(self)
        self.weight._restore_standard_layout()
        # The bias parameter follows the input's dtype (permanently, as upstream does).
        if self.bias is not None and self.bias.dtype != x.dtype:
            self.bias.data = self.bias.data.to(x.dtype)
        if not self.compute_type_is_set:
            self.set_compute_type(x)
            self.compute_type_is_set = True
        input_dtype = x.dtype
        bias = self.bias
        if self.compute_dtype is not None:
            x = x.to(self.compute_dtype)
            bias = None if bias is None else bias.to(self.compute_dtype)
        return bnb.matmul_4bit(x, self.weight, bias=bias, quant_state=self.weight.quant_state).to(input_dtype)


class LinearFP4(Linear4bit):
    def __init__(self, input_features, output_features, bias=True, compute_dtype=None, compress_statistics=True,
                 quant_storage=torch.uint8, device=None):
        super().__init__(input_features, output_features, bias, compute_dtype, compress_statistics, "fp4",
                         quant_storage, device)


class LinearNF4(Linear4bit):
    def __init__(self, input_features, output_features, bias=True, compute_dtype=None, compress_statistics=True,
                 quant_storage=torch.uint8, device=None):
        super().__init__(input_features, output_features, bias, compute_dtype, compress_statistics, "nf4",
                         quant_storage, device)


class Embedding4bit(nn.Embedding):
    """nn.Embedding with a 4-bit table; a lookup dequantizes only the rows it reads."""

    def __init__(self, num_embeddings, embedding_dim, dtype=None, quant_type="fp4", quant_storage=torch.uint8,
                 device=None):
        super().__init__(num_embeddings, embedding_dim, device=device, dtype=dtype)
        self.dtype = self.weight.data.dtype
        self.quant_state = None
        self.quant_storage = quant_storage
        self.weight = Params4bit(self.weight.data, requires_grad=False, compress_statistics=None,
                                 quant_type=quant_type, quant_storage=quant_storage, module=self)
        blocksize = self.weight.blocksize
        if embedding_dim % blocksize != 0:
            logger.warning(f"Embedding size {embedding_dim} is not divisible by block size {blocksize}. "
                           "This will lead to slow inference.")

    def _forward_with_partial_dequantize(self, input: torch.Tensor):
        quant_state = self.weight.quant_state
        packed_rows = self.weight.data.view(torch.uint8).view(self.num_embeddings, self.embedding_dim // 2)
        absmax = quant_state.absmax
        if quant_state.nested:
            absmax = F.dequantize_blockwise(absmax, quant_state.state2) + quant_state.offset
        absmax_rows = absmax.view(self.num_embeddings, -1)
        flat_input = input.reshape(-1)
        selected = packed_rows.index_select(0, flat_input).reshape(-1, 1)
        selected_absmax = absmax_rows.index_select(0, flat_input).reshape(-1)
        rows_state = QuantState(absmax=selected_absmax, shape=(flat_input.numel(), self.embedding_dim),
                                code=quant_state.code, blocksize=quant_state.blocksize,
                                quant_type=quant_state.quant_type, dtype=quant_state.dtype)
        return F.dequantize_4bit(selected, rows_state).view(*input.shape, self.embedding_dim)

    def _apply(self, fn, recurse=True):
        return _apply_keeping_packed_storage(self, fn, lambda fn: super(Embedding4bit, self)._apply(fn, recurse))

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        raise NotImplementedError("Saving Embedding4bit module is not implemented")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        fix_4bit_weight_quant_state_from_module(self)
        if self.embedding_dim % self.weight.quant_state.blocksize == 0:
            return self._forward_with_partial_dequantize(input).to(self.dtype)
        table = F.dequantize_4bit(self.weight.data, self.weight.quant_state)
        return torch_F.embedding(input, table, self.padding_idx, self.max_norm, self.norm_type,
                                 self.scale_grad_by_freq, self.sparse).to(self.dtype)


class EmbeddingFP4(Embedding4bit):
    def __init__(self, num_embeddings, embedding_dim, dtype=None, quant_storage=torch.uint8, device=None):
        super().__init__(num_embeddings, embedding_dim, dtype=dtype, quant_type="fp4", quant_storage=quant_storage,
                         device=device)


class EmbeddingNF4(Embedding4bit):
    def __init__(self, num_embeddings, embedding_dim, dtype=None, quant_storage=torch.uint8, device=None):
        super().__init__(num_embeddings, embedding_dim, dtype=dtype, quant_type="nf4", quant_storage=quant_storage,
                         device=device)


# Upstream's path of the 8-bit modules (bitsandbytes.nn.modules.Int8Params, ...); defined in nn/int8.py.
from .embedding import Embedding, StableEmbedding  # noqa: E402,F401
from .int8 import Embedding8bit, Int8Params, Linear8bitLt, OutlierAwareLinear, maybe_rearrange_weight  # noqa: E402,F401
