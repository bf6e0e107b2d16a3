"""Upstream-saved module checkpoints (shared/golden) load here, and ours match their bytes."""

import json

import pytest
import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F


@pytest.fixture(scope="module")
def modules_golden(golden):
    manifest = json.loads((golden.directory / "golden_manifest.json").read_text())
    return {case["case"]: (case, golden.case_tensors("modules", case)) for case in manifest["groups"]["modules"]}


def upstream_state_dict(tensors):
    return {role[len("sd."):]: value for role, value in tensors.items() if role.startswith("sd.")}


def test_upstream_linear4bit_checkpoint_loads(modules_golden, device):
    case, tensors = modules_golden["linear4bit_nf4_cs1"]
    layer = bnb.nn.Linear4bit(320, 256, quant_type="nf4", compress_statistics=True, device="meta")
    layer.load_state_dict(upstream_state_dict(tensors), strict=True, assign=True)
    layer = layer.to(device)
    assert layer.weight.bnb_quantized and layer.weight.quant_state.nested
    assert list(layer.state_dict().keys()) == case["args"]["state_dict_keys"]
    with torch.no_grad():
        y = layer(tensors["x"].to(device))
    assert y.dtype == tensors["y"].dtype
    expected = tensors["y"].float()
    assert ((y.float().cpu() - expected).norm() / expected.norm()).item() < 1e-2


def test_our_linear4bit_checkpoint_matches_upstream_bytes(modules_golden, device):
    case, tensors = modules_golden["linear4bit_nf4_cs1"]
    layer = bnb.nn.Linear4bit(320, 256, quant_type="nf4", compress_statistics=True)
    with torch.no_grad():
        layer.weight = bnb.nn.Params4bit(tensors["W_fp16"].clone(), requires_grad=False, quant_type="nf4",
                                         compress_statistics=True, module=layer)
        layer.bias = torch.nn.Parameter(tensors["sd.bias"].clone())
    layer = layer.to(device)
    ours = layer.state_dict()
    theirs = upstream_state_dict(tensors)
    assert list(ours.keys()) == list(theirs.keys())
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, key
        if key == "weight.quant_state.bitsandbytes__nf4":
            ours_json = json.loads(bytes(ours[key].cpu().tolist()))
            theirs_json = json.loads(bytes(value.tolist()))
            # nested_offset is a torch.mean whose last bit depends on the device's reduction order.
            assert ours_json.pop("nested_offset") == pytest.approx(theirs_json.pop("nested_offset"), rel=1e-6)
            assert ours_json == theirs_json
        elif key != "weight.absmax":
            assert torch.equal(ours[key].cpu(), value), key
    # The nested codes follow the offset: identical unless the offset's last bit differs.
    mismatch = (ours["weight.absmax"].cpu() != theirs["weight.absmax"]).float().mean().item()
    assert mismatch < 0.01


@pytest.mark.parametrize("m", [1, 8])
def test_upstream_matmul_4bit_outputs(modules_golden, device, m):
    _, tensors = modules_golden[f"matmul_4bit_nf4_m{m}"]
    packed, state = F.quantize_4bit(tensors["W"].to(device), blocksize=64, quant_type="nf4", compress_statistics=True)
    assert torch.equal(packed.cpu(), tensors["packed"])
    y = bnb.matmul_4bit(tensors["x"].to(device), packed.t(), quant_state=state)
    assert y.shape == tensors["y"].shape
    # Upstream's batch-1 kernel multiplies in bf16: agreement within summation-order rounding (golden README).
    expected = tensors["y"].float()
    assert ((y.float().cpu() - expected).norm() / expected.norm()).item() < 1e-2


def test_upstream_linear8bitlt_checkpoint_loads_and_reproduces_y(modules_golden, device):
    case, tensors = modules_golden["linear8bitlt_thr6"]
    layer = bnb.nn.Linear8bitLt(320, 256, has_fp16_weights=False, threshold=6.0).to(device)
    result = layer.load_state_dict(upstream_state_dict(tensors), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    layer.eval()
    with torch.no_grad():
        y = layer(tensors["x"].to(device))
    assert y.dtype == tensors["y"].dtype
    expected = tensors["y"].float()
    # int8 part exact, rescale bit for bit; only the outlier columns' float16 product may round differently.
    assert ((y.float().cpu() - expected).norm() / expected.norm()).item() < 1e-3
    assert list(layer.state_dict().keys()) == case["args"]["state_dict_keys"]


def test_upstream_linear8bitlt_checkpoint_loads_into_a_meta_layer(modules_golden, device):
    _, tensors = modules_golden["linear8bitlt_thr6"]
    layer = bnb.nn.Linear8bitLt(320, 256, has_fp16_weights=False, threshold=6.0, device="meta")
    state = {key: value.to(device) for key, value in upstream_state_dict(tensors).items()}
    layer.load_state_dict(state, strict=True, assign=True)
    assert type(layer.weight).__name__ == "Int8Params" and layer.weight.device.type == device
    with torch.no_grad():
        y = layer.eval()(tensors["x"].to(device))
    expected = tensors["y"].float()
    assert ((y.float().cpu() - expected).norm() / expected.norm()).item() < 1e-3


def test_our_linear8bitlt_checkpoint_matches_upstream_bytes(modules_golden, device):
    case, tensors = modules_golden["linear8bitlt_thr6"]
    layer = bnb.nn.Linear8bitLt(320, 256, has_fp16_weights=False, threshold=6.0)
    with torch.no_grad():
        layer.weight = bnb.nn.Int8Params(tensors["W_fp16"].clone(), requires_grad=False, has_fp16_weights=False)
        layer.bias = torch.nn.Parameter(tensors["sd.bias"].clone())
    layer = layer.to(device)
    ours, theirs = layer.state_dict(), upstream_state_dict(tensors)
    assert list(ours.keys()) == list(theirs.keys()) == case["args"]["state_dict_keys"]
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, key
        assert torch.equal(ours[key].cpu(), value), key
    # And after a forward, when the statistics have moved into the layer's state.
    with torch.no_grad():
        layer.eval()(tensors["x"].to(device))
    after = layer.state_dict()
    assert layer.weight.SCB is None and layer.state.SCB is not None
    assert all(torch.equal(after[key].cpu(), value) for key, value in theirs.items())
