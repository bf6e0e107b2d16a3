"""Tiny models built from configs (no hub access), saved once per session.

Test modules import these fixtures by name (a second conftest.py here would shadow the
`conftest` module that tests/python's tests import helpers from). The `device` and
`golden` fixtures come from tests/python/conftest.py."""

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed")


def _save(model, path):
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    config = transformers.LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                      tie_word_embeddings=False)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).to(torch.bfloat16)
    return _save(model, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_opt_dir(tmp_path_factory):
    config = transformers.OPTConfig(vocab_size=256, hidden_size=128, ffn_dim=256, num_hidden_layers=2,
                                    num_attention_heads=4, max_position_embeddings=128, word_embed_proj_dim=128)
    torch.manual_seed(1)
    model = transformers.OPTForCausalLM(config).to(torch.float16)
    return _save(model, tmp_path_factory.mktemp("tiny-opt"))


@pytest.fixture(scope="session")
def token_ids():
    generator = torch.Generator().manual_seed(3)
    return torch.randint(3, 256, (2, 24), generator=generator)
