"""torch.compile traces quantization without graph breaks; the fake kernels pass opcheck."""

import pytest
import torch
from conftest import assert_bitwise_equal

import bitsandbytes.functional as F

ops = torch.ops.bitsandbytes


def quantize_dequantize_4bit(A, quant_type, compress_statistics):
    packed, state = F.quantize_4bit(A, blocksize=64, quant_type=quant_type, compress_statistics=compress_statistics)
    return packed, F.dequantize_4bit(packed, state)


def quantize_dequantize_blockwise(A, nested):
    codes, state = F.quantize_blockwise(A, blocksize=256, nested=nested)
    return codes, F.dequantize_blockwise(codes, state)


def dequantize_4bit_into(A, packed, absmax, out):
    F.dequantize_4bit(packed, absmax=absmax, out=out, quant_type="nf4")
    return out * 2


def _compiled_matches_eager(function, backend, *args):
    torch._dynamo.reset()
    compiled = torch.compile(function, fullgraph=True, backend=backend)
    for actual, expected in zip(compiled(*args), function(*args)):
        assert_bitwise_equal(actual, expected)


# aot_eager traces exactly what inductor traces (dynamo + fake kernels + AOT
# dispatch) without compiling C++; inductor runs once per family to keep the suite fast.
@pytest.mark.parametrize("quant_type, backend", [("nf4", "aot_eager"), ("fp4", "aot_eager"), ("nf4", "inductor")])
def test_compile_4bit(device, backend, quant_type):
    A = torch.randn(64, 96, dtype=torch.bfloat16, device=device)
    _compiled_matches_eager(lambda A: quantize_dequantize_4bit(A, quant_type, False), backend, A)


def test_compile_4bit_compressed_statistics(device):
    A = torch.randn(96, 128, dtype=torch.float16, device=device)
    _compiled_matches_eager(lambda A: quantize_dequantize_4bit(A, "nf4", True), "aot_eager", A)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_blockwise(device, backend):
    A = torch.randn(33, 100, device=device)
    _compiled_matches_eager(lambda A: quantize_dequantize_blockwise(A, False), backend, A)


def test_compile_blockwise_nested(device):
    A = torch.randn(300, 100, device=device)
    _compiled_matches_eager(lambda A: quantize_dequantize_blockwise(A, True), "aot_eager", A)


def test_compile_out_variant(device):
    A = torch.randn(32, 64, device=device)
    packed, state = F.quantize_4bit(A, quant_type="nf4")
    torch._dynamo.reset()
    compiled = torch.compile(dequantize_4bit_into, fullgraph=True, backend="aot_eager")
    out_compiled = torch.empty_like(A)
    out_eager = torch.empty_like(A)
    assert_bitwise_equal(
        compiled(A, packed, state.absmax, out_compiled), dequantize_4bit_into(A, packed, state.absmax, out_eager)
    )
    assert_bitwise_equal(out_compiled, out_eager)


def _opcheck_cases(device):
    A = torch.randn(64, 33, device=device)
    code = F.create_dynamic_map().to(device)
    codes, absmax = ops.quantize_blockwise(A, code, 64)
    packed, absmax4 = ops.quantize_4bit(A, 64, "nf4", torch.uint8)
    half = torch.float16
    A16 = torch.randn(16, 40, dtype=half, device=device)
    A16[:, 3] *= 20
    CA, SCA, outlier_cols = ops.int8_vectorwise_quant(A16, 6.0)
    CB, SCB, _ = ops.int8_vectorwise_quant(torch.randn(24, 40, dtype=half, device=device), 0.0)
    product = ops.int8_linear_matmul(CA, CB)
    bias = torch.randn(24, dtype=half, device=device)
    return {
        "int8_vectorwise_quant": (ops.int8_vectorwise_quant.default, (A16, 0.0), {}),
        "int8_vectorwise_quant-threshold": (ops.int8_vectorwise_quant.default, (A16, 6.0), {}),
        "int8_double_quant": (ops.int8_double_quant.default, (A16, 0.0), {}),
        "int8_double_quant-threshold": (ops.int8_double_quant.default, (A16, 6.0), {}),
        "int8_vectorwise_dequant": (ops.int8_vectorwise_dequant.default, (CA, SCA), {}),
        "int8_linear_matmul": (ops.int8_linear_matmul.default, (CA, CB), {}),
        "int8_linear_matmul.out": (
            ops.int8_linear_matmul.out, (CA, CB), {"out": torch.empty(16, 24, dtype=torch.int32, device=device)}
        ),
        "int8_mm_dequant": (ops.int8_mm_dequant.default, (product, SCA, SCB), {"bias": bias}),
        "int8_scaled_mm": (ops.int8_scaled_mm.default, (CA, CB, SCA, SCB), {"bias": bias, "dtype": torch.bfloat16}),
        "int8_linear": (ops.int8_linear.default, (A16.float().reshape(2, 8, 40), CB, SCB), {}),
        "int8_linear-threshold": (ops.int8_linear.default, (A16, CB, SCB, bias, 6.0), {}),
        "quantize_blockwise": (ops.quantize_blockwise.default, (A, code, 64), {}),
        "dequantize_blockwise": (ops.dequantize_blockwise.default, (codes, absmax, code, 64, half), {}),
        "dequantize_blockwise.out": (
            ops.dequantize_blockwise.out,
            (codes, absmax, code, 64, half),
            {"out": torch.empty(64, 33, dtype=half, device=device)},
        ),
        # uint8 storage: other storage dtypes can hold NaN bit patterns, which
        # opcheck's value comparison cannot match.
        "quantize_4bit": (ops.quantize_4bit.default, (A, 64, "nf4", torch.uint8), {}),
        "dequantize_4bit": (ops.dequantize_4bit.default, (packed, absmax4, 64, "nf4", [64, 33], torch.bfloat16), {}),
        "dequantize_4bit.out": (
            ops.dequantize_4bit.out,
            (packed, absmax4, 64, "nf4", [64, 33], torch.float32),
            {"out": torch.empty(64, 33, device=device)},
        ),
    }


