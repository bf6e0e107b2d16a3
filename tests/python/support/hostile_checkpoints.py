"""Corrupted copies of real state dicts, one per (key, kind of damage).

Every corruption names the key it damages, so that a test can demand an error that
names it too; the few that upstream loads as well (what a non-strict load tolerates)
say so in `accepted_unless_strict`.
"""

import dataclasses
import json
from typing import Any, Callable, Iterator, Optional

import torch

# Sizes no test machine could hold: a load that trusts them allocates 2**40 elements.
ABSURD = 2**40


@dataclasses.dataclass(frozen=True)
class Corruption:
    key: str  # the damaged key as messages must name it
    kind: str
    corrupt: Callable[[dict], None]  # damages a copy of the state dict in place
    # Loads without error when not strict (torch's own rules for missing and extra entries).
    accepted_unless_strict: bool = False
    # Loads without error in every mode (what upstream accepts: torch casts, defaults).
    accepted: bool = False

    @property
    def name(self) -> str:
        return f"{self.key}:{self.kind}"

    def applied_to(self, state_dict: dict) -> dict:
        damaged = _copy_nested(state_dict)
        self.corrupt(damaged)
        return damaged


def _copy_nested(value):
    # Tensors are shared (corruptions replace them, never write into them); containers are copied.
    if isinstance(value, dict):
        return type(value)((k, _copy_nested(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_copy_nested(v) for v in value]
    return value


def _other_dtype(tensor: torch.Tensor) -> torch.dtype:
    """A dtype of another kind: integers for floats, float32 for integers."""
    return torch.int32 if tensor.is_floating_point() else torch.float32


def _set(path: tuple, value_of: Callable[[Any], Any]) -> Callable[[dict], None]:
    def corrupt(state_dict: dict) -> None:
        container = state_dict
        for step in path[:-1]:
            container = container[step]
        container[path[-1]] = value_of(container[path[-1]])
    return corrupt


def _delete(path: tuple) -> Callable[[dict], None]:
    def corrupt(state_dict: dict) -> None:
        container = state_dict
        for step in path[:-1]:
            container = container[step]
        del container[path[-1]]
    return corrupt


def _add(path: tuple, value: Any) -> Callable[[dict], None]:
    def corrupt(state_dict: dict) -> None:
        container = state_dict
        for step in path[:-1]:
            container = container[step]
        container[path[-1]] = value
    return corrupt


def tensor_corruptions(key: str, path: tuple, tensor: torch.Tensor) -> Iterator[Corruption]:
    """Missing, another dtype, one element more, one fewer, an extra dimension, on the meta device."""
    yield Corruption(key, "missing", _delete(path))
    yield Corruption(key, "wrong_dtype", _set(path, lambda t: t.to(_other_dtype(t))))
    yield Corruption(key, "one_more_element", _set(path, lambda t: torch.cat([t.reshape(-1), t.reshape(-1)[:1]])))
    if tensor.numel() > 1:
        yield Corruption(key, "truncated", _set(path, lambda t: t.reshape(-1)[:-1]))
    yield Corruption(key, "extra_dimension", _set(path, lambda t: t.reshape(-1).repeat(2, 1)))
    yield Corruption(key, "meta_device", _set(path, lambda t: torch.empty_like(t, device="meta")))


def _json_bytes(fields: dict) -> torch.Tensor:
    return torch.tensor(list(json.dumps(fields).encode()), dtype=torch.uint8)


def _with_field(name: str, value: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def replace(packed: torch.Tensor) -> torch.Tensor:
        fields = json.loads(bytes(packed.tolist()))
        fields[name] = value
        return _json_bytes(fields)
    return replace


def _without_field(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def remove(packed: torch.Tensor) -> torch.Tensor:
        fields = json.loads(bytes(packed.tolist()))
        del fields[name]
        return _json_bytes(fields)
    return remove


def packed_json_corruptions(key: str, packed: torch.Tensor) -> Iterator[Corruption]:
    """The JSON of a 4-bit state: damaged bytes, and every field missing, mistyped, negative, absurd
    or inconsistent with the tensors next to it."""
    path = (key,)
    fields = json.loads(bytes(packed.tolist()))
    yield Corruption(key, "missing", _delete(path))
    yield Corruption(key, "truncated_json", _set(path, lambda t: t[: t.numel() // 2]))
    yield Corruption(key, "garbage_bytes", _set(path, lambda t: torch.full_like(t, 0xFF)))
    yield Corruption(key, "not_an_object", _set(path, lambda t: _json_bytes([1, 2, 3])))
    yield Corruption(key, "wrong_dtype", _set(path, lambda t: t.to(torch.int64)))
    yield Corruption(key, "extra_dimension", _set(path, lambda t: t.reshape(1, -1)))
    yield Corruption(key, "meta_device", _set(path, lambda t: torch.empty_like(t, device="meta")))
    yield Corruption(key, "extra_field", _set(path, _with_field("unknown_field", 1)))
    rows, columns = fields["shape"]
    other_type = "fp4" if fields["quant_type"] == "nf4" else "nf4"
    changes = {
        "quant_type": [("other_type", other_type), ("unknown", "int4"), ("not_a_string", 4)],
        "blocksize": [("doubled", fields["blocksize"] * 2), ("negative", -fields["blocksize"]), ("zero", 0),
                      ("absurd", ABSURD), ("a_string", "64")],
        "dtype": [("not_float", "int8"), ("unknown", "float17"), ("not_a_string", 16)],
        "shape": [("reversed", [columns, rows]), ("negative", [-rows, columns]), ("absurd", [ABSURD, columns]),
                  ("absurd_rows_and_columns", [2**20, 2**20]), ("one_dimension", [rows * columns]),
                  ("not_a_list", "24x128"), ("empty", [])],
        "nested_blocksize": [("negative", -256), ("absurd", ABSURD), ("doubled", 512)],
        "nested_dtype": [("not_float", "int32")],
        "nested_offset": [("nan", float("nan")), ("a_string", "abc"), ("none", None)],
    }
    for name, variants in changes.items():
        if name not in fields:
            continue
        yield Corruption(key, f"{name}_missing", _set(path, _without_field(name)))
        for kind, value in variants:
            yield Corruption(key, f"{name}_{kind}", _set(path, _with_field(name, value)))


def linear4bit_corruptions(state_dict: dict, prefix: str) -> Iterator[Corruption]:
    packed_key = next(key for key in state_dict if ".quant_state." in key)
    for key, value in state_dict.items():
        if key == packed_key:
            yield from packed_json_corruptions(key, value)
            continue
        for corruption in tensor_corruptions(key, (key,), value):
            # A missing bias or weight is torch's business: only a strict load refuses it.
            tolerated = corruption.kind == "missing" and key in (prefix + "bias", prefix + "weight")
            # torch copies a bias of another dtype with a cast, as into any nn.Linear.
            cast = corruption.kind == "wrong_dtype" and key == prefix + "bias"
            yield dataclasses.replace(corruption, accepted_unless_strict=tolerated, accepted=cast)
    rows, columns = json.loads(bytes(state_dict[packed_key].tolist()))["shape"]
    weight = prefix + "weight"
    # A full-precision weight next to leftover statistics, and packed codes cast as numbers. (A cast
    # between the 2-byte storages, bf16 to fp16, keeps the size: no checkpoint records which it was.)
    yield Corruption(weight, "float_weight", _set((weight,), lambda t: torch.randn(rows, columns)))
    for dtype in (torch.float32, torch.float16):
        if state_dict[weight].element_size() != dtype.itemsize:
            yield Corruption(weight, f"cast_to_{dtype}", _set((weight,), lambda t, dtype=dtype: t.to(dtype)))
    quant_map = prefix + "weight.quant_map"
    yield Corruption(quant_map, "other_values", _set((quant_map,), lambda t: t.flip(0)))
    yield Corruption(prefix + "weight.bogus", "extra_statistic", _add((prefix + "weight.bogus",), torch.zeros(3)))
    yield Corruption(prefix + "bogus", "extra_key", _add((prefix + "bogus",), torch.zeros(3)),
                     accepted_unless_strict=True)


def linear8bit_corruptions(state_dict: dict, prefix: str) -> Iterator[Corruption]:
    for key, value in state_dict.items():
        for corruption in tensor_corruptions(key, (key,), value):
            tolerated = corruption.kind == "missing" and key in (prefix + "bias", prefix + "weight")
            cast = corruption.kind == "wrong_dtype" and key == prefix + "bias"
            # Upstream reads a missing weight_format as "row", the only layout there is.
            default = corruption.kind == "missing" and key == prefix + "weight_format"
            if key == prefix + "weight_format" and corruption.kind in ("one_more_element", "extra_dimension"):
                continue  # covered by the kinds below, a 0-dim tensor has no elements to add
            yield dataclasses.replace(corruption, accepted_unless_strict=tolerated, accepted=cast or default)
    fmt = prefix + "weight_format"
    yield Corruption(fmt, "two_elements", _set((fmt,), lambda t: torch.zeros(2, dtype=torch.uint8)))
    yield Corruption(fmt, "col32", _set((fmt,), lambda t: torch.tensor(1, dtype=torch.uint8)))
    yield Corruption(fmt, "unknown", _set((fmt,), lambda t: torch.tensor(7, dtype=torch.uint8)))
    weight = prefix + "weight"
    yield Corruption(weight, "float_weight", _set((weight,), lambda t: t.float()))
    yield Corruption(prefix + "bogus", "extra_key", _add((prefix + "bogus",), torch.zeros(3)),
                     accepted_unless_strict=True)


OPTIMIZER_QUANT_STATE_KEY = "__bnb_optimizer_quant_state__"


def optimizer_corruptions(state_dict: dict) -> Iterator[Corruption]:
    """Every entry of every parameter's state, and every hyper-parameter of every group."""
    for pid, param_state in state_dict["state"].items():
        step_path = ("state", pid, "step")
        yield Corruption(f"[{pid!r}]['step']", "missing", _delete(step_path))
        yield Corruption(f"[{pid!r}]['step']", "negative", _set(step_path, lambda s: -1))
        yield Corruption(f"[{pid!r}]['step']", "a_string", _set(step_path, lambda s: "3"))
        nested = param_state.get(OPTIMIZER_QUANT_STATE_KEY, {})
        for name, value in nested.items():
            path = ("state", pid, OPTIMIZER_QUANT_STATE_KEY, name)
            yield from tensor_corruptions(f"[{pid!r}]['{name}']", path, value)
        eight_bit = nested["state1"].dtype == torch.uint8
        # Statistics of the other layout: an 8-bit state's codes cast to float, or the reverse.
        if eight_bit:
            state1_path = ("state", pid, OPTIMIZER_QUANT_STATE_KEY, "state1")
            yield Corruption(f"[{pid!r}]['state1']", "codes_cast_to_float", _set(state1_path, lambda t: t.float()))
        else:
            extra = ("state", pid, OPTIMIZER_QUANT_STATE_KEY, "absmax1")
            yield Corruption(f"[{pid!r}]['absmax1']", "in_a_32bit_state", _add(extra, torch.zeros(1)))
        if "state2" not in nested:
            extra = ("state", pid, OPTIMIZER_QUANT_STATE_KEY, "state2")
            yield Corruption(f"[{pid!r}]['state2']", "in_a_one_state_optimizer", _add(extra, nested["state1"]))
    for gindex, group in enumerate(state_dict["param_groups"]):
        for name, value in group.items():
            path = ("param_groups", gindex, name)
            key = f"param_groups[{gindex}][{name!r}]"
            if name == "params":
                yield Corruption("parameter group", "one_param_fewer", _set(path, lambda ids: ids[:-1]))
            elif name == "betas":
                yield Corruption(key, "missing", _delete(path))
                yield Corruption(key, "one_more", _set(path, lambda b: (*b, 0.5)))
                yield Corruption(key, "above_one", _set(path, lambda b: (1.5, *b[1:])))
            elif name in ("lr", "eps", "weight_decay"):
                yield Corruption(key, "missing", _delete(path))
                yield Corruption(key, "negative", _set(path, lambda v: -1.0))
                yield Corruption(key, "nan", _set(path, lambda v: float("nan")))
                yield Corruption(key, "a_string", _set(path, lambda v: "0.1"))


def tensor_bytes(value: Optional[torch.Tensor]) -> Optional[tuple]:
    """What a tensor holds, for before/after comparisons: dtype, shape, device and its bytes."""
    if value is None:
        return None
    if value.is_meta:
        return (value.dtype, tuple(value.shape), "meta")
    data = value.detach().cpu().contiguous().reshape(-1)
    return (value.dtype, tuple(value.shape), str(value.device), data.view(torch.uint8).numpy().tobytes())
