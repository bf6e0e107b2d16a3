"""Params4bit, Linear4bit, Embedding4bit and matmul_4bit: the behaviours that libraries rely on."""

import copy
import pickle

import pytest
import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes.nn import Embedding4bit, Linear4bit, LinearFP4, LinearNF4, Params4bit


def quantized_linear(device, quant_type="nf4", compress_statistics=True, quant_storage=torch.uint8, bias=True,
                     dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    layer = Linear4bit(96, 40, bias=bias, quant_type=quant_type, compress_statistics=compress_statistics,
                       quant_storage=quant_storage, compute_dtype=dtype)
    return layer.to(device)


def test_params4bit_quantizes_on_first_move_only(device):
    data = torch.randn(40, 96)
    param = Params4bit(data.clone(), quant_type="nf4")
    assert not param.bnb_quantized and param.dtype == torch.float32
    moved = param.to(device)
    assert moved is param and param.bnb_quantized  # quantizing mutates and returns self
    assert param.dtype == torch.uint8 and param.shape == (40 * 96 // 2, 1)
    expected, _ = F.quantize_4bit(data.to(device), quant_type="nf4", compress_statistics=True)
    assert torch.equal(param.data, expected)
    again = param.to(device)  # already quantized: moved, never re-quantized
    assert again is not param and torch.equal(again.data, param.data) and again.quant_state is param.quant_state


def test_params4bit_dict_round_trip_accepts_unknown_keys():
    meta = Params4bit(torch.empty(8, 64, device="meta"), quant_type="fp4", blocksize=128)
    meta._is_hf_initialized = True  # attributes other libraries attach must be tolerated
    rebuilt = Params4bit(torch.randn(8, 64), requires_grad=False, **meta.__dict__)
    assert rebuilt.blocksize == 128 and rebuilt.quant_type == "fp4" and not rebuilt.bnb_quantized
    assert set(Params4bit(torch.empty(0)).__dict__) == {"blocksize", "compress_statistics", "quant_type",
                                                         "quant_state", "quant_storage", "bnb_quantized", "module"}


def test_params4bit_pickle_copy_deepcopy(device):
    layer = quantized_linear(device)
    param = layer.weight
    restored = pickle.loads(pickle.dumps(param))
    assert type(restored) is Params4bit and torch.equal(restored.data.cpu(), param.data.cpu())
    assert restored.quant_state == param.quant_state and restored.quant_type == "nf4"
    shallow = copy.copy(param)
    assert shallow.quant_state is param.quant_state and shallow.data_ptr() == param.data_ptr()
    keys_before = set(param.__dict__)
    deep = copy.deepcopy(param)
    assert set(param.__dict__) == keys_before
    assert deep.quant_state is not param.quant_state and deep.quant_state == param.quant_state
    assert deep.data_ptr() != param.data_ptr() and torch.equal(deep.data, param.data)


def test_params4bit_state_properties(device):
    param = quantized_linear(device).weight
    state = param.quant_state
    assert param.absmax is state.absmax and param.quant_map is state.code and param.code is state.code
    assert param.nested_absmax is state.state2.absmax and param.nested_offset is state.offset
    assert param.nested_blocksize == 256 and param.nested_dtype == torch.float32
    plain = quantized_linear(device, compress_statistics=False).weight
    with pytest.raises(AttributeError, match="nested_absmax"):
        plain.nested_absmax
    with pytest.raises(AttributeError, match="absmax"):
        Params4bit(torch.randn(4, 64)).absmax


def test_params4bit_chunk_and_split_keep_identity(device):
    param = quantized_linear(device).weight
    for pieces in (torch.chunk(param, 2), torch.split(param, param.shape[0] // 4)):
        assert all(type(p) is Params4bit and p.quant_state is param.quant_state for p in pieces)


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("compute_dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_linear4bit_forward_matches_dequantized_linear(device, quant_type, compute_dtype):
    layer = quantized_linear(device, quant_type=quant_type, dtype=compute_dtype)
    x = torch.randn(3, 5, 96, device=device)
    weight = F.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    expected = torch.nn.functional.linear(x.to(compute_dtype), weight.to(compute_dtype),
                                          layer.bias.to(compute_dtype)).float()
    y = layer(x)
    assert y.dtype == x.dtype and y.shape == (3, 5, 40)
    tolerance = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}[compute_dtype]
    assert ((y - expected).norm() / expected.norm()).item() < tolerance


@pytest.mark.parametrize("quant_storage", [torch.bfloat16, torch.float16, torch.float32])
def test_linear4bit_outputs_do_not_depend_on_storage(device, quant_storage):
    x = torch.randn(4, 96, device=device)
    baseline = quantized_linear(device)(x)
    layer = quantized_linear(device, quant_storage=quant_storage)
    assert layer.weight.dtype == quant_storage
    assert torch.equal(layer(x), baseline)


def test_subclasses_fix_quant_type():
    assert LinearNF4(64, 8).weight.quant_type == "nf4"
    assert LinearFP4(64, 8).weight.quant_type == "fp4"


def test_state_dict_keys_and_symmetric_round_trip(device):
    layer = quantized_linear(device)
    state = layer.state_dict()
    assert list(state) == ["weight", "bias", "weight.absmax", "weight.quant_map", "weight.nested_absmax",
                           "weight.nested_quant_map", "weight.quant_state.bitsandbytes__nf4"]
    fresh = Linear4bit(96, 40, quant_type="fp4", compress_statistics=False)  # config comes from the checkpoint
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    fresh = fresh.to(device)
    assert fresh.weight.quant_type == "nf4" and fresh.weight.quant_state.nested
    x = torch.randn(2, 96, device=device)
    assert torch.equal(fresh(x), layer(x))
    # Loaders that use from_prequantized get the same layer.
    stats = {key: value for key, value in state.items() if key.startswith("weight.")}
    param = Params4bit.from_prequantized(state["weight"], stats, device=device, module=fresh)
    assert param.quant_storage == torch.uint8 and fresh.quant_state is param.quant_state
    assert torch.equal(F.dequantize_4bit(param.data, param.quant_state),
                       F.dequantize_4bit(layer.weight.data, layer.weight.quant_state))


def test_float_state_dict_loads_then_quantizes(device):
    source = torch.nn.Linear(96, 40)
    layer = Linear4bit(96, 40, quant_type="nf4")
    layer.load_state_dict(source.state_dict())
    layer = layer.to(device)
    expected, _ = F.quantize_4bit(source.weight.data.to(device), quant_type="nf4", compress_statistics=True)
    assert torch.equal(layer.weight.data, expected)


@pytest.mark.parametrize("corrupt", ["missing_absmax", "short_absmax", "missing_json", "bad_shape", "short_weight",
                                     "missing_nested"])
def test_corrupt_checkpoints_are_rejected_naming_the_key(corrupt):
    state = quantized_linear("cpu").state_dict()
    key, match = {
        "missing_absmax": ("weight.absmax", "absmax"),
        "short_absmax": ("weight.absmax", "absmax"),
        "missing_json": ("weight.quant_state.bitsandbytes__nf4", "quant_state"),
        "bad_shape": ("weight.quant_state.bitsandbytes__nf4", "weight"),
        "short_weight": ("weight", "weight"),
        "missing_nested": ("weight.nested_absmax", "nested_absmax"),
    }[corrupt]
    if corrupt == "short_absmax":
        state[key] = state[key][:-1]
    elif corrupt == "bad_shape":
        blob = bytes(state[key].tolist()).replace(b"[40, 96]", b"[80, 96]")
        state[key] = torch.tensor(list(blob), dtype=torch.uint8)
    elif corrupt == "short_weight":
        state[key] = state[key][:-8]
    else:
        del state[key]
    with pytest.raises((ValueError, KeyError), match=match):
        Linear4bit(96, 40, quant_type="nf4").load_state_dict(state)


def test_matmul_4bit_gradients(device):
    layer = quantized_linear(device)
    weight = F.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    x = torch.randn(6, 96, device=device, requires_grad=True)
    bias = layer.bias.detach().clone().requires_grad_(True)
    y = bnb.matmul_4bit(x, layer.weight, layer.weight.quant_state, bias=bias)
    x_ref = x.detach().clone().requires_grad_(True)
    bias_ref = bias.detach().clone().requires_grad_(True)
    y_ref = torch.nn.functional.linear(x_ref, weight, bias_ref)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    assert torch.allclose(bias.grad, bias_ref.grad, atol=1e-5)


def test_matmul_4bit_rejects_bad_arguments(device):
    layer = quantized_linear(device)
    with pytest.raises(ValueError, match="quant_state is required"):
        bnb.matmul_4bit(torch.randn(2, 96, device=device), layer.weight, None)
    with pytest.raises(ValueError, match="in_features"):
        bnb.matmul_4bit(torch.randn(2, 50, device=device), layer.weight, layer.weight.quant_state)


def test_matmul_4bit_empty_input(device):
    layer = quantized_linear(device)
    out = bnb.matmul_4bit(torch.randn(0, 96, device=device), layer.weight, layer.weight.quant_state)
    assert out.shape == (0, 40)


@pytest.mark.parametrize("embedding_dim", [128, 96])  # partial dequantization, and the whole-table path
def test_embedding4bit_matches_dequantized_table(device, embedding_dim):
    torch.manual_seed(0)
    embedding = Embedding4bit(50, embedding_dim, quant_type="nf4").to(device)
    table = F.dequantize_4bit(embedding.weight.data, embedding.weight.quant_state)
    indices = torch.tensor([[0, 7, 49], [3, 3, 12]], device=device)
    out = embedding(indices)
    assert out.shape == (2, 3, embedding_dim)
    assert torch.equal(out, torch.nn.functional.embedding(indices, table))
    with pytest.raises(NotImplementedError):
        embedding.state_dict()


def test_compiled_linear4bit_has_no_graph_break(device):
    layer = quantized_linear(device)
    x = torch.randn(4, 96, device=device)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), layer(x))


# ---- issue 14: what used to give silently wrong results -------------------------------------------


def test_checkpoint_of_the_transposed_layer_is_refused():
    source = Linear4bit(32, 64, bias=False, quant_type="nf4").to("cpu")
    target = Linear4bit(64, 32, bias=False, quant_type="nf4").to("cpu")
    weight_before = target.weight
    with pytest.raises(ValueError, match=r"weight\.quant_state\.bitsandbytes__nf4: .*shape \[64, 32\], but "
                                         r"Linear4bit expects \[32, 64\]"):
        target.load_state_dict(source.state_dict())
    assert target.weight is weight_before and target.weight.quant_state.shape == (32, 64)
    stats = {key: value for key, value in source.state_dict().items() if key.startswith("weight.")}
    with pytest.raises(ValueError, match="expects"):
        Params4bit.from_prequantized(source.weight.data, stats, device="cpu", module=target)


@pytest.mark.parametrize("replacement", ["float_weight", "cast_to_float32"])
def test_weight_that_is_not_the_packed_storage_is_refused(replacement):
    state = quantized_linear("cpu").state_dict()
    state["weight"] = torch.randn(40, 96) if replacement == "float_weight" else state["weight"].float()
    with pytest.raises(ValueError, match=r"weight: expected the packed .* storage of shape"):
        Linear4bit(96, 40, quant_type="nf4").load_state_dict(state)


@pytest.mark.parametrize("storage", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("conversion", ["half", "float", "bfloat16", "to_dtype"])
def test_dtype_conversion_of_the_module_keeps_the_packed_bytes(storage, conversion):
    model = torch.nn.Sequential(quantized_linear("cpu", quant_storage=storage))
    layer = model[0]
    packed = layer.weight.data.clone()
    expected = F.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    model = model.to(torch.float16) if conversion == "to_dtype" else getattr(model, conversion)()
    assert layer.weight.dtype == storage and torch.equal(layer.weight.data.view(torch.uint8), packed.view(torch.uint8))
    assert isinstance(layer.weight, Params4bit) and layer.weight.bnb_quantized
    assert torch.equal(F.dequantize_4bit(layer.weight.data, layer.weight.quant_state), expected)
    assert layer.bias.dtype != torch.float32 or conversion == "float"  # the bias does convert


@pytest.mark.parametrize("quantized", [False, True])
def test_deepcopy_of_a_layer_owns_its_weight(quantized):
    original = Linear4bit(96, 40, quant_type="nf4")
    if quantized:
        original = original.to("cpu")
    duplicate = copy.deepcopy(original)
    assert duplicate.weight.module is duplicate and original.weight.module is original
    duplicate.to("cpu")
    assert duplicate.quant_state is duplicate.weight.quant_state is not None
    assert (original.quant_state is not None) == quantized and original.weight.bnb_quantized == quantized
    assert copy.deepcopy(original.weight).module is None  # a parameter copied alone belongs to no module