# int8_mixed_scaled_mm is left out: upstream's fake declares its second output as an int64
# vector, its eager kernel returns the outlier activations (ops.md 1.6), and both are kept.
@pytest.mark.parametrize(
    "name",
    [
        "int8_vectorwise_quant",
        "int8_vectorwise_quant-threshold",
        "int8_double_quant",
        "int8_double_quant-threshold",
        "int8_vectorwise_dequant",
        "int8_linear_matmul",
        "int8_linear_matmul.out",
        "int8_mm_dequant",
        "int8_scaled_mm",
        "int8_linear",
        "int8_linear-threshold",
        "quantize_blockwise",
        "dequantize_blockwise",
        "dequantize_blockwise.out",
        "quantize_4bit",
        "dequantize_4bit",
        "dequantize_4bit.out",
    ],
)
def test_opcheck(device, name):
    op, args, kwargs = _opcheck_cases(device)[name]
    results = torch.library.opcheck(op, args, kwargs)
    assert set(results.values()) == {"SUCCESS"}, results


def test_fake_kernels_shapes_without_running():
    """Meta tensors reach the fake kernels: shapes and dtypes of every quantization op."""
    meta = torch.empty(7, 9, dtype=torch.bfloat16, device="meta")
    code = torch.empty(256, device="meta")
    codes, absmax = ops.quantize_blockwise(meta, code, 64)
    assert codes.shape == (7, 9) and codes.dtype == torch.uint8
    assert absmax.shape == (1,) and absmax.dtype == torch.float32
    assert ops.dequantize_blockwise(codes, absmax, code, 64, torch.float16).dtype == torch.float16

    packed, absmax4 = ops.quantize_4bit(meta, 32, "fp4", torch.float32)
    # 63 elements: 32 packed bytes in 8 float32 (upstream's size would round down).
    assert packed.shape == (8, 1) and packed.dtype == torch.float32
    assert absmax4.shape == (2,)
    restored = ops.dequantize_4bit(packed, absmax4, 32, "fp4", [7, 9], torch.bfloat16)
    assert restored.shape == (7, 9) and restored.dtype == torch.bfloat16 and restored.device.type == "meta"


def test_fake_kernel_checks_raise_runtime_error():
    meta = torch.empty(16, device="meta")
    with pytest.raises(RuntimeError, match="blocksize must be positive"):
        ops.quantize_blockwise(meta, torch.empty(256, device="meta"), 0)
    with pytest.raises(RuntimeError, match="quant_type must be 'nf4' or 'fp4'"):
        ops.quantize_4bit(meta, 64, "int4", torch.uint8)
    with pytest.raises(RuntimeError, match="invalid blocksize"):
        ops.quantize_4bit(meta, 48, "nf4", torch.uint8)
    with pytest.raises(RuntimeError, match="Blockwise 4bit quantization only supports 16/32-bit floats"):
        ops.quantize_4bit(meta.to(torch.int32), 64, "nf4", torch.uint8)
    with pytest.raises(RuntimeError, match="absmax must be float32"):
        ops.dequantize_4bit(meta.to(torch.uint8), meta.half(), 64, "nf4", [16], torch.float32)
    with pytest.raises(RuntimeError, match="A must be uint8"):
        ops.dequantize_blockwise(meta, meta, torch.empty(256, device="meta"), 64, torch.float32)
    with pytest.raises(RuntimeError, match="out.shape"):
        ops.dequantize_4bit.out(
            meta.to(torch.uint8), meta, 64, "nf4", [16], torch.float32, out=torch.empty(8, device="meta")
        )


