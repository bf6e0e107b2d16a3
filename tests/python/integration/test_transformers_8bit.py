"""load_in_8bit (LLM.int8()) through unmodified Transformers and PEFT: loading, forward, generate,
save/reload, footprint, torch.compile, LoRA training and merging."""

import pytest
import torch

import bitsandbytes as bnb

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training  # noqa: E402
from transformers import AutoModelForCausalLM, BitsAndBytesConfig  # noqa: E402
from tiny_models import tiny_llama_dir, tiny_opt_dir, token_ids  # noqa: E402,F401  (fixtures)

LINEARS_PER_LLAMA_LAYER = 7  # q, k, v, o, gate, up, down; lm_head stays full precision


def load_8bit(path, device, dtype=torch.bfloat16, **config_kwargs):
    config = BitsAndBytesConfig(load_in_8bit=True, **config_kwargs)
    return AutoModelForCausalLM.from_pretrained(path, quantization_config=config, device_map=device, dtype=dtype)


def relative_error(actual, expected):
    return ((actual.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.mark.parametrize("threshold", [6.0, 0.0])
def test_load_in_8bit_matches_full_precision(tiny_llama_dir, token_ids, device, threshold):
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16, device_map=device)
    model = load_8bit(tiny_llama_dir, device, llm_int8_threshold=threshold)

    linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    assert len(linears) == 2 * LINEARS_PER_LLAMA_LAYER
    assert not isinstance(model.lm_head, bnb.nn.Linear8bitLt)
    for layer in linears:
        assert type(layer.weight).__name__ == "Int8Params" and layer.weight.dtype == torch.int8
        assert layer.state.threshold == threshold and not layer.state.has_fp16_weights
        scb = layer.weight.SCB if layer.weight.SCB is not None else layer.state.SCB
        assert scb.dtype == torch.float32 and scb.shape == (layer.out_features,)
    assert model.is_loaded_in_8bit
    assert model.num_parameters() == reference.num_parameters()
    assert model.get_memory_footprint() < 0.65 * reference.get_memory_footprint()

    with torch.no_grad():
        expected = reference(token_ids.to(device)).logits
        actual = model(token_ids.to(device)).logits
    assert torch.isfinite(actual).all()
    assert relative_error(actual, expected) < 0.05  # int8 weights and activations of a random-init model


def test_skip_modules_stay_full_precision(tiny_llama_dir, device):
    model = load_8bit(tiny_llama_dir, device, llm_int8_skip_modules=["down_proj", "lm_head"])
    for layer in model.model.layers:
        assert not isinstance(layer.mlp.down_proj, bnb.nn.Linear8bitLt)
        assert layer.mlp.down_proj.weight.dtype == torch.bfloat16
        assert isinstance(layer.mlp.up_proj, bnb.nn.Linear8bitLt)


def test_has_fp16_weight_keeps_float_weights(tiny_llama_dir, token_ids, device):
    model = load_8bit(tiny_llama_dir, device, llm_int8_has_fp16_weight=True)
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear8bitLt) and layer.state.has_fp16_weights
    assert type(layer.weight).__name__ == "Int8Params" and layer.weight.is_floating_point()
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16, device_map=device)
    with torch.no_grad():
        assert relative_error(model(token_ids.to(device)).logits, reference(token_ids.to(device)).logits) < 0.05


def test_generate_is_greedy_decoding_of_the_8bit_model(tiny_llama_dir, token_ids, device):
    model = load_8bit(tiny_llama_dir, device)
    prompt = token_ids[:1, :8].to(device)
    out = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 16) and torch.equal(out[:, :8], prompt)
    with torch.no_grad():
        full_forward_choice = model(out[:, :-1], use_cache=False).logits[0, 7:].argmax(-1)
    assert torch.equal(full_forward_choice, out[0, 8:])


