"""QuantState: everything needed to dequantize a tensor, and its state-dict format."""

from typing import Any

import torch

from ..utils import pack_dict_to_tensor, unpack_tensor_to_dict


def _dtype_name(dtype: torch.dtype) -> str:
    # "torch.bfloat16" -> "bfloat16", the spelling of upstream's state dicts.
    return str(dtype).strip("torch.")


def _dtype_from_name(name: str, key: str) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"QuantState.from_dict: {key} must name a torch dtype such as 'bfloat16', got {name!r}")
    return dtype


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """allclose needs equal dtypes and broadcastable shapes; states differ otherwise."""
    return a.dtype == b.dtype and a.shape == b.shape and a.device == b.device


class QuantStateKeyError(ValueError, AssertionError):
    """Unknown keys in QuantState.from_dict. Upstream asserts here, so callers that
    catch AssertionError keep working; it is a ValueError like every other bad input."""


class QuantState:
    """Everything needed to dequantize a blockwise-quantized tensor."""

    valid_quant_types = ("fp4", "nf4")
    valid_qs_type_keys = [f"bitsandbytes__{x}" for x in valid_quant_types]
    valid_qs_keys = [
        "absmax",
        "quant_map",
        "nested_absmax",
        "nested_quant_map",
        "quant_state",
        "quant_type",
        "blocksize",
        "dtype",
        "shape",
        "nested_blocksize",
        "nested_dtype",
        "nested_offset",
    ]

    def __init__(
        self,
        absmax,
        shape=None,
        code=None,
        blocksize=None,
        quant_type=None,
        dtype=None,
        offset=None,
        state2=None,
    ):
        self.absmax = absmax
        self.shape = shape
        self.code = code
        self.dtype = dtype
        self.blocksize = blocksize
        self.quant_type = quant_type
        self.offset = offset
        self.state2 = state2
        self.nested = state2 is not None

    def __getattr__(self, name):
        # Lets FSDP resolve the state-dict key `weight.quant_state.bitsandbytes__nf4`
        # by attribute traversal. Only reached for attributes that do not exist.
        if name.startswith("bitsandbytes__"):
            packed = self.as_dict(packed=True)
            key = f"quant_state.{name}"
            if key in packed:
                return packed[key]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __getitem__(self, idx):
        """The legacy list view [absmax, shape, dtype, blocksize, nesting, quant_type]."""
        nesting = [self.offset, self.state2] if self.nested else None
        return [self.absmax, self.shape, self.dtype, self.blocksize, nesting, self.quant_type][idx]

    @classmethod
    def from_dict(cls, qs_dict: dict[str, Any], device) -> "QuantState":
        """Rebuilds a QuantState from its state-dict entries (packed or unpacked; 4-bit or 8-bit).

        Keys may carry a prefix (``"layer.weight.absmax"``); only the last dotted
        component counts. The caller's dict is not modified.
        """
        packed_keys = [k for k, v in qs_dict.items() if "quant_state" in k and isinstance(v, torch.Tensor)]
        unpacked = any(k.split(".")[-1] == "quant_type" for k in qs_dict)
        if not unpacked:
            if not packed_keys:
                raise ValueError("Expected packed or unpacked quant_state items, found neither")
            if len(packed_keys) != 1 or packed_keys[0].split(".")[-1] not in cls.valid_qs_type_keys:
                raise ValueError(
                    f"There should be exactly one `quant_state` item with ending from {cls.valid_qs_type_keys}.\n"
                    f"Detected {packed_keys}."
                )
        entries = dict(qs_dict)
        if len(packed_keys) == 1:
            entries.update(unpack_tensor_to_dict(entries.pop(packed_keys[0])))
        entries = {k.split(".")[-1]: v for k, v in entries.items()}

        unknown = sorted(set(entries) - set(cls.valid_qs_keys))
        if unknown:
            raise QuantStateKeyError(f"QuantState.from_dict: unexpected keys {unknown}; valid keys are {cls.valid_qs_keys}")
        required = ["quant_type", "absmax", "blocksize", "quant_map", "dtype", "shape"]
        if "nested_absmax" in entries:
            required += ["nested_blocksize", "nested_quant_map", "nested_dtype", "nested_offset"]
        missing = [key for key in required if key not in entries]
        if missing:
            raise ValueError(f"QuantState.from_dict: missing keys {missing}")
        # None: the 8-bit blockwise state of quantize_blockwise, whose as_dict upstream also reads back.
        if entries["quant_type"] is not None and entries["quant_type"] not in cls.valid_quant_types:
            raise ValueError(
                f"QuantState.from_dict: quant_type must be one of {cls.valid_quant_types} or None, "
                f"got {entries['quant_type']!r}"
            )

        offset, state2 = None, None
        if "nested_absmax" in entries:
            offset = torch.tensor(float(entries["nested_offset"]), dtype=torch.float32, device=device)
            state2 = cls(
                absmax=entries["nested_absmax"].to(device),
                blocksize=entries["nested_blocksize"],
                code=entries["nested_quant_map"].to(device),
                dtype=_dtype_from_name(entries["nested_dtype"], "nested_dtype"),
            )
        shape = entries["shape"]
        return cls(
            quant_type=entries["quant_type"],
            absmax=entries["absmax"].to(device),
            blocksize=entries["blocksize"],
            code=entries["quant_map"].to(device),
            dtype=_dtype_from_name(entries["dtype"], "dtype"),
            shape=torch.Size(shape) if shape is not None else None,
            offset=offset,
            state2=state2,
        )

    def as_dict(self, packed=False) -> dict[str, Any]:
        """The state-dict entries of this state (formats.md 3.4).

        packed=True keeps only tensors plus one uint8 tensor
        ``quant_state.bitsandbytes__<quant_type>`` holding the JSON of the rest,
        byte-identical to upstream's. 8-bit states (quant_type None) are never packed.
        """
        entries: dict[str, Any] = {
            "quant_type": self.quant_type,
            "absmax": self.absmax,
            "blocksize": self.blocksize,
            "quant_map": self.code,
            "dtype": _dtype_name(self.dtype),
            "shape": tuple(self.shape) if self.shape is not None else None,
        }
        if self.nested:
            entries.update(
                {
                    "nested_absmax": self.state2.absmax,
                    "nested_blocksize": self.state2.blocksize,
                    "nested_quant_map": self.state2.code.clone(),
                    "nested_dtype": _dtype_name(self.state2.dtype),
                    "nested_offset": self.offset.item(),
                }
            )
        if not packed or self.quant_type is None:
            return entries
        tensors = {k: v for k, v in entries.items() if isinstance(v, torch.Tensor)}
        others = {k: v for k, v in entries.items() if not isinstance(v, torch.Tensor)}
        tensors[f"quant_state.bitsandbytes__{self.quant_type}"] = pack_dict_to_tensor(others)
        return tensors

    def to(self, device) -> None:
        """Moves the state's tensors to `device`, in place."""
        self.code = self.code.to(device)
        self.absmax = self.absmax.to(device)
        if self.nested:
            self.offset = self.offset.to(device)
            self.state2.absmax = self.state2.absmax.to(device)
            self.state2.code = self.state2.code.to(device)

    def __eq__(self, other) -> bool:
        if not isinstance(other, QuantState):
            return False
        return (
            _same_layout(self.absmax, other.absmax)
            and torch.allclose(self.absmax, other.absmax, atol=1e-6)
            and self.shape == other.shape
            and _same_layout(self.code, other.code)
            and torch.allclose(self.code, other.code, atol=1e-6)
            and self.dtype == other.dtype
            and self.blocksize == other.blocksize
            and self.quant_type == other.quant_type
            and (
                self.offset == other.offset
                if self.offset is not None and other.offset is not None
                else self.offset is other.offset
            )
            and (
                self.state2 == other.state2
                if self.state2 is not None and other.state2 is not None
                else self.state2 is other.state2
            )
        )
