"""bitsandbytes.utils (python_api.md section 6)."""

import json
import logging
import sys

import pytest
import torch

import bitsandbytes as bnb
from bitsandbytes import utils


def test_pack_dict_to_tensor_is_the_json_bytes():
    source = {"quant_type": "nf4", "blocksize": 64, "shape": [4, 8], "nested_offset": 0.25}
    packed = utils.pack_dict_to_tensor(source)
    assert packed.dtype == torch.uint8 and packed.dim() == 1 and packed.device.type == "cpu"
    assert bytes(packed.tolist()) == json.dumps(source).encode("utf-8")
    assert utils.unpack_tensor_to_dict(packed) == source


def test_unpack_rejects_what_is_not_json_bytes():
    with pytest.raises(TypeError, match="tensor_data must be a uint8 tensor"):
        utils.unpack_tensor_to_dict(torch.zeros(3))
    with pytest.raises(ValueError, match="tensor_data does not hold UTF-8 JSON"):
        utils.unpack_tensor_to_dict(torch.tensor([0xFF, 0x00], dtype=torch.uint8))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 8, bias=False)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block(), Block()])
        self.lm_head = torch.nn.Linear(8, 32)


class RecordingLinear(torch.nn.Linear):
    created = []

    def __init__(self, in_features, out_features, bias):
        super().__init__(in_features, out_features, bias)
        RecordingLinear.created.append((in_features, out_features, bias))


def test_replace_linear_swaps_every_linear_but_the_skipped():
    RecordingLinear.created = []
    model = Model()
    assert utils.replace_linear(model, RecordingLinear) is model
    assert RecordingLinear.created == [(8, 16, True), (16, 8, False)] * 2
    replaced = [name for name, m in model.named_modules() if isinstance(m, RecordingLinear)]
    assert replaced == ["blocks.0.fc1", "blocks.0.fc2", "blocks.1.fc1", "blocks.1.fc2"]
    assert type(model.lm_head) is torch.nn.Linear
    assert model.blocks[1].fc2.bias is None


def test_replace_linear_copies_weights_and_post_processes_the_old_module():
    class Tagged(torch.nn.Linear):
        def mark(self, module):
            module.seen_by = self

    model = torch.nn.Sequential(Tagged(4, 4), torch.nn.ReLU(), Tagged(4, 2))
    old_first, old_last = model[0], model[2]
    utils.replace_linear(model, torch.nn.Linear, skip_modules=("2",), copy_weights=True,
                         post_processing_function="mark")
    assert type(model[0]) is torch.nn.Linear and model[2] is old_last
    assert model[0].weight is old_first.weight and model[0].bias is old_first.bias
    assert old_first.seen_by is old_first
    assert not hasattr(old_last, "seen_by")
    # A name that the old module lacks is skipped, not an error.
    utils.replace_linear(torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.nn.Linear,
                         post_processing_function="no_such_method")
    with pytest.raises(TypeError, match="linear_replacement must be callable"):
        utils.replace_linear(model, "Linear8bitLt")


def test_execute_and_return_gives_stripped_stdout_and_stderr():
    out, err = utils.execute_and_return(f"{sys.executable} -c \"import sys; print(' out '); sys.stderr.write('err\\n')\"")
    assert (out, err) == ("out", "err")
    with pytest.raises(TypeError, match="command_string must be a str"):
        utils.execute_and_return(["echo", "hi"])


def test_find_outlier_dims_by_zscore_topk_and_random():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(256, 64, generator=generator)
    weight[:, 17] *= 40
    assert utils.find_outlier_dims(weight).tolist() == [17]
    weight[:, 3] *= 20
    assert set(utils.find_outlier_dims(weight, topk=2).tolist()) == {3, 17}
    random = utils.find_outlier_dims(weight, topk=5, rdm=True)
    assert random.dtype == torch.int64 and random.numel() == 5 and bool(((random >= 0) & (random < 64)).all())


def test_outlier_tracer_is_a_singleton():
    with pytest.raises(RuntimeError, match="Call get_instance"):
        utils.OutlierTracer()
    assert utils.OutlierTracer.get_instance() is utils.OutlierTracer.get_instance()


def test_uninitialized_tracer_warns_and_has_no_outliers(caplog):
    fresh = utils.OutlierTracer.__new__(utils.OutlierTracer)
    with caplog.at_level(logging.WARNING, logger="bitsandbytes.utils"):
        assert fresh.get_outliers(torch.nn.Linear(2, 2).weight) is None
    assert "not initialized" in caplog.text


def test_outlier_tracer_finds_input_and_weight_outliers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.Linear(48, 32))
    with torch.no_grad():
        model[1].weight[:, 7] *= 50
    tracer = utils.OutlierTracer.get_instance()
    tracer.initialize(model)
    x = torch.randn(4, 10, 32) * 0.1
    x[..., 5] = 8.0  # magnitude above 6 in the first layer's input
    model(x)
    model(x)  # a second pass ends the tracing and removes the hooks
    assert 5 in tracer.get_outliers(model[0].weight).tolist()
    assert tracer.get_outliers(model[1].weight).tolist() == [7]
    assert all(not m._forward_pre_hooks for m in model)


def test_sync_gpu_accepts_cpu_tensors():
    utils.sync_gpu(torch.zeros(1))
    if torch.cuda.is_available():
        utils.sync_gpu(torch.zeros(1, device="cuda"))


def test_weight_format_mappings_are_inverse():
    assert utils.INVERSE_LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING == {0: "row", 1: "col32", 2: "col_turing", 3: "col_ampere"}
    assert bnb.utils is utils
