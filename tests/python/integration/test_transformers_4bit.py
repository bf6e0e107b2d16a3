"""load_in_4bit through unmodified Transformers: loading, forward, generate, save/reload, footprint."""

import importlib.metadata

import pytest
import torch

import bitsandbytes as bnb

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, BitsAndBytesConfig  # noqa: E402
from tiny_models import tiny_llama_dir, tiny_opt_dir, token_ids  # noqa: E402,F401  (fixtures)


def load_4bit(path, device, quant_type="nf4", double_quant=True, compute_dtype=torch.bfloat16,
              quant_storage=torch.uint8, **config_kwargs):
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=compute_dtype,
                                bnb_4bit_quant_storage=quant_storage, **config_kwargs)
    return AutoModelForCausalLM.from_pretrained(path, quantization_config=config, device_map=device,
                                                dtype=torch.bfloat16)


def relative_error(actual, expected):
    return ((actual.float() - expected.float()).norm() / expected.float().norm()).item()


def test_version_gates_pass():
    from accelerate.utils import is_4bit_bnb_available, is_bitsandbytes_multi_backend_available
    from transformers.utils.import_utils import is_bitsandbytes_available

    assert importlib.metadata.version("bitsandbytes") == bnb.__version__ == "0.50.2"
    assert is_bitsandbytes_available()
    assert is_4bit_bnb_available()
    assert is_bitsandbytes_multi_backend_available()
    assert {"cpu", "cuda"} <= bnb.supported_torch_devices


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("double_quant", [True, False])
@pytest.mark.parametrize("compute_dtype", [torch.bfloat16, torch.float32])
def test_load_in_4bit_matches_full_precision(tiny_llama_dir, token_ids, device, quant_type, double_quant,
                                              compute_dtype):
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16, device_map=device)
    model = load_4bit(tiny_llama_dir, device, quant_type, double_quant, compute_dtype)

    linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linears) == 2 * 7  # q, k, v, o, gate, up, down per layer; lm_head stays full precision
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    for layer in linears:
        assert isinstance(layer.weight, bnb.nn.Params4bit)
        assert layer.weight.dtype == torch.uint8 and layer.weight.bnb_quantized
        assert layer.weight.quant_state.quant_type == quant_type
        assert layer.weight.quant_state.nested == double_quant
    assert model.is_loaded_in_4bit
    assert model.num_parameters() == reference.num_parameters()
    assert model.get_memory_footprint() < 0.75 * reference.get_memory_footprint()

    with torch.no_grad():
        expected = reference(token_ids.to(device)).logits
        actual = model(token_ids.to(device)).logits
    assert torch.isfinite(actual).all()
    bound = 0.25 if quant_type == "nf4" else 0.35  # 4-bit weights of a random-init model
    assert relative_error(actual, expected) < bound


def test_generate_agrees_with_full_precision(tiny_llama_dir, token_ids, device):
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16, device_map=device)
    model = load_4bit(tiny_llama_dir, device)
    prompt = token_ids[:1, :8].to(device)
    out = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 16)
    assert torch.equal(out[:, :8], prompt)
    with torch.no_grad():
        # Generation with the KV cache equals greedy decoding by full forwards of the 4-bit model...
        full_forward_choice = model(out[:, :-1], use_cache=False).logits[0, 7:].argmax(-1)
        assert torch.equal(full_forward_choice, out[0, 8:])
        # ...and its first token ranks near the top of the full-precision model's (a random-init model's
        # logits are nearly flat, so exact agreement of greedy choices is not expected).
        reference_logits = reference(prompt).logits[0, -1]
    rank = (reference_logits > reference_logits[out[0, 8]]).sum().item()
    assert rank < 0.05 * reference_logits.numel()


@pytest.mark.parametrize("quant_storage", [torch.uint8, torch.bfloat16, torch.float32])
def test_quant_storage_gives_identical_outputs(tiny_llama_dir, token_ids, device, quant_storage):
    baseline = load_4bit(tiny_llama_dir, device)
    model = load_4bit(tiny_llama_dir, device, quant_storage=quant_storage)
    layer = model.model.layers[0].self_attn.q_proj
    assert layer.weight.dtype == quant_storage
    with torch.no_grad():
        assert torch.equal(model(token_ids.to(device)).logits, baseline(token_ids.to(device)).logits)


