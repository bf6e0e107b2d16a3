"""Bit-exactness against upstream's outputs (shared/golden), driven by its manifest.

The functional API on every device: codebooks, QuantState fields, nesting, the
state-dict entries. Each op's kernels, native and pure torch, are checked against
the same data in test_backend_ops.py.
"""

import pytest
import torch
from conftest import assert_bitwise_equal, golden_case_params

import bitsandbytes.functional as F

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CODEBOOK_CASES = {"dynamic_signed", "dynamic_unsigned", "nf4", "fp4"}


def _quant_cases(codebooks: bool):
    return [p for p in golden_case_params("quant") if p.values[0] is None or (p.id in CODEBOOK_CASES) == codebooks]


@pytest.mark.parametrize("case", _quant_cases(codebooks=True))
def test_codebooks(golden, case, device):
    expected = golden.case_tensors("quant", case)["code"]
    name = case["case"]
    if name.startswith("dynamic"):
        actual = F.create_dynamic_map(signed=name == "dynamic_signed").to(device)
    else:
        actual = F.get_4bit_type(name, device=device)
    assert actual.device.type == device
    assert_bitwise_equal(actual, expected)


@pytest.mark.parametrize("case", [p for p in _quant_cases(codebooks=True) if p.values[0] is None or p.id.startswith("dynamic")])
def test_dynamic_map_construction(golden, case):
    """The construction rule itself (used for non-default parameters) reproduces the golden maps."""
    name = case["case"]
    built = F._build_dynamic_map(signed=name == "dynamic_signed", max_exponent_bits=7, total_bits=8)
    assert_bitwise_equal(built, golden.case_tensors("quant", case)["code"])


@pytest.mark.parametrize("case", _quant_cases(codebooks=False))
def test_blockwise(golden, case, device):
    tensors = golden.case_tensors("quant", case)
    blocksize = case["args"]["blocksize"]
    A = tensors["A"].to(device)
    assert A.dtype == DTYPES[case["args"]["dtype"]]

    q, state = F.quantize_blockwise(A, blocksize=blocksize)
    assert_bitwise_equal(q, tensors["q"])
    assert_bitwise_equal(state.absmax, tensors["absmax"])
    assert_bitwise_equal(state.code, tensors["code"])
    assert state.blocksize == blocksize and state.dtype == A.dtype

    assert_bitwise_equal(F.dequantize_blockwise(q, state), tensors["dequant"])
    # From the golden codes too, so dequantization is checked on its own.
    golden_state = F.QuantState(
        absmax=tensors["absmax"].to(device), code=tensors["code"].to(device), blocksize=blocksize, dtype=A.dtype
    )
    assert_bitwise_equal(F.dequantize_blockwise(tensors["q"].to(device), golden_state), tensors["dequant"])


@pytest.mark.parametrize("case", golden_case_params("fourbit"))
def test_fourbit(golden, case, device):
    tensors = golden.case_tensors("fourbit", case)
    args = case["args"]
    storage = DTYPES.get(args.get("quant_storage"), torch.uint8)
    nested = args.get("compress_statistics", False)
    A = tensors["A"].to(device)

    packed, state = F.quantize_4bit(
        A,
        blocksize=args["blocksize"],
        compress_statistics=nested,
        quant_type=args["quant_type"],
        quant_storage=storage,
    )
    assert_bitwise_equal(packed, tensors["packed"])
    assert_bitwise_equal(state.absmax, tensors["absmax"])
    assert state.shape == A.shape and state.dtype == A.dtype and state.nested == nested
    if nested:
        assert_bitwise_equal(state.offset.reshape(1), tensors["offset"])
        assert_bitwise_equal(state.state2.absmax, tensors["nested_absmax"])
        assert_bitwise_equal(state.state2.code, tensors["nested_code"])
        assert state.state2.blocksize == 256

    assert_bitwise_equal(F.dequantize_4bit(packed, state), tensors["dequant"])


@pytest.mark.parametrize("case", [p for p in golden_case_params("fourbit") if p.values[0] is None or "asdict.absmax" in p.values[0]["tensors"]])
def test_fourbit_as_dict_packed(golden, case, device):
    tensors = golden.case_tensors("fourbit", case)
    args = case["args"]
    _, state = F.quantize_4bit(
        tensors["A"].to(device),
        blocksize=args["blocksize"],
        compress_statistics=args["compress_statistics"],
        quant_type=args["quant_type"],
    )
    packed_dict = state.as_dict(packed=True)
    expected_keys = list(args["quant_state_nontensor"])
    assert list(packed_dict) == expected_keys
    for key in expected_keys:
        assert_bitwise_equal(packed_dict[key], tensors[f"asdict.{key}"])


@pytest.mark.parametrize("case", [p for p in golden_case_params("fourbit") if p.values[0] is None or "asdict.absmax" in p.values[0]["tensors"]])
def test_fourbit_from_golden_dict(golden, case, device):
    """A state rebuilt from upstream's serialized entries dequantizes to upstream's output."""
    tensors = golden.case_tensors("fourbit", case)
    entries = {f"layer.weight.{role[len('asdict.'):]}": t for role, t in tensors.items() if role.startswith("asdict.")}
    state = F.QuantState.from_dict(entries, device=device)
    assert state.shape == tensors["A"].shape and state.dtype == tensors["A"].dtype
    dequant = F.dequantize_4bit(tensors["packed"].to(device), state)
    assert_bitwise_equal(dequant, tensors["dequant"])
