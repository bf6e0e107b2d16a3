"""Transformers' Trainer with each bitsandbytes `optim=` string (integrations.md 2.6): a tiny
Llama built from a config trains on the CPU (the loss falls), and resume_from_checkpoint
restores the optimizer state exactly and continues on the same trajectory."""

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed")
pytest.importorskip("accelerate", reason="Trainer needs accelerate")

import bitsandbytes as bnb  # noqa: E402

# optim string -> (class, optim_bits, is_paged) that Transformers builds.
BNB_OPTIM_STRINGS = {
    "adamw_bnb_8bit": (bnb.optim.AdamW, 8, False),
    "adamw_8bit": (bnb.optim.AdamW, 8, False),
    "paged_adamw_32bit": (bnb.optim.AdamW, 32, True),
    "paged_adamw_8bit": (bnb.optim.AdamW, 8, True),
    "lion_32bit": (bnb.optim.Lion, 32, False),
    "lion_8bit": (bnb.optim.Lion, 8, False),
    "paged_lion_32bit": (bnb.optim.Lion, 32, True),
    "paged_lion_8bit": (bnb.optim.Lion, 8, True),
    "ademamix": (bnb.optim.AdEMAMix, 32, False),
    "ademamix_8bit": (bnb.optim.AdEMAMix, 8, False),
    "paged_ademamix_32bit": (bnb.optim.AdEMAMix, 32, True),
    "paged_ademamix_8bit": (bnb.optim.AdEMAMix, 8, True),
    "rmsprop_bnb": (bnb.optim.RMSprop, 32, False),
    "rmsprop_bnb_8bit": (bnb.optim.RMSprop, 8, False),
    "rmsprop_bnb_32bit": (bnb.optim.RMSprop, 32, False),
}
STEPS, CHECKPOINT_STEP = 16, 8
QUANT_STATE_KEY = "__bnb_optimizer_quant_state__"
pytestmark = pytest.mark.usefixtures("fresh_optim_manager")


def tiny_llama():
    config = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def dataset():
    # A learnable sequence task: each row counts upwards from a random start.
    generator = torch.Generator().manual_seed(1)
    starts = torch.randint(0, 100, (64, 1), generator=generator)
    rows = starts + torch.arange(16)
    return [{"input_ids": row, "labels": row} for row in rows]


class RecordOptimizerAtStart(transformers.TrainerCallback):
    """The optimizer's state dict when training begins (after a resume loaded it)."""

    def __init__(self):
        self.state_dict = None

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        # A copy: the state tensors are updated in place as training goes on.
        self.state_dict = copy.deepcopy(optimizer.state_dict())


def trainer_for(optim, output_dir, model, callbacks=()):
    learning_rate = 1e-4 if "lion" in optim else 3e-3
    args = transformers.TrainingArguments(
        output_dir=str(output_dir), optim=optim, max_steps=STEPS, per_device_train_batch_size=8,
        learning_rate=learning_rate, weight_decay=0.01, logging_steps=1, save_steps=CHECKPOINT_STEP,
        save_strategy="steps", report_to=[], use_cpu=True, seed=0, data_seed=0, disable_tqdm=True,
        dataloader_num_workers=0,
    )
    return transformers.Trainer(model=model, args=args, train_dataset=dataset(), callbacks=list(callbacks))


def assert_states_equal(actual, expected):
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and torch.equal(actual.cpu(), expected.cpu())
    elif isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            assert_states_equal(actual[key], expected[key])
    else:
        assert actual == expected


@pytest.mark.filterwarnings("ignore:Paged optimizers are not supported on CPU")
@pytest.mark.parametrize("optim", list(BNB_OPTIM_STRINGS))
def test_trainer_trains_and_resumes(optim, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected_class, bits, paged = BNB_OPTIM_STRINGS[optim]

    trainer = trainer_for(optim, tmp_path / "full", tiny_llama())
    trainer.train()
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert type(optimizer) is expected_class
    assert optimizer.args.optim_bits == bits and optimizer.is_paged == paged
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-4:]) < sum(losses[:4]), losses
    # With 8-bit states the Trainer registers a 32-bit override for every nn.Embedding
    # (GlobalOptimManager.register_module_override); other weights keep optim_bits.
    assert optimizer.state[trainer.model.model.embed_tokens.weight]["state1"].dtype == torch.float32
    head_state = optimizer.state[trainer.model.lm_head.weight]
    assert head_state["state1"].dtype == (torch.uint8 if bits == 8 else torch.float32)

    checkpoint = tmp_path / "full" / f"checkpoint-{CHECKPOINT_STEP}"
    recorder = RecordOptimizerAtStart()
    resumed = trainer_for(optim, tmp_path / "resumed", tiny_llama(), callbacks=[recorder])
    resumed.train(resume_from_checkpoint=str(checkpoint))
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=False)
    assert any(QUANT_STATE_KEY in entry for entry in saved["state"].values())
    assert_states_equal(recorder.state_dict["state"], saved["state"])
    for (name, p), q in zip(trainer.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