def test_skip_modules_stay_full_precision(tiny_llama_dir, device):
    model = load_4bit(tiny_llama_dir, device, llm_int8_skip_modules=["down_proj", "lm_head"])
    for layer in model.model.layers:
        assert not isinstance(layer.mlp.down_proj, bnb.nn.Linear4bit)
        assert layer.mlp.down_proj.weight.dtype == torch.bfloat16
        assert isinstance(layer.mlp.up_proj, bnb.nn.Linear4bit)


@pytest.mark.parametrize("quant_type,double_quant", [("nf4", True), ("fp4", False)])
def test_save_and_reload_is_identical(tiny_llama_dir, token_ids, tmp_path, device, quant_type, double_quant):
    model = load_4bit(tiny_llama_dir, device, quant_type, double_quant)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, device_map=device)

    original_state, reloaded_state = model.state_dict(), reloaded.state_dict()
    assert original_state.keys() == reloaded_state.keys()
    for key, value in original_state.items():
        assert torch.equal(value.cpu(), reloaded_state[key].cpu()), key
    layer = reloaded.model.layers[1].mlp.up_proj
    assert isinstance(layer, bnb.nn.Linear4bit)
    assert isinstance(layer.weight.quant_state, bnb.functional.QuantState)
    for key, value in layer.weight.quant_state.as_dict().items():
        expected = model.model.layers[1].mlp.up_proj.weight.quant_state.as_dict()[key]
        assert torch.equal(value, expected) if isinstance(value, torch.Tensor) else value == expected, key
    with torch.no_grad():
        assert torch.equal(reloaded(token_ids.to(device)).logits, model(token_ids.to(device)).logits)


def test_opt_loads_and_dequantizes(tiny_opt_dir, token_ids, device):
    reference = AutoModelForCausalLM.from_pretrained(tiny_opt_dir, dtype=torch.float16, device_map=device)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(tiny_opt_dir, quantization_config=config, device_map=device,
                                                 dtype=torch.float16)
    assert isinstance(model.model.decoder.layers[0].fc1, bnb.nn.Linear4bit)
    with torch.no_grad():
        expected = reference(token_ids.to(device)).logits
        quantized_logits = model(token_ids.to(device)).logits
        model.dequantize()
        assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
        dequantized_logits = model(token_ids.to(device)).logits
    assert relative_error(quantized_logits, expected) < 0.25
    assert relative_error(dequantized_logits, quantized_logits) < 0.02


def test_device_round_trip_keeps_quantization(tiny_llama_dir, token_ids):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = load_4bit(tiny_llama_dir, "cuda")
    footprint = model.get_memory_footprint()
    with torch.no_grad():
        before = model(token_ids.cuda()).logits
        model.to("cpu")
        model.to("cuda")
        after = model(token_ids.cuda()).logits
    assert model.get_memory_footprint() == footprint
    assert torch.equal(before, after)


def test_compiled_forward_has_no_graph_break(tiny_llama_dir, token_ids, device):
    model = load_4bit(tiny_llama_dir, device)
    inputs = token_ids.to(device)
    with torch.no_grad():
        eager = model(inputs, use_cache=False).logits
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        traced = compiled(inputs, use_cache=False).logits
    assert torch.allclose(traced.float(), eager.float(), rtol=1e-2, atol=1e-2)


def test_checkpoint_with_a_transposed_shape_is_refused(tiny_llama_dir, tmp_path, device, caplog):
    """A saved layer whose `shape` is reversed (its codes would be read in the wrong order) fails to load,
    naming the layer's key (issue 14). Transformers collects the error of from_prequantized in its load
    report (with the layer) and raises once all layers are read."""
    import json

    from safetensors.torch import load_file, save_file

    load_4bit(tiny_llama_dir, device).save_pretrained(tmp_path)
    (checkpoint,) = tmp_path.glob("*.safetensors")
    tensors = load_file(str(checkpoint))
    key = next(key for key, value in tensors.items() if key.endswith("quant_state.bitsandbytes__nf4")
               and len(set(json.loads(bytes(value.tolist()))["shape"])) == 2)
    fields = json.loads(bytes(tensors[key].tolist()))
    fields["shape"] = fields["shape"][::-1]
    tensors[key] = torch.tensor(list(json.dumps(fields).encode()), dtype=torch.uint8)
    save_file(tensors, str(checkpoint), metadata={"format": "pt"})
    with pytest.raises((ValueError, RuntimeError)) as raised:
        AutoModelForCausalLM.from_pretrained(tmp_path, device_map=device)
    report = str(raised.value) + caplog.text
    layer = key[: key.index(".weight.quant_state")]
    rows, columns = fields["shape"]
    assert layer in report and f"has shape [{rows}, {columns}], but Linear4bit expects [{columns}, {rows}]" in report