@pytest.mark.parametrize("threshold", [6.0, 0.0])
def test_save_and_reload_is_identical(tiny_llama_dir, token_ids, tmp_path, device, threshold):
    model = load_8bit(tiny_llama_dir, device, llm_int8_threshold=threshold)
    with torch.no_grad():
        logits = model(token_ids.to(device)).logits  # after a forward the statistics live in the layer state
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, device_map=device)

    original_state, reloaded_state = model.state_dict(), reloaded.state_dict()
    assert original_state.keys() == reloaded_state.keys()
    assert "model.layers.0.self_attn.q_proj.SCB" in original_state
    assert "model.layers.0.self_attn.q_proj.weight_format" in original_state
    for key, value in original_state.items():
        assert torch.equal(value.cpu(), reloaded_state[key].cpu()), key
    layer = reloaded.model.layers[1].mlp.up_proj
    assert isinstance(layer, bnb.nn.Linear8bitLt) and layer.state.threshold == threshold
    with torch.no_grad():
        assert torch.equal(reloaded(token_ids.to(device)).logits, logits)


def test_dequantize_gives_back_float_linears(tiny_opt_dir, token_ids, device):
    model = load_8bit(tiny_opt_dir, device, dtype=torch.float16)
    with torch.no_grad():
        quantized_logits = model(token_ids.to(device)).logits
        model.dequantize()
        assert not any(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules())
        dequantized_logits = model(token_ids.to(device)).logits
    assert relative_error(dequantized_logits, quantized_logits) < 0.05


@pytest.mark.parametrize("threshold", [6.0, 0.0])
def test_compiled_forward_has_no_graph_break(tiny_llama_dir, token_ids, device, threshold):
    # The threshold path needs no break either: the outlier count is data-dependent, but it only
    # lives inside int8_vectorwise_quant / int8_mixed_scaled_mm, whose fake kernels declare it.
    model = load_8bit(tiny_llama_dir, device, llm_int8_threshold=threshold)
    inputs = token_ids.to(device)
    torch._dynamo.reset()
    with torch.no_grad():
        eager = model(inputs, use_cache=False).logits
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        traced = compiled(inputs, use_cache=False).logits
    assert torch.equal(traced, eager)


# ---- PEFT -----------------------------------------------------------------------------------------


def lora_8bit_model(path, device):
    model = prepare_model_for_kbit_training(load_8bit(path, device), use_gradient_checkpointing=True)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def test_lora_on_8bit_model_trains(tiny_llama_dir, token_ids, device):
    torch.manual_seed(0)
    model = lora_8bit_model(tiny_llama_dir, device)
    lora_layers = [m for m in model.modules() if isinstance(m, peft.tuners.lora.bnb.Linear8bitLt)]
    assert len(lora_layers) == 2 * LINEARS_PER_LLAMA_LAYER
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(type(p).__name__ != "Int8Params" for p in trainable)
    frozen = lora_layers[0].base_layer.weight.detach().clone()

    optimizer = torch.optim.AdamW(trainable, lr=3e-3)
    batch = token_ids.to(device)
    losses = []
    model.train()
    for _ in range(20):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses
    assert torch.equal(lora_layers[0].base_layer.weight, frozen)  # the int8 base stays untouched


def test_merge_and_unload_8bit(tiny_llama_dir, token_ids, device):
    torch.manual_seed(0)
    model = lora_8bit_model(tiny_llama_dir, device)
    for module in model.modules():  # give the adapters a visible effect
        if isinstance(module, peft.tuners.lora.bnb.Linear8bitLt):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
    model.eval()
    batch = token_ids.to(device)
    probe = model.base_model.model.model.layers[0].mlp.up_proj
    with torch.no_grad():
        base = probe.base_layer
        scb = base.state.SCB if base.state.SCB is not None else base.weight.SCB
        merged_weight = bnb.functional.int8_vectorwise_dequant(base.weight.data, scb) + probe.get_delta_weight("default")
        adapted = model(input_ids=batch).logits
        merged = model.merge_and_unload()
        merged_logits = merged(input_ids=batch).logits
    merged_layer = merged.model.layers[0].mlp.up_proj
    assert isinstance(merged_layer, bnb.nn.Linear8bitLt) and merged_layer.weight.dtype == torch.int8
    # The merged layer holds the int8 quantization of W + BA...
    expected, _, _ = bnb.functional.int8_vectorwise_quant(merged_weight.half())
    assert torch.equal(merged_layer.weight.data, expected)
    # ...so the output moves by about one int8 quantization error, no more.
    assert relative_error(merged_logits, adapted) < 0.05
