"""Int8Params, Linear8bitLt, Embedding8bit and OutlierAwareLinear: the behaviours libraries rely on."""

import copy

import pytest
import torch
from conftest import assert_bitwise_equal, int8_linear_by_composition

import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes.nn import Embedding8bit, Int8Params, Linear8bitLt, OutlierAwareLinear


def relative_error(actual, expected) -> float:
    return ((actual.double() - expected.double()).norm() / expected.double().norm()).item()


def quantized_linear(device, threshold=0.0, bias=True, seed=0):
    torch.manual_seed(seed)
    return Linear8bitLt(96, 40, bias=bias, has_fp16_weights=False, threshold=threshold).to(device)


# ---- Int8Params ---------------------------------------------------------------------------------


def test_int8params_quantizes_on_first_move_even_cpu_to_cpu(device):
    data = torch.randn(40, 96)
    param = Int8Params(data.clone(), requires_grad=False)
    assert param.dtype == torch.float32 and param.CB is None and param.SCB is None
    moved = param.to(device)
    assert moved is param  # quantizing mutates and returns self (nn.Module._apply keeps this object)
    CB, SCB, _ = F.int8_vectorwise_quant(data.to(device).half())
    assert param.dtype == torch.int8 and torch.equal(param.data, CB) and torch.equal(param.SCB, SCB)
    assert param.CB is not None and torch.equal(param.CB, CB)
    again = param.to(device)  # already int8: moved, never re-quantized
    assert again is not param and isinstance(again, Int8Params)
    assert torch.equal(again.data, CB) and torch.equal(again.SCB, SCB) and again.CB is not None


def test_int8params_keeps_fp16_weights_when_asked(device):
    param = Int8Params(torch.randn(4, 8), requires_grad=True, has_fp16_weights=True)
    moved = param.to(device)
    assert moved.dtype == torch.float32 and moved.SCB is None and isinstance(moved, Int8Params)
    assert moved.requires_grad


def test_int8params_dict_round_trip_accepts_meta_and_unknown_keys(device):
    meta = Linear8bitLt(64, 8, has_fp16_weights=False, device="meta").weight
    meta._is_hf_initialized = True
    assert {"CB", "SCB", "has_fp16_weights"} <= set(meta.__dict__)
    rebuilt = Int8Params(torch.randn(8, 64), requires_grad=False, **meta.__dict__)
    assert type(rebuilt).__name__ == "Int8Params" and not rebuilt.has_fp16_weights
    assert rebuilt.to(device).dtype == torch.int8
    # The Transformers deserialization path: int8 data and SCB in, only moved.
    weight, SCB = rebuilt.data.clone(), rebuilt.SCB.clone()
    kwargs = dict(meta.__dict__, SCB=SCB)
    restored = Int8Params(weight, requires_grad=False, **kwargs).to(device)
    assert torch.equal(restored.data, weight.to(device)) and torch.equal(restored.SCB, SCB.to(device))


def test_int8params_data_assignment_and_deepcopy_keep_the_class(device):
    layer = quantized_linear(device)
    layer.weight.data = layer.weight.data.to(torch.int8)
    assert type(layer.weight) is Int8Params
    clone = copy.deepcopy(layer.weight)
    assert type(clone) is Int8Params and clone is not layer.weight
    assert torch.equal(clone.data, layer.weight.data) and torch.equal(clone.SCB, layer.weight.SCB)
    assert clone.SCB.data_ptr() != layer.weight.SCB.data_ptr()


def test_module_moves_keep_the_statistics_with_the_weight(device):
    layer = quantized_linear(device, threshold=6.0)
    x = torch.randn(3, 96, dtype=torch.float16)
    with torch.no_grad():
        expected = layer.eval()(x.to(device)).cpu()
        layer.cpu()
        assert layer.state.SCB.device.type == "cpu" and layer.state.CB.device.type == "cpu"
        assert torch.equal(layer(x), expected)


