"""LLM.int8(): the functional API, bnb.matmul and its gradients, and the errors of bad input.

The per-op kernel agreement (native vs pure torch, golden bytes per op) is in
test_backend_ops.py; this file checks what users call.
"""

from math import prod

import pytest
import torch
from conftest import assert_bitwise_equal, golden_case_params, int8_linear_by_composition

import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes.backends.torch import int8 as int8_kernels

ops = torch.ops.bitsandbytes
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def relative_error(actual, expected) -> float:
    return ((actual.double() - expected.double()).norm() / expected.double().norm()).item()


def int64_product(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The exact A @ B.T of int8 matrices, in int64 on the CPU."""
    return (A.cpu().long() @ B.cpu().long().t())


def activations_with_outliers(rows, cols, dtype, device, seed=0, outlier_columns=(3, 17)):
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(rows, cols, generator=generator)
    for column in outlier_columns:
        A[:, column] *= 25
    return A.to(dtype=dtype, device=device)


# ---- golden ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", golden_case_params("int8"))
def test_functional_matches_golden(golden, case, device):
    tensors = golden.case_tensors("int8", case)
    if case["case"] == "linear_matmul":
        CA, SA, _ = F.int8_vectorwise_quant(tensors["A"].to(device))
        CB, SB, _ = F.int8_vectorwise_quant(tensors["B"].to(device))
        for actual, role in ((CA, "CA"), (SA, "SA"), (CB, "CB"), (SB, "SB")):
            assert_bitwise_equal(actual, tensors[role])
        acc = F.int8_linear_matmul(CA, CB)
        assert_bitwise_equal(acc, tensors["acc_int32"])
        assert_bitwise_equal(F.int8_mm_dequant(acc, SA, SB), tensors["out"])
        return
    CB, SCB, outlier_cols = F.int8_vectorwise_quant(tensors["A"].to(device), case["args"]["threshold"])
    assert_bitwise_equal(CB, tensors["CB"])
    assert_bitwise_equal(SCB, tensors["SCB"])
    if "outlier_cols" in tensors:
        assert_bitwise_equal(outlier_cols, tensors["outlier_cols"])
        # The outlier columns are zero in the quantized rows, and their elements excluded from the statistics.
        assert not CB[:, outlier_cols].any()
    else:
        assert outlier_cols is None


# ---- the integer product ------------------------------------------------------------------------


def extreme_operands(device):
    k = 3001
    minus = torch.full((3, k), -128, dtype=torch.int8)
    plus = torch.full((4, k), 127, dtype=torch.int8)
    zeros = torch.zeros((2, k), dtype=torch.int8)
    one_outlier_per_row = torch.zeros((5, k), dtype=torch.int8)
    one_outlier_per_row[torch.arange(5), torch.arange(5) * 11] = 127
    alternating = torch.where(torch.arange(k) % 2 == 0, 127, -127).to(torch.int8).repeat(3, 1)
    pairs = [(minus, minus), (plus, plus), (plus, minus), (zeros, plus), (one_outlier_per_row, plus),
             (alternating, plus), (alternating, alternating)]
    return [(a.to(device), b.to(device)) for a, b in pairs]


def random_operands(device):
    generator = torch.Generator().manual_seed(0)
    shapes = ((1, 1, 1), (7, 33, 5), (64, 256, 128), (3, 2500, 17))
    return [(torch.randint(-128, 128, (m, k), generator=generator, dtype=torch.int8).to(device),
             torch.randint(-128, 128, (n, k), generator=generator, dtype=torch.int8).to(device)) for m, k, n in shapes]


def test_int8_linear_matmul_is_exact(device):
    for A, B in random_operands(device) + extreme_operands(device):
        result = F.int8_linear_matmul(A, B)
        assert result.dtype == torch.int32 and result.device.type == device
        assert torch.equal(result.cpu().long(), int64_product(A, B))
    # 127 * 127 * 3001 is far above 2^24, where a float32 matmul is no longer exact.
    assert int64_product(*extreme_operands("cpu")[1]).max().item() > 2 ** 25


def test_exact_gemm_by_float32_chunks_used_off_the_cpu():
    for A, B in random_operands("cpu") + extreme_operands("cpu"):
        result = int8_kernels.exact_int8_matmul_by_float32_chunks(A, B)
        assert torch.equal(result.long(), int64_product(A, B))


def test_int8_linear_matmul_batched_out_and_empty(device):
    A = torch.randint(-128, 128, (2, 3, 40), dtype=torch.int8, device=device)
    B = torch.randint(-128, 128, (6, 40), dtype=torch.int8, device=device)
    out = torch.empty(2, 3, 6, dtype=torch.int32, device=device)
    assert F.int8_linear_matmul(A, B, out=out) is out
    assert torch.equal(out.cpu().long(), int64_product(A.reshape(6, 40), B).reshape(2, 3, 6))
    assert F.int8_linear_matmul(A[:, :0], B).shape == (2, 0, 6)
    assert torch.equal(F.int8_linear_matmul(A[..., :0], B[:, :0]).cpu(), torch.zeros(2, 3, 6, dtype=torch.int32))


def test_igemm_and_batched_igemm_are_exact_and_deprecated(device):
    A = torch.randint(-128, 128, (4, 5, 33), dtype=torch.int8, device=device)
    B = torch.randint(-128, 128, (33, 6), dtype=torch.int8, device=device)
    with pytest.warns(FutureWarning):
        result = F.igemm(A, B)
    assert torch.equal(result.cpu().long(), A.cpu().long() @ B.cpu().long())
    with pytest.warns(FutureWarning):
        transposed = F.igemm(A[0].t().contiguous(), B, transposed_A=True)
    assert torch.equal(transposed.cpu().long(), A[0].cpu().long() @ B.cpu().long())
    C = torch.randint(-128, 128, (4, 33, 2), dtype=torch.int8, device=device)
    with pytest.warns(FutureWarning):
        batched = F.batched_igemm(A, C)
    assert torch.equal(batched.cpu().long(), torch.bmm(A.cpu().long(), C.cpu().long()))
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="Tensor dimensions incorrect"):
        F.check_matmul(A, B[:32], None, False, False)


# ---- quantization and rescale ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_vectorwise_quant_round_trip(device, dtype):
    A = activations_with_outliers(33, 70, dtype, device)
    CA, stats, outlier_cols = F.int8_vectorwise_quant(A, threshold=6.0)
    assert outlier_cols.tolist() == [3, 17]
    restored = F.int8_vectorwise_dequant(CA, stats)
    kept = torch.ones(70, dtype=torch.bool)
    kept[[3, 17]] = False
    inliers = A.float()[:, kept.to(device)]
    # Half a quantization step of each row at most.
    step = stats[:, None] / 127
    assert ((restored[:, kept.to(device)] - inliers).abs() <= step * 0.5 + 1e-6).all()
    # The statistics skip outlier elements, not outlier columns.
    magnitude = A.float().abs()
    assert torch.equal(stats, magnitude.masked_fill(magnitude >= 6.0, 0.0).amax(dim=1))


def test_vectorwise_quant_statistics_exclude_outlier_elements_only(device):
    A = torch.tensor([[1.0, 10.0, 2.0], [0.5, 3.0, -1.0]], dtype=torch.float16, device=device)
    CA, stats, outlier_cols = F.int8_vectorwise_quant(A, threshold=6.0)
    assert outlier_cols.tolist() == [1]
    # Row 1's 3.0 sits in an outlier column: zeroed in CA, yet it sets that row's absmax.
    assert stats.tolist() == [2.0, 3.0]
    assert CA.tolist() == [[64, 0, 127], [21, 0, -42]]


def test_double_quant_matches_vectorwise_quant_and_columns(device):
    A = activations_with_outliers(40, 24, torch.float16, device)
    out_row, out_col, row_stats, col_stats, outlier_cols = F.int8_double_quant(A, threshold=6.0)
    CA, SCA, cols = F.int8_vectorwise_quant(A, threshold=6.0)
    assert torch.equal(out_row, CA) and torch.equal(row_stats, SCA) and torch.equal(outlier_cols, cols)
    inliers = A.float().masked_fill(A.float().abs() >= 6.0, 0.0)
    assert torch.equal(col_stats, inliers.abs().amax(dim=0))
    restored = out_col.float() * col_stats[None, :] / 127
    assert ((restored - inliers).abs() <= col_stats[None, :] / 127 * 0.5 + 1e-3).all()
    assert F.int8_double_quant(A)[4] is None
    with pytest.raises(ValueError, match="row_stats must be None"):
        F.int8_double_quant(A, row_stats=SCA)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_dtype", [None, torch.float16, torch.bfloat16, torch.float32])
def test_mm_dequant_rounds_once(device, dtype, bias_dtype):
    generator = torch.Generator().manual_seed(1)
    C = torch.randint(-(2 ** 20), 2 ** 20, (9, 11), generator=generator, dtype=torch.int32)
    row = torch.rand(9, generator=generator).half().float() * 30
    col = torch.rand(11, generator=generator).half().float() * 30
    bias = None if bias_dtype is None else torch.randn(11, generator=generator).to(bias_dtype)
    out = ops.int8_mm_dequant(C.to(device), row.to(device), col.to(device), dtype,
                              None if bias is None else bias.to(device))
    assert out.dtype == dtype and out.shape == (9, 11)
    # The float32 products, then one correctly rounded fma, then one rounding to dtype.
    product = (C.float() * row[:, None]) * col[None, :]
    exact = product.double() * (1.0 / 16129.0) + (0.0 if bias is None else bias.double())
    scale = torch.tensor(1.0 / 16129.0, dtype=torch.float32).double()
    fma = (product.double() * scale + (0.0 if bias is None else bias.double())).float()
    assert_bitwise_equal(out, fma.to(dtype))
    assert relative_error(out.cpu(), exact) < {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 1e-6}[dtype]


def test_mm_dequant_wide_outputs_do_not_pass_through_float16(device):
    C = torch.full((1, 2), 2 ** 30, dtype=torch.int32, device=device)
    stats = torch.full((2,), 127.0, device=device)
    out = ops.int8_mm_dequant(C, stats[:1], stats, torch.float32)
    assert out[0, 0].item() == pytest.approx(2.0 ** 30, rel=1e-6)  # float16 would overflow to inf
    assert torch.isinf(ops.int8_mm_dequant(C, stats[:1], stats)).all()


def test_non_finite_activations_give_non_finite_rows_not_garbage(device):
    W = torch.randn(8, 16, dtype=torch.float16, device=device)
    CB, SCB, _ = F.int8_vectorwise_quant(W)
    for threshold in (0.0, 6.0):
        for bad in (float("nan"), float("inf")):
            A = torch.randn(3, 16, dtype=torch.float16, device=device)
            A[1, 4] = bad
            state = bnb.MatmulLtState()
            state.is_training = False
            state.CB, state.SCB = CB, SCB
            out = bnb.matmul(A, W, state=state, threshold=threshold)
            assert not torch.isfinite(out[1]).all(), (threshold, bad)
            assert torch.isfinite(out[[0, 2]]).all()


# ---- bad input ------------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors(device, implementation):
    A8 = torch.randint(-128, 128, (4, 16), dtype=torch.int8, device=device)
    B8 = torch.randint(-128, 128, (6, 16), dtype=torch.int8, device=device)
    half = torch.randn(4, 16, dtype=torch.float16, device=device)
    stats4 = torch.ones(4, device=device)
    stats6 = torch.ones(6, device=device)
    with pytest.raises(ValueError, match="A must be int8"):
        ops.int8_linear_matmul(half, B8)
    with pytest.raises(ValueError, match="B must be int8"):
        ops.int8_linear_matmul(A8, B8.float())
    with pytest.raises(ValueError, match="Only two dimensional matrices are supported for argument B"):
        ops.int8_linear_matmul(A8, B8.reshape(2, 3, 16))
    with pytest.raises(ValueError, match="Inner dimensions do not match"):
        ops.int8_linear_matmul(A8, B8[:, :15])
    with pytest.raises(ValueError, match="out must be"):
        ops.int8_linear_matmul.out(A8, B8, torch.empty(4, 6, device=device))
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        ops.int8_vectorwise_quant(A8, 0.0)
    with pytest.raises(ValueError, match="threshold must be non-negative"):
        ops.int8_vectorwise_quant(half, -1.0)
    with pytest.raises(ValueError, match="stats must have 4 entries"):
        ops.int8_vectorwise_dequant(A8, stats6)
    with pytest.raises(ValueError, match="A must be int8"):
        ops.int8_vectorwise_dequant(half, stats4)
    C32 = F.int8_linear_matmul(A8, B8)
    with pytest.raises(ValueError, match="A must be int32"):
        ops.int8_mm_dequant(C32.float(), stats4, stats6)
    with pytest.raises(ValueError, match="row_stats must have 4 entries"):
        ops.int8_mm_dequant(C32, stats6, stats6)
    with pytest.raises(ValueError, match="col_stats must be float32"):
        ops.int8_mm_dequant(C32, stats4, stats6.half())
    with pytest.raises(ValueError, match="bias must have 6 entries"):
        ops.int8_mm_dequant(C32, stats4, stats6, bias=torch.ones(5, device=device))
    with pytest.raises(ValueError, match="col_stats must have 6 entries"):
        ops.int8_scaled_mm(A8, B8, stats4, stats4)
    with pytest.raises(ValueError, match="Inner dimensions do not match"):
        ops.int8_scaled_mm(A8, B8[:, :8], stats4, stats6)
    with pytest.raises(ValueError, match="must be 2-D"):
        ops.int8_mixed_scaled_mm(half.reshape(2, 2, 16), A8.reshape(2, 2, 16), B8, stats4, stats6)
    with pytest.raises(ValueError, match="dtype must be torch.int32"):
        F.int8_linear_matmul(A8, B8, dtype=torch.float32)


def test_bad_weights_raise_when_quantized(device):
    W = torch.randn(8, 16)
    W[2, 3] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        bnb.nn.Int8Params(W, requires_grad=False).to(device)
    W[2, 3] = 1e6  # beyond float16's range
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        bnb.nn.Int8Params(W, requires_grad=False).to(device)
    W[2, 3] = 0.5
    W[[0, 7], 5] = float("nan")
    with pytest.raises(ValueError, match=r"rows \[0, 7\]"):
        bnb.nn.Int8Params(W, requires_grad=False).to(device)
    W[[0, 7], 5] = 0.5
    assert bnb.nn.Int8Params(W, requires_grad=False).to(device).dtype == torch.int8


# ---- bnb.matmul and its gradients ---------------------------------------------------------------


def int8_state(training: bool) -> bnb.MatmulLtState:
    state = bnb.MatmulLtState()
    state.is_training = training
    return state


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threshold", [0.0, 6.0])
def test_matmul_forward_and_gradients_against_float(device, dtype, threshold):
    torch.manual_seed(0)
    A = activations_with_outliers(24, 64, dtype, device).reshape(2, 12, 64).requires_grad_(True)
    W = (torch.randn(48, 64, device=device) * 0.1).half().requires_grad_(True)
    bias = torch.randn(48, dtype=dtype, device=device).requires_grad_(True)
    # is_training=False: the int8 product on every device (the CPU trains through MatMul8bitFp).
    out = bnb.matmul(A, W, state=int8_state(False), threshold=threshold, bias=bias)
    assert out.dtype == dtype and out.shape == (2, 12, 48)
    grad = torch.randn_like(out)
    out.backward(grad)

    A_ref, W_ref, bias_ref = (t.detach().double().requires_grad_(True) for t in (A, W, bias))
    expected = torch.nn.functional.linear(A_ref, W_ref, bias_ref)
    expected.backward(grad.double())
    # Outlier columns 25x the others: with the threshold they are exact, without they cost resolution.
    assert relative_error(out, expected) < (0.01 if threshold else 0.03)
    assert relative_error(A.grad, A_ref.grad) < 0.01
    assert relative_error(W.grad, W_ref.grad) < 0.02
    assert relative_error(bias.grad, bias_ref.grad) < 1e-2


def test_threshold_makes_outlier_columns_exact(device):
    A = activations_with_outliers(32, 64, torch.float16, device)
    W = (torch.randn(16, 64, device=device) * 0.1).half()
    expected = A.double() @ W.double().t()
    errors = {t: relative_error(bnb.matmul(A, W, state=int8_state(False), threshold=t), expected) for t in (0.0, 6.0)}
    assert errors[6.0] < errors[0.0] / 2, errors


def test_matmul_cpu_training_uses_the_dequantized_weight():
    A = torch.randn(5, 32, requires_grad=True)
    W = (torch.randn(8, 32) * 0.1).half()
    state = int8_state(True)
    out = bnb.matmul(A, W, state=state)
    weight = F.int8_vectorwise_dequant(state.CB, state.SCB)
    assert torch.allclose(out, A @ weight.t(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert torch.allclose(A.grad, weight.sum(0).expand(5, 32), rtol=1e-5, atol=1e-6)


def test_matmul_empty_input(device):
    W = torch.randn(8, 32, dtype=torch.float16, device=device)
    A = torch.empty(0, 32, dtype=torch.float16, device=device, requires_grad=True)
    out = bnb.matmul(A, W, state=int8_state(False))
    assert out.shape == (0, 8)
    out.sum().backward()
    assert A.grad.shape == (0, 32)


def test_matmul_of_a_quantized_weight_needs_its_statistics(device):
    W = bnb.nn.Int8Params(torch.randn(8, 32), requires_grad=False).to(device)
    A = torch.randn(3, 32, dtype=torch.float16, device=device)
    expected = A.float() @ F.int8_vectorwise_dequant(W.data, W.SCB).t()
    assert relative_error(bnb.matmul(A, W, state=int8_state(False)), expected) < 0.02
    with pytest.raises(ValueError, match="without its row statistics"):
        bnb.matmul(A, W.data, state=int8_state(False))


def test_matmul_lt_state_fields():
    state = bnb.MatmulLtState()
    assert (state.CB, state.SB, state.SCB, state.SBt, state.CBt, state.subB, state.idx) == (None,) * 7
    assert (state.threshold, state.has_fp16_weights, state.is_training, state.use_pool) == (0.0, True, True, False)
    with pytest.warns(FutureWarning):
        assert state.CxB is None
    with pytest.raises(AttributeError):
        state.not_a_field


# ---- int8_linear (this package's op: the inference forward in one call) -------------------------

# threshold -> what it marks in int8_linear_activations: 0 no outlier handling, 6 the
# columns scaled by 25, 0.005 every column (no |a| below 0.01), 1e4 none.
INT8_LINEAR_THRESHOLDS = {"off": 0.0, "some": 6.0, "all": 0.005, "none": 1e4}
# (A's shape, N): 1-D, batch 1, 3-D, and tall enough for the multi-block quantizer and,
# on CUDA, the cuBLASLt product with its epilogue; K 128 (aligned kernels) and 72.
INT8_LINEAR_SHAPES = (((128,), 40), ((1, 128), 40), ((2, 3, 128), 24), ((300, 128), 48), ((5, 72), 33))


def int8_linear_activations(shape, dtype, device, seed=0):
    A = activations_with_outliers(prod(shape[:-1]), shape[-1], torch.float32, "cpu", seed)
    A = torch.where(A >= 0, A + 0.01, A - 0.01)
    return A.reshape(shape).to(dtype=dtype, device=device)


def int8_weight(N, K, device, seed=0):
    generator = torch.Generator().manual_seed(seed + 1)
    CB, SCB, _ = ops.int8_vectorwise_quant(torch.randn(N, K, generator=generator).half().to(device), 0.0)
    return CB, SCB


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("marked", INT8_LINEAR_THRESHOLDS)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
def test_int8_linear_equals_the_composition(device, implementation, dtype, marked, with_bias):
    threshold = INT8_LINEAR_THRESHOLDS[marked]
    for seed, (shape, N) in enumerate(INT8_LINEAR_SHAPES):
        K = shape[-1]
        A = int8_linear_activations(shape, dtype, device, seed)
        CB, SCB = int8_weight(N, K, device, seed)
        bias = torch.randn(N, dtype=dtype).to(device) if with_bias else None
        expected, outlier_cols = int8_linear_by_composition(A, CB, SCB, bias, threshold)
        expected_columns = {"off": None, "some": [3, 17], "all": list(range(K)), "none": []}[marked]
        assert (outlier_cols if outlier_cols is None else outlier_cols.tolist()) == expected_columns
        out = ops.int8_linear(A, CB, SCB, bias, threshold)
        assert out.shape == (*shape[:-1], N) and out.device == A.device
        assert_bitwise_equal(out, expected)


def test_int8_linear_bias_of_another_dtype_and_non_contiguous_input(device, implementation):
    A = int8_linear_activations((64, 40), torch.bfloat16, device)[::2, :]
    CB, SCB = int8_weight(24, 40, device)
    bias = torch.randn(24).to(device)
    for threshold in (0.0, 6.0):
        expected, _ = int8_linear_by_composition(A, CB, SCB, bias, threshold)
        assert_bitwise_equal(ops.int8_linear(A, CB, SCB, bias, threshold), expected)


def test_int8_linear_empty_input(device, implementation):
    CB, SCB = int8_weight(8, 32, device)
    bias = torch.randn(8, device=device)
    for threshold in (0.0, 6.0):
        for shape in ((0, 32), (2, 0, 32)):
            A = torch.empty(shape, dtype=torch.float16, device=device)
            out = ops.int8_linear(A, CB, SCB, bias, threshold)
            assert out.shape == (*shape[:-1], 8) and out.dtype == torch.float16
        # K == 0: a product of nothing, only the bias.
        A = torch.empty(3, 0, dtype=torch.float32, device=device)
        CB0, SCB0 = CB[:, :0], torch.ones(8, device=device)
        expected, _ = int8_linear_by_composition(A, CB0, SCB0, bias, threshold)
        assert_bitwise_equal(ops.int8_linear(A, CB0, SCB0, bias, threshold), expected)
        assert_bitwise_equal(expected, bias.expand(3, 8))


def test_int8_linear_bad_input_names_the_argument(device, implementation):
    A = torch.randn(4, 16, dtype=torch.float16, device=device)
    CB, SCB = int8_weight(6, 16, device)
    with pytest.raises(ValueError, match="int8_linear: A must be float16, bfloat16 or float32, got"):
        ops.int8_linear(CB, CB, SCB)
    with pytest.raises(ValueError, match="int8_linear: A must have at least one dimension"):
        ops.int8_linear(A[0, 0], CB, SCB)
    with pytest.raises(ValueError, match="int8_linear: CB must be int8, got"):
        ops.int8_linear(A, CB.half(), SCB)
    with pytest.raises(ValueError, match=r"int8_linear: CB must be 2-D \[N, K\]"):
        ops.int8_linear(A, CB.reshape(2, 3, 16), SCB)
    with pytest.raises(ValueError, match="int8_linear: CB must have K = 16 columns like A"):
        ops.int8_linear(A, CB[:, :8], SCB)
    with pytest.raises(ValueError, match="SCB must be float32, got"):
        ops.int8_linear(A, CB, SCB.half())
    with pytest.raises(ValueError, match="SCB must have 6 entries, got 5"):
        ops.int8_linear(A, CB, SCB[:5])
    with pytest.raises(ValueError, match="bias must have 6 entries, got 5"):
        ops.int8_linear(A, CB, SCB, torch.ones(5, device=device))
    with pytest.raises(ValueError, match="bias must be float16, bfloat16 or float32"):
        ops.int8_linear(A, CB, SCB, torch.ones(6, dtype=torch.int32, device=device))
    with pytest.raises(ValueError, match="threshold must be non-negative"):
        ops.int8_linear(A, CB, SCB, None, -1.0)
    if device != "cpu":
        with pytest.raises(ValueError, match="CB must be on"):
            ops.int8_linear(A, CB.cpu(), SCB)
        with pytest.raises(ValueError, match="SCB must be on"):
            ops.int8_linear(A, CB, SCB.cpu())


@pytest.mark.parametrize("threshold", [0.0, 6.0])
def test_matmul_inference_and_input_gradient_equal_the_composition(device, threshold):
    """bnb.matmul without a weight gradient goes through int8_linear: same output, same grad_A."""
    A = int8_linear_activations((2, 6, 64), torch.float16, device)
    W = bnb.nn.Int8Params(torch.randn(24, 64) * 0.1, requires_grad=False).to(device)
    bias = torch.randn(24, dtype=torch.float16, device=device)
    expected, _ = int8_linear_by_composition(A, W.data, W.SCB, bias, threshold)
    state = int8_state(False)
    with torch.no_grad():
        assert_bitwise_equal(bnb.matmul(A, W, state=state, threshold=threshold, bias=bias), expected)
    assert state.idx is None  # the outlier columns never left the device

    A_grad = A.clone().requires_grad_(True)
    out = bnb.matmul(A_grad, W, state=int8_state(False), threshold=threshold, bias=bias)
    assert_bitwise_equal(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    weight = F.int8_vectorwise_dequant(W.data, W.SCB).to(torch.float16)
    assert_bitwise_equal(A_grad.grad, torch.matmul(grad, weight))
