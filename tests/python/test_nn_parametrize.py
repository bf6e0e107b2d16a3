"""bitsandbytes.nn.parametrize: 4-bit parameters outside nn.Linear (python_api.md section 3.8)."""

import pytest
import torch
import torch.nn.utils.parametrize as P

import bitsandbytes.functional as F
from bitsandbytes.nn import parametrize


class Experts(torch.nn.Module):
    """A mixture-of-experts layer's stacked weights, as Transformers quantizes them."""

    def __init__(self, experts=4, out_features=32, in_features=64, dtype=torch.bfloat16):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(experts, out_features, in_features, generator=generator,
                                                     dtype=torch.float32).to(dtype))
        self.register_buffer("scale", torch.ones(1))

    def forward(self, x):
        # Two reads of the parameter in one forward: the cache must make them one dequantization.
        return torch.einsum("bi,eoi->beo", x, self.weight) + self.weight.sum()


def _reference(weight, **kwargs):
    packed, state = F.quantize_4bit(weight.detach(), **kwargs)
    return F.dequantize_4bit(packed, state)


@pytest.mark.parametrize("compress_statistics", [False, True], ids=["plain", "nested"])
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_reading_the_parameter_dequantizes(compress_statistics, quant_type):
    module = Experts()
    original = module.weight.detach().clone()
    parametrize.replace_parameter_4bit(module, "weight", compress_statistics=compress_statistics,
                                       quant_type=quant_type, blocksize=128)
    stored = module.parametrizations.weight.original
    assert stored.dtype == torch.uint8 and not stored.requires_grad
    assert stored.shape == ((original.numel() + 1) // 2, 1)
    restored = module.weight
    assert restored.shape == original.shape and restored.dtype == original.dtype
    expected = _reference(original, compress_statistics=compress_statistics, quant_type=quant_type, blocksize=128)
    assert torch.equal(restored, expected)
    state = module.parametrizations.weight[0].quant_state
    assert (state.quant_type, state.blocksize, state.nested) == (quant_type, 128, compress_statistics)


def test_defaults_are_nf4_blocksize_64_without_nesting():
    module = Experts()
    parametrize.replace_parameter_4bit(module, "weight")
    state = module.parametrizations.weight[0].quant_state
    assert (state.quant_type, state.blocksize, state.nested) == ("nf4", 64, False)


def test_missing_or_non_parameter_names_are_rejected():
    module = Experts()
    with pytest.raises(AttributeError, match="Module does not have parameter 'bias'"):
        parametrize.replace_parameter_4bit(module, "bias")
    with pytest.raises(TypeError, match="Parameter 'scale' is not an instance of nn.Parameter"):
        parametrize.replace_parameter_4bit(module, "scale")
    with pytest.raises(AttributeError, match="Module does not have parameter 'bias'"):
        parametrize.replace_parameter_4bit_prequantized(module, "bias", {}, "cpu")
    with pytest.raises(TypeError, match="param_name must be a str"):
        parametrize.replace_parameter_4bit(module, 0)
    with pytest.raises(TypeError, match="quant_state must be a QuantState"):
        parametrize.Bnb4bitParametrization({"absmax": None})


@pytest.mark.parametrize("compress_statistics", [False, True], ids=["plain", "nested"])
def test_state_dict_has_upstream_keys_and_loads_prequantized(compress_statistics):
    model = torch.nn.Sequential(Experts())
    parametrize.replace_parameter_4bit(model[0], "weight", compress_statistics=compress_statistics)
    state_dict = model.state_dict()
    statistics = ["0.weight.absmax", "0.weight.quant_map"]
    if compress_statistics:
        statistics += ["0.weight.nested_absmax", "0.weight.nested_quant_map"]
    assert sorted(state_dict) == sorted(["0.scale", "0.weight", "0.weight.quant_state.bitsandbytes__nf4", *statistics])
    assert torch.equal(state_dict["0.weight"], model[0].parametrizations.weight.original)

    # What a loader does: put the packed data in the parameter, then attach the statistics.
    fresh = Experts()
    fresh.weight = torch.nn.Parameter(state_dict["0.weight"].clone(), requires_grad=False)
    qs_dict = {key: value for key, value in state_dict.items() if key.startswith("0.weight.")}
    parametrize.replace_parameter_4bit_prequantized(fresh, "weight", qs_dict, torch.device("cpu"))
    assert torch.equal(fresh.weight, model[0].weight)
    assert fresh.weight.dtype == torch.bfloat16
    # And it saves the same entries again.
    resaved = fresh.state_dict()
    assert sorted(resaved) == sorted(key.removeprefix("0.") for key in state_dict)
    for key, value in resaved.items():
        assert torch.equal(value, state_dict["0." + key]), key


def test_prequantized_data_must_match_the_statistics():
    module = Experts()
    parametrize.replace_parameter_4bit(module, "weight")
    qs_dict = {key: value for key, value in module.state_dict().items() if key.startswith("weight.")}
    wrong = Experts(experts=2)
    wrong.weight = torch.nn.Parameter(torch.zeros(wrong.weight.numel() // 2, 1, dtype=torch.uint8),
                                      requires_grad=False)
    with pytest.raises(ValueError, match="Parameter 'weight' holds 2048 bytes, but 4-bit data of shape"):
        parametrize.replace_parameter_4bit_prequantized(wrong, "weight", qs_dict, "cpu")


def test_forward_dequantizes_once_and_clears_the_cache(monkeypatch):
    module = Experts()
    parametrize.replace_parameter_4bit(module, "weight")
    calls = []
    dequantize = F.dequantize_4bit
    monkeypatch.setattr(F, "dequantize_4bit", lambda *args, **kwargs: calls.append(1) or dequantize(*args, **kwargs))
    out = module(torch.randn(3, 64, dtype=torch.bfloat16))
    assert out.shape == (3, 4, 32)
    assert len(calls) == 1
    assert P._cache_enabled == 0 and P._cache == {}
    module.weight  # noqa: B018  (outside a forward: no cache)
    module.weight  # noqa: B018
    assert len(calls) == 3


def test_a_failing_forward_leaves_the_cache_counter_balanced():
    module = Experts()
    parametrize.replace_parameter_4bit(module, "weight")
    with pytest.raises(RuntimeError):
        module(torch.randn(3, 7, dtype=torch.bfloat16))  # wrong width: einsum raises inside the forward
    assert P._cache_enabled == 0 and P._cache == {}
    parametrize._disable_parametrization_cache(module, (), None)  # an unmatched call never goes negative
    assert P._cache_enabled == 0