# ---- Linear8bitLt ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("threshold", [0.0, 6.0])
def test_linear8bitlt_matches_float_reference(device, dtype, threshold):
    torch.manual_seed(0)
    reference = torch.nn.Linear(96, 40)
    layer = Linear8bitLt(96, 40, has_fp16_weights=False, threshold=threshold)
    layer.load_state_dict(reference.state_dict())
    layer = layer.to(device).eval()
    x = torch.randn(2, 5, 96)
    x[..., 7] *= 30  # an outlier feature
    with torch.no_grad():
        y = layer(x.to(device=device, dtype=dtype))
        expected = reference(x)
    assert y.dtype == dtype and y.shape == (2, 5, 40)
    # Upstream's bounds: a few percent without outlier handling, about one with it.
    assert relative_error(y.float().cpu(), expected) < (0.01 if threshold else 0.03)


def test_linear8bitlt_state_dict_keys_and_round_trip(device):
    layer = quantized_linear(device, threshold=6.0)
    before = Linear8bitLt(96, 40, has_fp16_weights=False).state_dict()
    assert set(before) == {"weight", "bias"}  # nothing extra before quantization
    saved = layer.state_dict()
    assert list(saved) == ["weight", "bias", "SCB", "weight_format"]
    assert saved["weight"].dtype == torch.int8 and saved["SCB"].dtype == torch.float32
    assert saved["weight_format"].dtype == torch.uint8 and saved["weight_format"].dim() == 0
    assert saved["weight_format"].item() == 0
    target = Linear8bitLt(96, 40, has_fp16_weights=False, threshold=6.0).to(device)
    assert not target.load_state_dict(saved).unexpected_keys
    x = torch.randn(4, 96, dtype=torch.float16, device=device)
    with torch.no_grad():
        assert torch.equal(target.eval()(x), layer.eval()(x))


def test_linear8bitlt_loading_errors(device):
    saved = quantized_linear(device).state_dict()
    with pytest.raises(RuntimeError, match="non-quantized Linear8bitLt"):
        Linear8bitLt(96, 40, has_fp16_weights=False).load_state_dict(saved)
    target = Linear8bitLt(96, 40, has_fp16_weights=False).to(device)
    with pytest.raises(ValueError, match="Only 'row' weight format is supported, got col32"):
        target.load_state_dict({**saved, "weight_format": torch.tensor(1, dtype=torch.uint8)})
    with pytest.raises(ValueError, match="Expected supported weight format - got 7"):
        target.load_state_dict({**saved, "weight_format": torch.tensor(7, dtype=torch.uint8)})


def test_linear8bitlt_never_moved_quantizes_on_first_forward():
    layer = Linear8bitLt(32, 8, has_fp16_weights=False).eval()
    x = torch.randn(2, 32, dtype=torch.float16)
    with torch.no_grad():
        layer(x)
    assert layer.weight.dtype == torch.int8 and layer.state.SCB is not None
    assert set(layer.state_dict()) == {"weight", "bias", "SCB", "weight_format"}


def test_linear8bitlt_trains_fp16_weights(device):
    torch.manual_seed(0)
    layer = Linear8bitLt(32, 8, has_fp16_weights=True).to(device)
    assert layer.weight.dtype == torch.float32 and layer.weight.requires_grad
    target = torch.randn(16, 8, device=device)
    x = torch.randn(16, 32, device=device)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x).float(), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert layer.weight.grad is not None and layer.bias.grad is not None
    assert losses[-1] < 0.8 * losses[0]


def test_linear8bitlt_input_gradient_through_frozen_int8_weight(device):
    layer = quantized_linear(device)
    x = torch.randn(4, 96, dtype=torch.float16, device=device, requires_grad=True)
    layer(x).float().sum().backward()
    weight = F.int8_vectorwise_dequant(layer.state.CB, layer.state.SCB)
    assert relative_error(x.grad.float(), weight.sum(0).expand(4, 96)) < 1e-3
    assert layer.weight.grad is None


@pytest.mark.parametrize("threshold", [0.0, 6.0])
def test_linear8bitlt_forward_unchanged_by_the_fused_op(device, threshold):
    """Without a weight gradient the forward is one int8_linear call: the composition's bytes, same grad_A."""
    layer = quantized_linear(device, threshold=threshold).eval()
    x = torch.randn(2, 5, 96, dtype=torch.float16, device=device)
    x[..., 7] *= 30  # an outlier feature
    with torch.no_grad():
        out = layer(x)
    # The first forward moved the weight's statistics into the state.
    expected, _ = int8_linear_by_composition(x, layer.state.CB, layer.state.SCB, layer.bias, threshold)
    assert_bitwise_equal(out, expected)
    # Training mode takes the int8 product off the CPU only (MatMul8bitFp serves the CPU).
    for training in (False, True) if device != "cpu" else (False,):
        x_grad = x.clone().requires_grad_(True)
        out = layer.train(training)(x_grad)
        assert_bitwise_equal(out, expected)
        grad = torch.randn_like(out)
        out.backward(grad)
        weight = F.int8_vectorwise_dequant(layer.state.CB, layer.state.SCB).to(torch.float16)
        assert_bitwise_equal(x_grad.grad, torch.matmul(grad, weight))
        assert layer.weight.grad is None


