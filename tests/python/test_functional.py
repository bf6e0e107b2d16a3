"""bitsandbytes.functional: round trips, QuantState, legacy arguments, storage dtypes, codebooks."""

import ctypes
import json
import sys

import pytest
import torch
from conftest import assert_bitwise_equal

import bitsandbytes.functional as F
from bitsandbytes.utils import pack_dict_to_tensor, unpack_tensor_to_dict

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Half the widest gap of each codebook, relative to the block absmax: the largest
# rounding error of one element (NF4 between -1 and -0.696; FP4 between 0.667 and
# 1; the dynamic map near +-1).
ERROR_BOUNDS = {"nf4": 0.152, "fp4": 0.167, "dynamic": 0.00704}


def block_error_ratio(A: torch.Tensor, restored: torch.Tensor, blocksize: int) -> float:
    """max |A - restored| / absmax of the element's block, less the output dtype's rounding."""
    A32, restored32 = A.float().reshape(-1).cpu(), restored.float().reshape(-1).cpu()
    padded = torch.nn.functional.pad(A32.abs(), (0, -A32.numel() % blocksize))
    absmax = padded.view(-1, blocksize).amax(dim=1).repeat_interleave(blocksize)[: A32.numel()]
    ratio = ((A32 - restored32).abs() / absmax).max().item()
    return ratio - torch.finfo(restored.dtype).eps / 2