def test_fake_kernels_of_other_ops():
    """The fakes of the int8, gemv/gemm and optimizer ops give upstream's shapes and checks."""
    A8 = torch.empty(5, 16, dtype=torch.int8, device="meta")
    B8 = torch.empty(7, 16, dtype=torch.int8, device="meta")
    assert ops.int8_linear_matmul(A8, B8).shape == (5, 7)
    assert ops.int8_linear_matmul(A8, B8).dtype == torch.int32
    with pytest.raises(RuntimeError, match="B must be int8"):
        ops.int8_linear_matmul(A8, B8.float())
    half = torch.empty(5, 16, dtype=torch.float16, device="meta")
    out_row, row_stats, outliers = ops.int8_vectorwise_quant(half, 0.0)
    assert out_row.dtype == torch.int8 and row_stats.shape == (5,) and outliers is None
    assert ops.int8_scaled_mm(A8, B8, row_stats, row_stats[:0]).dtype == torch.float16
    assert ops.int8_mm_dequant(A8.int(), row_stats, row_stats).shape == (5, 16)

    W = torch.empty(64, 1, dtype=torch.uint8, device="meta")
    absmax = torch.empty(2, device="meta")
    x = torch.empty(1, 16, dtype=torch.bfloat16, device="meta")
    assert ops.gemm_4bit(x, W, [8, 16], absmax, 64, "nf4").shape == (1, 8)
    assert ops.gemv_4bit(x, W, [8, 16], absmax, torch.empty(16, device="meta"), 64).dtype == torch.bfloat16
    with pytest.raises(RuntimeError, match="bias length"):
        ops.gemm_4bit(x, W, [8, 16], absmax, 64, "nf4", bias=torch.empty(9, dtype=torch.bfloat16, device="meta"))
    with pytest.raises(RuntimeError, match="absmax_code required when absmax_8bit is provided"):
        ops.gemm_4bit(x, W, [8, 16], absmax, 64, "nf4", absmax_8bit=torch.empty(2, dtype=torch.uint8, device="meta"))

    g = torch.empty(10, device="meta")
    with pytest.raises(RuntimeError, match="g and p must have the same number of elements"):
        ops.optimizer_update_32bit("adam", g, g[:5], g, None, None, 0.0, 0.0, 0.9, 0.99, 0.0, 0.0, 1e-8, 0.0, 1, 1e-3, 1.0)
    with pytest.raises(RuntimeError, match="state1 must be uint8"):
        ops.optimizer_update_8bit_blockwise(
            "adam", g, g, g, None, 0.9, 0.99, 0.0, 0.0, 1e-8, 1, 1e-3, g, None, g, None, 0.0, 1.0
        )
    ops.optimizer_update_multi_tensor("lion", [g, g], [g, g], [g, g], [], [], [], None, None, 0.9, 0.99, 0.0, 0.0,
                                      0.0, 0.0, 1, 1e-4, 1.0)
    with pytest.raises(RuntimeError, match="Expected all tensors to have the same dtype"):
        ops.optimizer_update_multi_tensor("lion", [g], [g.half()], [g], [], [], [], None, None, 0.9, 0.99, 0.0, 0.0,
                                          0.0, 0.0, 1, 1e-4, 1.0)


def test_fake_kernel_of_int8_linear_gives_a_static_shape():
    """This package's int8_linear keeps the outliers inside: its output shape is known with a threshold too."""
    A = torch.empty(2, 5, 16, dtype=torch.bfloat16, device="meta")
    CB = torch.empty(7, 16, dtype=torch.int8, device="meta")
    SCB = torch.empty(7, device="meta")
    out = ops.int8_linear(A, CB, SCB, None, 6.0)
    assert out.shape == (2, 5, 7) and out.dtype == torch.bfloat16 and out.device.type == "meta"
    with pytest.raises(RuntimeError, match="CB must have K = 16 columns like A"):
        ops.int8_linear(A, CB[:, :8], SCB)
    with pytest.raises(RuntimeError, match="CB must be int8"):
        ops.int8_linear(A, CB.half(), SCB)


def test_fake_kernels_of_paged_memory():
    """Managed memory is addressed from the host: a paged buffer is a CPU tensor for any device."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        buffer = ops.paged_empty([3, 4], torch.uint8, torch.device("cuda", 0))
        assert buffer.shape == (3, 4) and buffer.dtype == torch.uint8 and buffer.device.type == "cpu"
        ops.paged_prefetch(buffer, torch.device("cuda", 0), True)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_linear8bitlt_with_outliers(device, backend):
    """The threshold path traces as one graph whatever the number of outlier columns."""
    import bitsandbytes as bnb

    torch.manual_seed(0)
    layer = bnb.nn.Linear8bitLt(64, 32, has_fp16_weights=False, threshold=6.0).to(device).eval()
    inputs = [torch.randn(5, 64, dtype=torch.float16, device=device) for _ in range(3)]
    inputs[0][:, 3] *= 30
    inputs[1][:, [3, 9, 40]] *= 30  # another outlier count; inputs[2] has none
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend=backend, dynamic=False)
    with torch.no_grad():
        for x in inputs:
            assert_bitwise_equal(compiled(x), layer(x))