def test_linear8bitlt_class_and_attributes_other_libraries_read():
    layer = Linear8bitLt(16, 4, bias=False, has_fp16_weights=False, threshold=6.0, index=3)
    assert isinstance(layer, torch.nn.Linear) and type(layer).__name__ == "Linear8bitLt"
    assert layer.index == 3 and layer.state.threshold == 6.0 and layer.state.use_pool
    assert type(layer.weight).__name__ == "Int8Params" and not layer.weight.requires_grad
    assert bnb.nn.modules.Linear8bitLt is Linear8bitLt and bnb.nn.modules.Int8Params is Int8Params


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("rows", [1, 16, 256])
def test_linear8bitlt_with_outliers_replays_from_a_cuda_graph(rows):
    """The inference forward never waits for the outlier count on the host, so it captures;
    replays with another number of outlier columns (none, one, many) equal the eager forward.
    256 rows take the cuBLASLt product with its workspace."""
    layer = quantized_linear("cuda", threshold=6.0).eval()
    static_x = torch.randn(rows, 96, dtype=torch.float16, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        layer(static_x)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = layer(static_x)
    for outlier_columns in ([], [7], list(range(0, 96, 3))):
        x = torch.randn(rows, 96, dtype=torch.float16, device="cuda")
        x[:, outlier_columns] *= 20.0
        static_x.copy_(x)
        graph.replay()
        with torch.no_grad():
            expected = layer(x)
        torch.cuda.synchronize()
        assert_bitwise_equal(static_out, expected)


# ---- Embedding8bit, OutlierAwareLinear ---------------------------------------------------------


def test_embedding8bit_dequantizes_the_rows_it_reads(device):
    torch.manual_seed(0)
    table = torch.randn(50, 24)
    embedding = Embedding8bit(50, 24)
    embedding.weight = Int8Params(table.clone(), has_fp16_weights=False, requires_grad=False)
    embedding = embedding.to(device)
    indices = torch.tensor([[0, 7, 49], [3, 3, 1]], device=device)
    out = embedding(indices)
    CB, SCB, _ = F.int8_vectorwise_quant(table.half())
    expected = (CB.float() * (SCB[:, None] / 127.0))[indices.cpu()]
    assert out.dtype == torch.float32 and out.shape == (2, 3, 24)
    assert torch.allclose(out.cpu(), expected)
    assert relative_error(out.cpu(), table[indices.cpu()]) < 0.01
    with pytest.raises(NotImplementedError, match="Saving Embedding8bit"):
        embedding.state_dict()
    with pytest.raises(RuntimeError, match="not quantized yet"):
        Embedding8bit(4, 8)(torch.tensor([1]))


class RoundingOutlierLinear(OutlierAwareLinear):
    def quantize_weight(self, w, outlier_idx):
        return w.round()

    def forward_with_outliers(self, x, outlier_idx):
        return torch.nn.functional.linear(x, self.weight, self.bias)


def test_outlier_aware_linear_uses_the_tracer_once():
    torch.manual_seed(0)
    model = torch.nn.Sequential(RoundingOutlierLinear(16, 16), torch.nn.ReLU(), RoundingOutlierLinear(16, 4))
    tracer = bnb.utils.OutlierTracer.get_instance()
    tracer.initialize(model)
    x = torch.randn(8, 16)
    x[:, 5] = 50.0
    out = model(x)
    assert out.shape == (8, 4)
    assert 5 in model[0].outlier_dim.tolist()
    assert model[0].is_quantized and torch.equal(model[0].weight, model[0].weight.round())
    with pytest.raises(NotImplementedError):
        OutlierAwareLinear(4, 4).quantize_weight(None, None)
