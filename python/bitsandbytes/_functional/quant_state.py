"""QuantState: everything needed to dequantize a tensor, and its state-dict format."""

from typing import Any

import math
from typing import Optional

import torch

from .._formats import CODE_SIZE, FLOAT_DTYPES, FOURBIT_QUANT_TYPES, NESTED_BLOCKSIZE, blocks_of, blocksize_error
from ..utils import pack_dict_to_tensor, unpack_tensor_to_dict
from .codebooks import _NATIVE_CODEBOOKS


def _dtype_name(dtype: torch.dtype) -> str:
    # "torch.bfloat16" -> "bfloat16", the spelling of upstream's state dicts.
    return str(dtype).strip("torch.")


def _dtype_from_name(name: str, key: str) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"QuantState.from_dict: {key} must name a torch dtype such as 'bfloat16', got {name!r}")
    return dtype


class _StateEntries:
    """The entries of one state by their last key component, with the key each came from.

    The JSON fields of the packed key are merged over the tensors, as upstream merges them.
    """

    def __init__(self, qs_dict: dict[str, Any], packed_key: Optional[str]):
        self.values: dict[str, Any] = {}
        self.source: dict[str, str] = {}
        self.packed_key = packed_key
        self.key_prefix = _key_prefix(qs_dict)
        for key, value in qs_dict.items():
            if key != packed_key:
                self._add(key.split(".")[-1], value, key)
        if packed_key is not None:
            fields = _unpack_fields(packed_key, qs_dict[packed_key])
            for name, value in fields.items():
                self._add(name.split(".")[-1], value, f"{packed_key} (field {name!r})")

    def _add(self, name: str, value: Any, source: str) -> None:
        self.values[name] = value
        self.source[name] = source

    def where(self) -> str:
        return f" (reading {self.packed_key})" if self.packed_key is not None else ""

    def fail(self, name: str, problem: str) -> ValueError:
        return ValueError(f"QuantState.from_dict: {self.source.get(name, name)}: {problem}")


def _key_prefix(qs_dict: dict[str, Any]) -> str:
    """What the state's keys have before their last component ("layer.weight."; "" unprefixed)."""
    for key in qs_dict:
        if "quant_state" in key:
            return key[: key.index("quant_state")]
    key = next(iter(qs_dict), "")
    return key[: key.rfind(".") + 1]


