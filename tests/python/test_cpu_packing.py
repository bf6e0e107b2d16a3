"""Upstream's AVX512-BF16 packed CPU weight layout and the helpers around it (python_api.md sections 2.7, 2.8)."""

import copy
from types import SimpleNamespace

import pytest
import torch

import bitsandbytes.functional as F
from bitsandbytes._functional import cpu_packing


def _quantized(N=64, K=128, nested=True, storage=torch.uint8, blocksize=64):
    weight = torch.randn(N, K, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    return F.quantize_4bit(weight, blocksize=blocksize, compress_statistics=nested, quant_type="nf4",
                           quant_storage=storage)


def _codes(packed_bytes, N, K):
    """[N, K] codes of the standard layout, element 2i in the high nibble of byte i (written out slowly)."""
    flat = packed_bytes.reshape(-1).tolist()
    values = []
    for byte in flat:
        values += [byte >> 4, byte & 0xF]
    return torch.tensor(values).reshape(N, K)


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_packed_layout_puts_each_code_where_upstreams_kernel_reads_it(nested):
    N, K, block_n = 64, 128, 32
    qweight, state = _quantized(N, K, nested)
    codes = _codes(qweight, N, K)
    expected_absmax = F._denested_absmax(copy.deepcopy(state)).reshape(N, K // 64).T.to(torch.bfloat16)
    packed, converted = F._convert_weight_packed_for_cpu(qweight, state, block_n)
    assert converted is state
    assert packed.shape == (N, K // 2) and packed.dtype == torch.uint8
    flat = packed.reshape(-1).tolist()
    # Byte j of group g (g = row tile * K/2 + column pair) holds entries j and j + 32 of the group's 64
    # codes, which run over the tile's rows two columns at a time.
    for position, byte in enumerate(flat):
        group, j = divmod(position, 32)
        tile, pair = divmod(group, K // 2)
        for entry, nibble in ((j, byte & 0xF), (j + 32, byte >> 4)):
            row, column = tile * block_n + entry // 2, 2 * pair + entry % 2
            assert nibble == codes[row, column], (position, entry)
    assert state.packing_format_for_cpu and not state.nested and state.state2 is None
    assert state.dtype == torch.bfloat16 and state.original_dtype == torch.bfloat16
    assert state.original_nested is nested and state.original_qshape == qweight.shape
    assert torch.equal(state.absmax, expected_absmax)


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
@pytest.mark.parametrize("storage", [torch.uint8, torch.bfloat16], ids=str)
def test_inverse_restores_the_bytes_and_a_usable_state(nested, storage):
    qweight, state = _quantized(64, 256, nested, storage)
    reference = F.dequantize_4bit(qweight, copy.deepcopy(state))
    packed, _ = F._convert_weight_packed_for_cpu(qweight.clone(), state)
    restored, restored_state = F._convert_weight_packed_for_cpu_inverse(packed, state)
    # Compared as bytes: the bfloat16 view of packed codes holds NaN patterns.
    assert restored.dtype == storage and torch.equal(restored.view(torch.uint8), qweight.view(torch.uint8))
    assert restored_state.nested is nested and not restored_state.packing_format_for_cpu
    assert restored_state.dtype == torch.bfloat16 and restored_state.absmax.shape[0] == 64 * 256 // 64
    # The absmax went through bfloat16 (and a fresh nesting): close, not exact.
    torch.testing.assert_close(F.dequantize_4bit(restored, restored_state), reference, rtol=2e-2, atol=2e-2)


def test_bad_shapes_and_states_are_rejected():
    qweight, state = _quantized(48, 128)
    with pytest.raises(ValueError, match="N=48 must be divisible by block_n=32"):
        F._convert_weight_packed_for_cpu(qweight, state)
    qweight, state = _quantized(64, 96)
    with pytest.raises(ValueError, match="K=96 must be a multiple of the blocksize 64"):
        F._convert_weight_packed_for_cpu(qweight, copy.deepcopy(state))
    with pytest.raises(ValueError, match="block_n must be a positive int"):
        F._convert_weight_packed_for_cpu(qweight, copy.deepcopy(state), block_n=0)
    qweight, state = _quantized(64, 128)
    with pytest.raises(ValueError, match="qweight holds 16 bytes; a 4-bit \\[64, 128\\] weight takes 4096"):
        F._convert_weight_packed_for_cpu(qweight[:16], copy.deepcopy(state), block_n=32)
    with pytest.raises(ValueError, match="quant_state is not in the packed CPU format"):
        F._convert_weight_packed_for_cpu_inverse(torch.zeros(64, 48, dtype=torch.uint8), state)
    qweight, state = _quantized(64, 128)
    packed, _ = F._convert_weight_packed_for_cpu(qweight, state)
    with pytest.raises(ValueError, match="already in the packed CPU format"):
        F._convert_weight_packed_for_cpu(qweight, state)
    with pytest.raises(ValueError, match="packed_weight must be a 2-D uint8 tensor"):
        F._convert_weight_packed_for_cpu_inverse(packed.reshape(-1), state)


def test_has_avx512bf16_asks_the_native_library(monkeypatch):
    # Our library has no kernel for the packed layout, so the answer is False on every machine ...
    assert F.has_avx512bf16() is False
    # ... and it is the library's answer, not a constant.
    monkeypatch.setattr(cpu_packing, "lib", SimpleNamespace(has_avx512bf16_cpu=lambda: 1))
    assert F.has_avx512bf16() is True
    monkeypatch.setattr(cpu_packing, "lib", SimpleNamespace())
    assert F.has_avx512bf16() is False


def test_cublas_context_is_a_singleton_without_handles_to_give():
    with pytest.raises(RuntimeError, match="Call get_instance"):
        F.CUBLAS_Context()
    context = F.CUBLAS_Context.get_instance()
    assert context is F.CUBLAS_Context.get_instance() and context.context == {}
    with pytest.raises(ValueError, match="device must be a CUDA device, got cpu"):
        context.get_context(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="Method 'get_context' not available"):
        context.get_context(torch.device("cuda", 0))
    assert context.context == {}


def _packed_linear(nested):
    import bitsandbytes as bnb

    layer = bnb.nn.Linear4bit(128, 64, compress_statistics=nested, quant_type="nf4", compute_dtype=torch.bfloat16)
    layer = layer.to("cpu").eval()
    x = torch.randn(3, 128, dtype=torch.bfloat16, generator=torch.Generator().manual_seed(1))
    reference = layer(x)
    standard_keys = {key: value.shape for key, value in layer.state_dict().items()}
    # What upstream's forward does on an AVX512-BF16 machine (python_api.md 3.2 step 2).
    layer.weight.data, layer.weight.quant_state = F._convert_weight_packed_for_cpu(layer.weight.data,
                                                                                    layer.weight.quant_state)
    return layer, x, reference, standard_keys


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_linear4bit_converts_a_packed_weight_back_before_use(nested):
    layer, x, reference, standard_keys = _packed_linear(nested)
    assert layer.support_avx512bf16_for_cpu is False
    torch.testing.assert_close(layer(x), reference, rtol=2e-2, atol=5e-2)
    assert not layer.weight.quant_state.packing_format_for_cpu and layer.weight.quant_state.nested is nested
    assert layer.quant_state is layer.weight.quant_state


@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_linear4bit_saves_a_packed_weight_in_the_standard_layout(nested):
    layer, _, _, standard_keys = _packed_linear(nested)
    saved = layer.state_dict()
    assert saved.keys() == standard_keys.keys()
    # The packed JSON's length follows the digits of a re-nested offset; every tensor keeps its shape.
    json_key = "weight.quant_state.bitsandbytes__nf4"
    assert {key: value.shape for key, value in saved.items() if key != json_key} == {
        key: shape for key, shape in standard_keys.items() if key != json_key}
    fields = F.unpack_tensor_to_dict(saved[json_key])
    assert (fields["quant_type"], fields["blocksize"], fields["shape"]) == ("nf4", 64, [64, 128])
    assert fields["dtype"] == "float32" and ("nested_offset" in fields) is nested
    assert saved["weight"].shape == (64 * 128 // 2, 1)