# ---- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("compress_statistics", [False, True], ids=["plain", "nested"])
def test_4bit_round_trip_error(device, dtype, quant_type, compress_statistics):
    A = torch.randn(130, 257, dtype=dtype, device=device)
    packed, state = F.quantize_4bit(A, blocksize=64, quant_type=quant_type, compress_statistics=compress_statistics)
    assert packed.shape == ((A.numel() + 1) // 2, 1) and packed.dtype == torch.uint8
    restored = F.dequantize_4bit(packed, state)
    assert restored.shape == A.shape and restored.dtype == dtype and restored.device == A.device
    bound = ERROR_BOUNDS[quant_type]
    if compress_statistics:
        # The absmax itself is 8-bit quantized: its relative error adds to the bound.
        exact_absmax = F.quantize_4bit(A, blocksize=64, quant_type=quant_type)[1].absmax
        stored_absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
        bound += ((stored_absmax - exact_absmax).abs() / exact_absmax).max().item()
    assert block_error_ratio(A, restored, 64) <= bound


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("blocksize", [64, 256, 4096])
def test_blockwise_round_trip_error(device, dtype, blocksize):
    A = torch.randn(3, 1000, dtype=dtype, device=device)
    codes, state = F.quantize_blockwise(A, blocksize=blocksize)
    assert codes.shape == A.shape and codes.dtype == torch.uint8
    assert state.absmax.shape == (-(A.numel() // -blocksize),)
    restored = F.dequantize_blockwise(codes, state)
    assert restored.dtype == dtype
    assert block_error_ratio(A, restored, blocksize) <= ERROR_BOUNDS["dynamic"]


def test_blockwise_nested_round_trip(device):
    A = torch.randn(64, 1024, device=device) * torch.linspace(0.1, 10, 64, device=device)[:, None]
    codes, state = F.quantize_blockwise(A, blocksize=256, nested=True)
    plain_codes, plain_state = F.quantize_blockwise(A, blocksize=256)
    assert state.nested and state.absmax.dtype == torch.uint8 and state.offset.dim() == 0
    assert state.state2.blocksize == 256 and state.state2.dtype == torch.float32
    assert_bitwise_equal(codes, plain_codes)
    de_nested = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
    centred = plain_state.absmax - state.offset
    absmax_error = (de_nested - plain_state.absmax).abs()
    assert absmax_error.max() <= ERROR_BOUNDS["dynamic"] * centred.abs().max() * 1.001
    restored = F.dequantize_blockwise(codes, state)
    block_of = torch.arange(A.numel(), device=device) // 256
    bound = ERROR_BOUNDS["dynamic"] * de_nested[block_of] + absmax_error[block_of]
    assert torch.all((restored - A).abs().reshape(-1) <= bound * 1.001)


def test_dequantize_blockwise_without_state(device):
    A = torch.randn(5000, device=device)
    codes, state = F.quantize_blockwise(A, blocksize=1024)
    assert_bitwise_equal(F.dequantize_blockwise(codes, absmax=state.absmax, blocksize=1024), F.dequantize_blockwise(codes, state))
    custom = F.create_linear_map(signed=True).to(device)
    custom_codes, custom_state = F.quantize_blockwise(A, code=custom, blocksize=1024)
    assert_bitwise_equal(
        F.dequantize_blockwise(custom_codes, absmax=custom_state.absmax, code=custom, blocksize=1024),
        F.dequantize_blockwise(custom_codes, custom_state),
    )


def test_quantize_nf4_fp4_wrappers(device):
    A = torch.randn(64, 64, device=device, dtype=torch.float16)
    for quant_type, quantize, dequantize in [
        ("nf4", F.quantize_nf4, F.dequantize_nf4),
        ("fp4", F.quantize_fp4, F.dequantize_fp4),
    ]:
        packed, state = quantize(A, blocksize=128)
        expected_packed, expected_state = F.quantize_4bit(A, blocksize=128, quant_type=quant_type)
        assert state.quant_type == quant_type and state == expected_state
        assert_bitwise_equal(packed, expected_packed)
        assert_bitwise_equal(dequantize(packed, state), F.dequantize_4bit(packed, expected_state))


def test_default_quant_type_is_fp4_and_blocksize_64(device):
    _, state = F.quantize_4bit(torch.randn(128, device=device))
    assert state.quant_type == "fp4" and state.blocksize == 64
    assert_bitwise_equal(state.code, F.get_4bit_type("fp4", device=device))


def test_transposed_packed_weight_gives_transposed_result(device):
    """Upstream's backward-compatibility shim: a [1, bytes] packed weight dequantizes transposed."""
    W = torch.randn(16, 8, device=device)
    packed, state = F.quantize_4bit(W, quant_type="nf4")
    assert_bitwise_equal(F.dequantize_4bit(packed.t(), state), F.dequantize_4bit(packed, state).t())


# ---- legacy out / absmax arguments and .out ops -----------------------------------------------


def test_blockwise_out_and_absmax_arguments(device):
    A = torch.randn(300, device=device)
    out = torch.empty(300, dtype=torch.uint8, device=device)
    absmax = torch.empty(5, device=device)
    codes, state = F.quantize_blockwise(A, blocksize=64, out=out, absmax=absmax)
    assert codes is out and state.absmax is absmax
    expected_codes, expected_state = F.quantize_blockwise(A, blocksize=64)
    assert_bitwise_equal(out, expected_codes)
    assert_bitwise_equal(absmax, expected_state.absmax)

    restored = torch.empty(300, device=device)
    assert F.dequantize_blockwise(codes, state, out=restored) is restored
    assert_bitwise_equal(restored, F.dequantize_blockwise(codes, state))


def test_4bit_out_and_absmax_arguments(device):
    A = torch.randn(20, 30, device=device, dtype=torch.bfloat16)
    out = torch.empty(300, 1, dtype=torch.uint8, device=device)
    absmax = torch.empty(10, device=device)
    packed, state = F.quantize_4bit(A, quant_type="nf4", out=out, absmax=absmax)
    assert packed is out and state.absmax is absmax

    restored = torch.empty(20, 30, dtype=torch.bfloat16, device=device)
    assert F.dequantize_4bit(packed, state, out=restored) is restored
    assert_bitwise_equal(restored, F.dequantize_4bit(packed, state))
    # Without a state: shape and dtype come from out.
    again = torch.empty_like(restored)
    F.dequantize_4bit(packed, absmax=absmax, out=again, quant_type="nf4")
    assert_bitwise_equal(again, restored)


def test_dequantize_4bit_out_with_nested_state(device):
    A = torch.randn(70, 64, device=device)
    packed, state = F.quantize_4bit(A, quant_type="fp4", compress_statistics=True)
    out = torch.empty(70, 64, device=device)
    F.dequantize_4bit(packed, state, out=out)
    assert_bitwise_equal(out, F.dequantize_4bit(packed, state))


# ---- quant_storage -----------------------------------------------------------------------------


@pytest.mark.parametrize("storage", [torch.uint8, torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 9, 4096, 4099])
def test_quant_storage_holds_the_same_bytes(device, storage, n):
    A = torch.randn(n, device=device, dtype=torch.bfloat16)
    reference, reference_state = F.quantize_4bit(A, quant_type="nf4")
    packed, state = F.quantize_4bit(A, quant_type="nf4", quant_storage=storage)
    packed_bytes = (n + 1) // 2
    itemsize = storage.itemsize
    # Rounded up where upstream would write past its allocation.
    assert packed.shape == (-(packed_bytes // -itemsize), 1) and packed.dtype == storage
    raw = packed.view(torch.uint8).reshape(-1)
    assert_bitwise_equal(raw[:packed_bytes], reference.reshape(-1))
    assert raw[packed_bytes:].eq(0).all()
    assert_bitwise_equal(state.absmax, reference_state.absmax)
    assert_bitwise_equal(F.dequantize_4bit(packed, state), F.dequantize_4bit(reference, reference_state))


# ---- QuantState ----------------------------------------------------------------------------------


def _nested_state(device, quant_type="nf4"):
    A = torch.randn(48, 80, dtype=torch.bfloat16, device=device)
    return A, *F.quantize_4bit(A, quant_type=quant_type, compress_statistics=True)


def test_as_dict_unpacked_fields(device):
    _, _, state = _nested_state(device)
    entries = state.as_dict()
    assert entries["quant_type"] == "nf4" and entries["blocksize"] == 64 and entries["dtype"] == "bfloat16"
    assert entries["shape"] == (48, 80)
    assert entries["nested_blocksize"] == 256 and entries["nested_dtype"] == "float32"
    assert entries["nested_offset"] == state.offset.item()
    assert entries["nested_quant_map"] is not state.state2.code
    assert_bitwise_equal(entries["nested_quant_map"], state.state2.code)


def test_as_dict_packed_json_bytes(device):
    _, _, state = _nested_state(device)
    packed = state.as_dict(packed=True)
    assert list(packed) == ["absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state.bitsandbytes__nf4"]
    json_bytes = bytes(packed["quant_state.bitsandbytes__nf4"].tolist())
    offset = repr(state.offset.item())
    assert json_bytes == (
        b'{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [48, 80], '
        b'"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ' + offset.encode() + b"}"
    )


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
def test_from_dict_round_trip(device, nested, packed):
    A = torch.randn(33, 65, dtype=torch.float16, device=device)
    weight, state = F.quantize_4bit(A, quant_type="fp4", compress_statistics=nested)
    entries = {f"model.layers.0.weight.{key}": value for key, value in state.as_dict(packed=packed).items()}
    before = dict(entries)
    restored = F.QuantState.from_dict(entries, device=device)
    assert entries.keys() == before.keys(), "from_dict must not modify the caller's dict"
    assert restored == state
    assert restored.nested == nested and restored.shape == A.shape and restored.dtype == torch.float16
    assert_bitwise_equal(F.dequantize_4bit(weight, restored), F.dequantize_4bit(weight, state))
    if nested:
        assert restored.offset.dtype == torch.float32 and restored.offset.dim() == 0
        assert_bitwise_equal(restored.offset, state.offset)


def test_from_dict_moves_tensors_to_device(device):
    _, _, state = _nested_state("cpu")
    restored = F.QuantState.from_dict(state.as_dict(packed=True), device=device)
    for tensor in (restored.absmax, restored.code, restored.offset, restored.state2.absmax, restored.state2.code):
        assert tensor.device.type == device


def test_from_dict_errors():
    _, _, state = _nested_state("cpu")
    packed = state.as_dict(packed=True)
    with pytest.raises(ValueError, match="Expected packed or unpacked quant_state items, found neither"):
        F.QuantState.from_dict({"absmax": packed["absmax"]}, device="cpu")
    two_packed = dict(packed, **{"quant_state.bitsandbytes__fp4": packed["quant_state.bitsandbytes__nf4"]})
    with pytest.raises(ValueError, match="There should be exactly one `quant_state` item"):
        F.QuantState.from_dict(two_packed, device="cpu")
    wrong_suffix = {k.replace("bitsandbytes__nf4", "bitsandbytes__int4"): v for k, v in packed.items()}
    with pytest.raises(ValueError, match="There should be exactly one `quant_state` item"):
        F.QuantState.from_dict(wrong_suffix, device="cpu")
    with pytest.raises(ValueError, match=r"unexpected keys \['bias'\]") as extra:
        F.QuantState.from_dict(dict(packed, bias=torch.zeros(1)), device="cpu")
    assert isinstance(extra.value, AssertionError), "upstream asserts here; callers may catch AssertionError"
    missing = {k: v for k, v in packed.items() if k != "absmax"}
    with pytest.raises(ValueError, match=r"missing keys \['absmax'\]"):
        F.QuantState.from_dict(missing, device="cpu")
    unpacked = state.as_dict()
    with pytest.raises(ValueError, match="dtype must name a torch dtype"):
        F.QuantState.from_dict(dict(unpacked, dtype="float17"), device="cpu")
    with pytest.raises(ValueError, match="quant_type must be one of"):
        F.QuantState.from_dict(dict(unpacked, quant_type="int4"), device="cpu")


def test_getattr_exposes_packed_entry_for_fsdp(device):
    _, _, state = _nested_state(device)
    assert_bitwise_equal(state.bitsandbytes__nf4, state.as_dict(packed=True)["quant_state.bitsandbytes__nf4"])
    with pytest.raises(AttributeError, match="'QuantState' object has no attribute 'bitsandbytes__fp4'"):
        state.bitsandbytes__fp4
    with pytest.raises(AttributeError, match="'QuantState' object has no attribute 'colour'"):
        state.colour


def test_getitem_legacy_list(device):
    A, _, nested = _nested_state(device)
    assert nested[0] is nested.absmax and nested[1] == A.shape and nested[2] == torch.bfloat16
    assert nested[3] == 64 and nested[4] == [nested.offset, nested.state2] and nested[5] == "nf4"
    _, plain = F.quantize_4bit(A, quant_type="nf4")
    assert plain[4] is None and plain[-1] == "nf4"


def test_to_moves_in_place():
    _, _, state = _nested_state("cpu")
    assert state.to("meta") is None
    for tensor in (state.absmax, state.code, state.offset, state.state2.absmax, state.state2.code):
        assert tensor.device.type == "meta"


def test_equality():
    A, _, state = _nested_state("cpu")
    _, same = F.quantize_4bit(A, quant_type="nf4", compress_statistics=True)
    _, plain = F.quantize_4bit(A, quant_type="nf4")
    _, other_type = F.quantize_4bit(A, quant_type="fp4", compress_statistics=True)
    assert state == same and state != plain and state != other_type
    assert state != "state" and plain != None  # noqa: E711


def test_blockwise_state_is_never_packed():
    _, state = F.quantize_blockwise(torch.randn(100))
    assert state.quant_type is None and state.shape is None
    entries = state.as_dict(packed=True)
    assert "quant_state.bitsandbytes__None" not in entries and entries["quant_type"] is None


def test_pack_dict_round_trip():
    source = {"quant_type": "nf4", "blocksize": 64, "shape": [2, 3], "nested_offset": 0.1}
    packed = pack_dict_to_tensor(source)
    assert packed.dtype == torch.uint8 and packed.dim() == 1
    assert bytes(packed.tolist()) == json.dumps(source).encode()
    assert unpack_tensor_to_dict(packed) == source
    with pytest.raises(TypeError, match="tensor_data must be a uint8 tensor"):
        unpack_tensor_to_dict(packed.float())
    with pytest.raises(ValueError, match="does not hold UTF-8 JSON"):
        unpack_tensor_to_dict(torch.tensor([0xFF, 0x00], dtype=torch.uint8))


# ---- codebooks ----------------------------------------------------------------------------------


def test_dynamic_map_properties():
    signed = F.create_dynamic_map(signed=True)
    unsigned = F.create_dynamic_map(signed=False)
    assert signed.dtype == torch.float32 and signed.shape == (256,)
    assert torch.all(signed[1:] >= signed[:-1]) and torch.all(unsigned[1:] >= unsigned[:-1])
    assert signed[127] == 0 and (signed == 0).sum() == 1 and signed[255] == 1.0
    assert signed[0].view(torch.int32).item() == 0xBF7E3333 - 2**32
    assert unsigned[0] == 0 and unsigned[255] == 1.0


@pytest.mark.parametrize("max_exponent_bits, total_bits", [(7, 8), (5, 8), (4, 8), (3, 6)])
def test_signed_dynamic_map_construction(max_exponent_bits, total_bits):
    built = F._build_dynamic_map(True, max_exponent_bits, total_bits)
    assert built.shape == (256,) and built.dtype == torch.float32
    assert torch.all(built[1:] >= built[:-1])
    assert built.max() == 1.0 and built.min() > -1.0
    assert (built != 0).sum() == 2**total_bits - 1  # every value but the one zero
    if (max_exponent_bits, total_bits) != (7, 8):
        assert_bitwise_equal(F.create_dynamic_map(True, max_exponent_bits, total_bits), built)


def test_dynamic_map_with_a_wrong_value_count_is_rejected():
    with pytest.raises(ValueError, match=r"yields 253 values instead of 2\*\*total_bits = 256"):
        F.create_dynamic_map(signed=False, max_exponent_bits=5)


def test_float32_linspace_matches_torch():
    for start, end, steps in [(0.1, 1.0, 3), (0.1, 1.0, 65), (0.1, 1.0, 129), (-1.0, 1.0, 255), (0.3, 0.7, 10)]:
        assert_bitwise_equal(F._torch_float32_linspace(start, end, steps), torch.linspace(start, end, steps))


def test_get_4bit_type_tables(device):
    nf4 = F.get_4bit_type("nf4", device=device)
    fp4 = F.get_4bit_type("fp4", device=device)
    assert nf4.shape == fp4.shape == (16,) and nf4.dtype == torch.float32 and nf4.device.type == device
    assert nf4[7] == 0 and nf4[0] == -1 and nf4[15] == 1 and nf4[1] < 0
    assert fp4[1] > 0 and fp4[8] == 0 and not torch.signbit(fp4[8])
    int4 = F.get_4bit_type("int4", device=device)
    assert int4.tolist() == (torch.tensor([7, 6, 5, 4, 3, 2, 1, 0, 0, -1, -2, -3, -4, -5, -6, -7]) / 7.0).tolist()
    af4 = F.get_4bit_type("af4", device=device)
    assert af4[0] == 1.0 and af4[-1] == -1.0 and torch.all(af4[:-1] >= af4[1:])
    with pytest.raises(NotImplementedError, match="only support blocksize 64"):
        F.get_4bit_type("af4", device=device, blocksize=128)
    with pytest.raises(NotImplementedError, match="Typename nf5 not supported"):
        F.get_4bit_type("nf5", device=device)


def test_fp8_map_of_the_fp4_layout_holds_the_fp4_values():
    """create_fp8_map(2 exponent bits, 1 mantissa bit) yields FP4's normal values (upstream's rule)."""
    code = F.create_fp8_map(signed=True, exponent_bits=2, precision_bits=1, total_bits=4)
    assert code.shape == (256,) and code.max() == 1.0
    values = set(code.tolist())
    fp4 = F.get_4bit_type("fp4", device="cpu")
    normal = [v for v in fp4.tolist() if abs(v) > 0.01]
    assert all(min(abs(v - c) for c in values) < 1e-7 for v in normal)
    default = F.create_fp8_map()
    assert default.shape == (256,) and default.max() == 1.0 and torch.all(default[1:] >= default[:-1])
    with pytest.raises(ValueError, match="exponent_bits \\+ precision_bits must equal total_bits"):
        F.create_fp8_map(signed=True, exponent_bits=4, precision_bits=4, total_bits=8)


def test_linear_map():
    signed = F.create_linear_map(signed=True)
    # 255 evenly spaced values (one of them ~0) and one inserted zero.
    assert signed.shape == (256,) and signed[0] == -1 and signed[-1] == 1 and (signed.abs() < 1e-6).sum() == 2
    assert_bitwise_equal(F.create_linear_map(signed=False), torch.linspace(0, 1, 256))
    small = F.create_linear_map(signed=True, total_bits=4)
    assert small.shape == (256,) and (small.abs() > 1e-6).sum() == 14 and small[0] == -1 and small[-1] == 1


def test_normal_map_needs_scipy(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(ImportError, match=r"Scipy is required for `create_normal_map`.*\[test\]"):
        F.create_normal_map()


def test_normal_map_values():
    pytest.importorskip("scipy", reason="scipy is not installed (the [test] extra)")
    code = F.create_normal_map()
    nf4 = F.get_4bit_type("nf4", device="cpu")
    assert_bitwise_equal(torch.cat([code[:8], code[248:]]), nf4)


def test_name2qmap_caches_the_dynamic_map(device):
    F.quantize_blockwise(torch.randn(64, device=device))
    assert_bitwise_equal(F.name2qmap["dynamic"], F.create_dynamic_map())


# ---- pointers, devices, streams -------------------------------------------------------------


def test_get_ptr_and_stream():
    A = torch.arange(4.0)
    assert F.get_ptr(None) is None
    pointer = F.get_ptr(A)
    assert isinstance(pointer, ctypes.c_void_p) and pointer.value == A.data_ptr()
    assert F._get_tensor_stream(A).value is None


def test_is_on_gpu_rules():
    cpu = torch.zeros(1)
    meta = torch.zeros(1, device="meta")
    assert F.is_on_gpu([cpu, None, cpu]) is True
    assert F.is_on_gpu([meta, meta]) is True
    with pytest.raises(RuntimeError, match="Input tensors need to be on the same device"):
        F.is_on_gpu([cpu, meta])
    paged = torch.zeros(1)
    paged.is_paged = True
    assert F.is_on_gpu([meta, paged]) is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_is_on_gpu_cuda():
    gpu = torch.zeros(1, device="cuda")
    assert F.is_on_gpu([gpu, gpu]) is True
    with pytest.raises(RuntimeError, match="same device"):
        F.is_on_gpu([gpu, torch.zeros(1)])
    # The default stream's handle is 0, which ctypes shows as None.
    assert (F._get_tensor_stream(gpu).value or 0) == torch.cuda.current_stream().cuda_stream


def test_quant_state_survives_pickle_and_deepcopy():
    import copy
    import pickle

    _, _, state = _nested_state("cpu")
    for clone in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
        assert clone == state and clone.nested and clone.absmax is not state.absmax


def test_default_kernels_serve_devices_without_native_ones():
    """The pure-torch kernels sit under CompositeExplicitAutograd; CPU and CUDA keep native kernels."""
    for name in ("quantize_blockwise", "dequantize_blockwise", "quantize_4bit", "dequantize_4bit"):
        qualified = f"bitsandbytes::{name}"
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualified, "CompositeExplicitAutograd")
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualified, "CPU")