def _unpack_fields(key: str, packed: torch.Tensor) -> dict[str, Any]:
    if packed.dtype != torch.uint8 or packed.dim() != 1:
        raise ValueError(f"QuantState.from_dict: {key}: expected the 1-D uint8 tensor of JSON bytes, got "
                         f"{packed.dtype} of shape {tuple(packed.shape)}")
    if packed.is_meta:
        raise ValueError(f"QuantState.from_dict: {key}: is on the meta device, so it holds no JSON to read")
    try:
        fields = unpack_tensor_to_dict(packed)
    except ValueError as error:
        raise ValueError(f"QuantState.from_dict: {key}: {error}") from error
    if not isinstance(fields, dict):
        raise ValueError(f"QuantState.from_dict: {key}: expected a JSON object, got {type(fields).__name__}")
    return fields


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_fields(entries: _StateEntries, nested: bool, device) -> dict[str, Any]:
    """The entries as QuantState fields, after checking each and their agreement (formats.md 3.4)."""
    values = entries.values
    target = None if device is None else torch.device(device)
    fields: dict[str, Any] = {}

    quant_type = values["quant_type"]
    # None: the 8-bit blockwise state of quantize_blockwise, whose as_dict upstream also reads back.
    if quant_type is not None and quant_type not in FOURBIT_QUANT_TYPES:
        raise entries.fail("quant_type", f"quant_type must be one of {FOURBIT_QUANT_TYPES} or None, got {quant_type!r}")
    if entries.packed_key is not None and entries.packed_key.split(".")[-1] != f"bitsandbytes__{quant_type}":
        raise entries.fail("quant_type", f"quant_type {quant_type!r} disagrees with the key's suffix")
    fields["quant_type"] = quant_type
    fourbit = quant_type is not None

    def tensor(name: str, dtypes: tuple, numel: Optional[int] = None) -> torch.Tensor:
        value = values[name]
        if not isinstance(value, torch.Tensor):
            raise entries.fail(name, f"expected a tensor, got {type(value).__name__}")
        if value.dtype not in dtypes:
            raise entries.fail(name, f"expected dtype {' or '.join(map(str, dtypes))}, got {value.dtype}")
        if value.dim() != 1 or (numel is not None and value.numel() != numel):
            expected = f"[{numel}]" if numel is not None else "1-D"
            raise entries.fail(name, f"expected shape {expected}, got {tuple(value.shape)}")
        if value.is_meta and target is not None and target.type != "meta":
            raise entries.fail(name, f"is on the meta device (it holds no data) and cannot be moved to {target}")
        return value

    def blocksize(name: str, op: str) -> int:
        value = values[name]
        if not _is_int(value):
            raise entries.fail(name, f"blocksize must be an int, got {value!r}")
        error = blocksize_error(op, value, None if target is None else target.type)
        if error is not None:
            raise entries.fail(name, error)
        return value

    def float_dtype(name: str) -> torch.dtype:
        dtype = _dtype_from_name(values[name], entries.source[name])
        if dtype not in FLOAT_DTYPES:
            raise entries.fail(name, f"expected one of {[_dtype_name(d) for d in FLOAT_DTYPES]}, got {values[name]!r}")
        return dtype

    fields["blocksize"] = blocksize("blocksize", "dequantize_4bit" if fourbit else "dequantize_blockwise")
    fields["dtype"] = float_dtype("dtype")
    shape = values["shape"]
    if shape is None and not fourbit:
        fields["shape"] = None
    elif isinstance(shape, (list, tuple)) and all(_is_int(size) and size >= 0 for size in shape) and shape:
        fields["shape"] = torch.Size(shape)
    else:
        raise entries.fail("shape", f"expected a list of non-negative ints, got {shape!r}")

    code_size = len(_NATIVE_CODEBOOKS["nf4"]) if fourbit else CODE_SIZE
    code = tensor("quant_map", (torch.float32,), code_size)
    if fourbit and not code.is_meta:
        standard = torch.tensor(_NATIVE_CODEBOOKS[quant_type], dtype=torch.float32)
        if not torch.allclose(code.detach().cpu(), standard, atol=1e-6, rtol=0):
            raise entries.fail("quant_map", f"does not hold the {quant_type} codebook")
    fields["quant_map"] = code
    absmax = tensor("absmax", (torch.uint8,) if nested else (torch.float32,))
    if fields["shape"] is not None:
        blocks = blocks_of(math.prod(fields["shape"]), fields["blocksize"])
        if absmax.numel() != blocks:
            raise entries.fail("absmax", f"expected {blocks} entries for shape {list(fields['shape'])} and blocksize "
                                         f"{fields['blocksize']} (from {entries.source['shape']}), got {absmax.numel()}")
    fields["absmax"] = absmax
    if not nested:
        return fields

    fields["nested_blocksize"] = blocksize("nested_blocksize", "dequantize_blockwise")
    if fourbit and fields["nested_blocksize"] != NESTED_BLOCKSIZE:
        raise entries.fail("nested_blocksize", f"4-bit statistics are nested with blocksize {NESTED_BLOCKSIZE}, got "
                                               f"{fields['nested_blocksize']}")
    fields["nested_dtype"] = float_dtype("nested_dtype")
    fields["nested_quant_map"] = tensor("nested_quant_map", (torch.float32,), CODE_SIZE)
    fields["nested_absmax"] = tensor("nested_absmax", (torch.float32,),
                                     blocks_of(absmax.numel(), fields["nested_blocksize"]))
    offset = values["nested_offset"]
    if isinstance(offset, (int, float)) and not isinstance(offset, bool) and abs(offset) < math.inf:
        fields["nested_offset"] = float(offset)
        return fields
    raise entries.fail("nested_offset", f"expected a finite number, got {offset!r}")


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
        component counts. The caller's dict is not modified. Every entry is checked
        (types, dtypes, sizes, their agreement with shape and blocksize) before
        anything is allocated or moved, and an error names the key it read.
        """
        packed_keys = [k for k, v in qs_dict.items() if "quant_state" in k and isinstance(v, torch.Tensor)]
        unpacked = any(k.split(".")[-1] == "quant_type" for k in qs_dict)
        if not unpacked:
            if not packed_keys:
                prefix = _key_prefix(qs_dict)
                expected = " or ".join(f"{prefix}quant_state.{key}" for key in cls.valid_qs_type_keys)
                raise ValueError(f"Expected packed or unpacked quant_state items, found neither ({expected} is missing)")
            if len(packed_keys) != 1 or packed_keys[0].split(".")[-1] not in cls.valid_qs_type_keys:
                raise ValueError(
                    f"There should be exactly one `quant_state` item with ending from {cls.valid_qs_type_keys}.\n"
                    f"Detected {packed_keys}."
                )
        entries = _StateEntries(qs_dict, packed_keys[0] if len(packed_keys) == 1 else None)
        unknown = sorted(entries.source[name] for name in set(entries.values) - set(cls.valid_qs_keys))
        if unknown:
            raise QuantStateKeyError(f"QuantState.from_dict: unexpected keys {unknown}; valid keys are {cls.valid_qs_keys}")
        required = ["quant_type", "absmax", "blocksize", "quant_map", "dtype", "shape"]
        nested_keys = ["nested_absmax", "nested_blocksize", "nested_quant_map", "nested_dtype", "nested_offset"]
        nested = any(key in entries.values for key in nested_keys)
        if nested:
            required += nested_keys
        missing = [key for key in required if key not in entries.values]
        if missing:
            missing = [entries.key_prefix + key for key in missing]
            raise ValueError(f"QuantState.from_dict: missing keys {missing}{entries.where()}")
        fields = _checked_fields(entries, nested, device)

        offset, state2 = None, None
        if nested:
            offset = torch.tensor(fields["nested_offset"], dtype=torch.float32, device=device)
            state2 = cls(
                absmax=fields["nested_absmax"].to(device),
                blocksize=fields["nested_blocksize"],
                code=fields["nested_quant_map"].to(device),
                dtype=fields["nested_dtype"],
            )
        return cls(
            quant_type=fields["quant_type"],
            absmax=fields["absmax"].to(device),
            blocksize=fields["blocksize"],
            code=fields["quant_map"].to(device),
            dtype=fields["dtype"],
            shape=fields["shape"],
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
