"""Accelerate's bnb utilities with unmodified Accelerate (they need a CUDA device)."""

import pytest
import torch

import bitsandbytes as bnb

accelerate = pytest.importorskip("accelerate")
transformers = pytest.importorskip("transformers")
from tiny_models import tiny_llama_dir, token_ids  # noqa: E402,F401  (fixtures)


def test_accelerate_sees_4bit_support():
    from accelerate.utils import is_4bit_bnb_available, is_bnb_available

    assert is_bnb_available(min_version="0.48.0")
    assert is_4bit_bnb_available()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_load_and_quantize_model_from_checkpoint(tiny_llama_dir, token_ids):
    from accelerate import init_empty_weights
    from accelerate.utils import BnbQuantizationConfig, has_4bit_bnb_layers, load_and_quantize_model

    config = transformers.AutoConfig.from_pretrained(tiny_llama_dir)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16).cuda()
    with init_empty_weights():
        empty = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    quantization = BnbQuantizationConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                         bnb_4bit_compute_dtype="bf16", skip_modules=["lm_head"])
    model = load_and_quantize_model(empty, quantization, weights_location=str(tiny_llama_dir / "model.safetensors"),
                                    device_map={"": 0})
    assert has_4bit_bnb_layers(model)
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit) and layer.weight.bnb_quantized and layer.weight.is_cuda
    with torch.no_grad():
        expected = reference(token_ids.cuda()).logits.float()
        actual = model(token_ids.cuda()).logits.float()
    assert ((actual - expected).norm() / expected.norm()).item() < 0.25
