"""QLoRA through unmodified PEFT: prepare, LoRA on every linear layer, training, merge."""

import pytest
import torch

import bitsandbytes as bnb

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training  # noqa: E402
from transformers import AutoModelForCausalLM, BitsAndBytesConfig  # noqa: E402
from tiny_models import tiny_llama_dir, token_ids  # noqa: E402,F401  (fixtures)


def qlora_model(path, device):
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, device_map=device,
                                                 dtype=torch.bfloat16)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


# torch's AdamW, and the QLoRA recipe's PagedAdamW8bit with 8-bit states for every
# adapter (the tiny model's adapters are below the default min_8bit_size).
OPTIMIZERS = {
    "torch_adamw": lambda params: torch.optim.AdamW(params, lr=3e-3),
    "paged_adamw_8bit": lambda params: bnb.optim.PagedAdamW8bit(params, lr=3e-3, min_8bit_size=0),
}


@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
def test_qlora_training_lowers_the_loss(tiny_llama_dir, token_ids, device, optimizer_name):
    torch.manual_seed(0)
    model = qlora_model(tiny_llama_dir, device)
    lora_layers = [m for m in model.modules() if isinstance(m, peft.tuners.lora.bnb.Linear4bit)]
    assert len(lora_layers) == 14
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(not isinstance(p, bnb.nn.Params4bit) for p in trainable)

    optimizer = OPTIMIZERS[optimizer_name](trainable)
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
    if optimizer_name == "paged_adamw_8bit":
        assert all(optimizer.state[p]["state1"].dtype == torch.uint8 for p in trainable)


def test_merge_and_unload_keeps_the_adapted_function(tiny_llama_dir, token_ids, device):
    torch.manual_seed(0)
    model = qlora_model(tiny_llama_dir, device)
    for module in model.modules():  # give the adapters a visible effect
        if isinstance(module, peft.tuners.lora.bnb.Linear4bit):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
    model.eval()
    batch = token_ids.to(device)
    probe = model.base_model.model.model.layers[0].mlp.up_proj
    with torch.no_grad():
        base = probe.base_layer.weight
        merged_weight = (bnb.functional.dequantize_4bit(base.data, base.quant_state)
                         + probe.get_delta_weight("default"))
        adapted = model(input_ids=batch).logits
        merged = model.merge_and_unload()
        merged_logits = merged(input_ids=batch).logits
    assert all(isinstance(m.weight, bnb.nn.Params4bit) for m in merged.modules() if isinstance(m, bnb.nn.Linear4bit))
    # Merging re-quantizes W + BA: the merged layer holds exactly the 4-bit quantization of it...
    expected, expected_state = bnb.functional.quantize_4bit(merged_weight.cpu(), quant_type="nf4",
                                                            compress_statistics=True)
    merged_layer = merged.model.layers[0].mlp.up_proj
    assert torch.equal(merged_layer.weight.data.cpu(), expected)
    assert torch.equal(bnb.functional.dequantize_4bit(merged_layer.weight.data, merged_layer.weight.quant_state).cpu(),
                       bnb.functional.dequantize_4bit(expected, expected_state))
    # ...so the model's output moves by about one 4-bit quantization error, no more.
    error = (merged_logits.float() - adapted.float()).norm() / adapted.float().norm()
    assert error < 0.3


def test_dequantize_helpers_match_functional(tiny_llama_dir, device):
    from peft.utils.integrations import dequantize_bnb_weight

    model = qlora_model(tiny_llama_dir, device)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    weight = dequantize_bnb_weight(layer.weight, state=None)
    assert weight.shape == (layer.out_features, layer.in_features)
    assert torch.equal(weight, bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state))
