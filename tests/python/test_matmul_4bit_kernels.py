"""4-bit inference matmul: gemv_4bit, gemm_4bit and every CUDA kernel behind them.

Each kernel (SIMT, tensor core, generic, dequantize + cuBLASLt) is pinned through
torch.ops.bitsandbytes_internal.gemm_4bit_algo and compared with a float64 product
of the exactly dequantized weight; the public ops are checked on every device.
"""

import pytest
import torch

import bitsandbytes
import bitsandbytes.functional as F

ops = torch.ops.bitsandbytes
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")

# bnb_gemm_4bit_algo
AUTO, GENERIC, SIMT, TENSOR_CORE, DEQUANTIZE = 0, 1, 2, 3, 4
# ||out - ref|| / ||ref||: one rounding of the output plus fp32 accumulation order,
# plus (tensor cores) the weight rounded to A's dtype.
TOLERANCE = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.2e-2}
DTYPE_IDS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def make_weight(N, K, quant_type, nested, device, blocksize=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    W = (torch.randn(N, K, generator=generator) * 0.05).to(device)
    packed, state = F.quantize_4bit(W, blocksize=blocksize, quant_type=quant_type, compress_statistics=nested)
    return packed, state


def op_arguments(packed, state):
    """gemm_4bit's statistics arguments for a QuantState (as matmul_4bit passes them)."""
    if state.nested:
        return dict(absmax=state.state2.absmax, absmax_8bit=state.absmax, absmax_code=state.state2.code,
                    absmax_offset=state.offset)
    return dict(absmax=state.absmax)


def reference(A, packed, state, bias=None):
    weight = F.dequantize_4bit(packed, state).to(torch.float32).double()
    out = A.double() @ weight.T
    if bias is not None:
        out += bias.double()
    return out


def relative_error(out, ref):
    assert torch.isfinite(out).all(), "non-finite output"
    return ((out.double() - ref).norm() / ref.norm()).item()


def gemm(A, packed, state, bias=None, algo=AUTO):
    args = op_arguments(packed, state)
    N, K = state.shape
    if algo is None:
        return ops.gemm_4bit(A, packed, [N, K], args["absmax"], state.blocksize, state.quant_type, bias,
                             args.get("absmax_8bit"), args.get("absmax_code"), args.get("absmax_offset"))
    return torch.ops.bitsandbytes_internal.gemm_4bit_algo(
        A, packed, [N, K], args["absmax"], state.blocksize, state.quant_type, bias, args.get("absmax_8bit"),
        args.get("absmax_code"), args.get("absmax_offset"), algo)


# ---- every kernel on CUDA ------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("nested", [False, True])
def test_simt_kernel(dtype, M, quant_type, nested):
    packed, state = make_weight(200, 1024 + 96, quant_type, nested, "cuda", seed=M)
    A = torch.randn(M, 1024 + 96, device="cuda").to(dtype)
    bias = torch.randn(200, device="cuda").to(dtype)
    out = gemm(A, packed, state, bias, algo=SIMT)
    assert relative_error(out, reference(A, packed, state, bias)) < TOLERANCE[dtype]


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("M", [1, 5, 8, 9, 16, 17, 31, 32, 33, 64])
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("shape", [(256, 4096), (200, 160), (1040, 352), (4096, 32), ("sm*64+16", 4128),
                                   ("sm*128+32", 160)], ids="{0[0]}x{0[1]}".format)
def test_tensor_core_kernel(dtype, M, nested, shape):
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("mma.m16n8k16 needs compute capability 8.0")
    N, K = shape
    if isinstance(N, str):
        # Grids of 64 and 128 weight rows per block that fill every SM: from 17 rows of A these take
        # the kernel that stages A in shared memory with 4 and 8 warps (tuning_sm90.h), with a
        # partial last block and a partial last chunk of K.
        N = eval(N, {"sm": torch.cuda.get_device_properties(0).multi_processor_count})  # noqa: S307
    packed, state = make_weight(N, K, "nf4", nested, "cuda", seed=N + M)
    A = torch.randn(M, K, device="cuda").to(dtype)
    bias = torch.randn(N, device="cuda").to(dtype)
    out = gemm(A, packed, state, bias, algo=TENSOR_CORE)
    assert relative_error(out, reference(A, packed, state, bias)) < TOLERANCE[dtype]
    # The kernel multiplies codebook value and block scale as a pair of A's dtype:
    # with the weights rounded that way it is exact up to summation order.
    dense = torch.nn.functional.linear(A.double(), weights_as_tensor_cores_see_them(packed, state, dtype).double(),
                                       bias.double())
    assert relative_error(out, dense) < 2 * torch.finfo(dtype).eps


def weights_as_tensor_cores_see_them(packed, state, dtype):
    """dtype(codebook value) * dtype(block scale), rounded to dtype."""
    N, K = state.shape
    unit = F.QuantState(absmax=torch.ones_like(F._denested_absmax(state)), shape=state.shape, dtype=torch.float32,
                        blocksize=state.blocksize, quant_type=state.quant_type)
    codes = F.dequantize_4bit(packed, unit).to(dtype)
    scales = F._denested_absmax(state).to(dtype).repeat_interleave(state.blocksize)[: N * K].view(N, K)
    return codes * scales


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("shape", [(7, 33), (16, 31), (3, 1), (33, 100)], ids="{0[0]}x{0[1]}".format)
@pytest.mark.parametrize("blocksize", [32, 64, 256])
def test_generic_kernel_any_shape(dtype, shape, blocksize):
    N, K = shape
    packed, state = make_weight(N, K, "fp4", False, "cuda", blocksize=blocksize, seed=K)
    A = torch.randn(3, K, device="cuda").to(dtype)
    for algo in (GENERIC, AUTO, DEQUANTIZE):
        out = gemm(A, packed, state, algo=algo)
        assert relative_error(out, reference(A, packed, state)) < TOLERANCE[dtype]


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("M", [1, 4, 16, 64, 65, 300])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
def test_auto_and_dequantize_paths_agree(dtype, M, with_bias):
    packed, state = make_weight(512, 1024, "nf4", True, "cuda", seed=M)
    A = torch.randn(M, 1024, device="cuda").to(dtype)
    bias = torch.randn(512, device="cuda").to(dtype) if with_bias else None
    ref = reference(A, packed, state, bias)
    assert relative_error(gemm(A, packed, state, bias, algo=None), ref) < TOLERANCE[dtype]
    assert relative_error(gemm(A, packed, state, bias, algo=DEQUANTIZE), ref) < TOLERANCE[dtype]


@needs_cuda
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
def test_dequantize_path_matches_dequantize_plus_linear(nested, with_bias):
    """Above the fused row limit gemm_4bit is upstream's fallback (dequantize_4bit,
    then one GEMM with float32 accumulation), up to the GEMM's summation order."""
    packed, state = make_weight(384, 512, "nf4", nested, "cuda", seed=3)
    A = torch.randn(2000, 512, device="cuda", dtype=torch.bfloat16)
    bias = torch.randn(384, device="cuda", dtype=torch.bfloat16) if with_bias else None
    out = gemm(A, packed, state, bias, algo=None)
    expected = torch.nn.functional.linear(A, F.dequantize_4bit(packed, state).to(torch.bfloat16), bias)
    assert relative_error(out, expected.double()) < torch.finfo(torch.bfloat16).eps


@needs_cuda
def test_forced_kernel_outside_its_limits_is_not_implemented():
    packed, state = make_weight(64, 100, "nf4", False, "cuda")
    A = torch.randn(2, 100, device="cuda", dtype=torch.float16)
    with pytest.raises(NotImplementedError, match="K % 32"):
        gemm(A, packed, state, algo=SIMT)
    packed, state = make_weight(64, 128, "nf4", False, "cuda")
    with pytest.raises(NotImplementedError, match="fp16/bf16"):
        gemm(torch.randn(9, 128, device="cuda"), packed, state, algo=TENSOR_CORE)
    with pytest.raises(NotImplementedError, match="M <= 8"):
        gemm(torch.randn(9, 128, device="cuda"), packed, state, algo=SIMT)


@needs_cuda
def test_misaligned_activations_fall_back_to_generic():
    packed, state = make_weight(96, 256, "nf4", False, "cuda")
    storage = torch.randn(2 * 256 + 1, device="cuda", dtype=torch.float16)
    A = storage[1:].view(2, 256)  # 2-byte offset: no 16-byte loads
    out = gemm(A, packed, state, algo=None)
    assert relative_error(out, reference(A, packed, state)) < TOLERANCE[torch.float16]


@needs_cuda
def test_every_output_written_and_inputs_untouched():
    packed, state = make_weight(300, 512, "nf4", True, "cuda")
    A = torch.randn(12, 512, device="cuda", dtype=torch.bfloat16)
    before = (A.clone(), packed.clone(), state.absmax.clone())
    for algo in (SIMT, TENSOR_CORE, GENERIC, DEQUANTIZE):
        rows = 8 if algo == SIMT else 12
        out = gemm(A[:rows], packed, state, algo=algo)
        assert out.shape == (rows, 300) and torch.isfinite(out).all()
    assert torch.equal(A, before[0]) and torch.equal(packed, before[1]) and torch.equal(state.absmax, before[2])


@needs_cuda
@pytest.mark.parametrize("M", [4, 256])
def test_gemm_on_a_side_stream(M):
    packed, state = make_weight(1024, 2048, "nf4", True, "cuda")
    source = torch.randn(M, 2048, device="cuda", dtype=torch.bfloat16)
    expected = gemm(source, packed, state, algo=None)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        A = torch.zeros_like(source)
        torch.cuda._sleep(50_000_000)
        A.copy_(source)
        out = gemm(A, packed, state, algo=None)
    side.synchronize()
    assert torch.equal(out, expected)


@needs_cuda
@pytest.mark.parametrize("M", [1, 16, 256])
def test_cuda_graph_replays_gemv_and_gemm(M):
    """M = 256 captures the dequantize + cuBLASLt path with its workspace."""
    packed, state = make_weight(512, 1024, "nf4", True, "cuda")
    static_A = torch.randn(M, 1024, device="cuda", dtype=torch.float16)
    absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        ops.gemv_4bit(static_A, packed, [512, 1024], absmax, state.code, 64)
        gemm(static_A, packed, state, algo=None)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_gemv = ops.gemv_4bit(static_A, packed, [512, 1024], absmax, state.code, 64)
        static_gemm = gemm(static_A, packed, state, algo=None)
    new_A = torch.randn(M, 1024, device="cuda", dtype=torch.float16)
    static_A.copy_(new_A)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_gemm, gemm(new_A, packed, state, algo=None))
    assert torch.equal(static_gemv, ops.gemv_4bit(new_A, packed, [512, 1024], absmax, state.code, 64))


@needs_cuda
def test_torch_compile_fullgraph_matmul_4bit():
    packed, state = make_weight(256, 512, "nf4", True, "cuda")
    bias = torch.randn(256, device="cuda", dtype=torch.bfloat16)

    def forward(x):
        return bitsandbytes.matmul_4bit(x, packed.t(), quant_state=state, bias=bias).relu()

    compiled = torch.compile(forward, fullgraph=True)
    for M in (1, 8):
        x = torch.randn(M, 512, device="cuda", dtype=torch.bfloat16)
        with torch.no_grad():
            assert torch.allclose(compiled(x), forward(x), atol=1e-2, rtol=1e-2)


# ---- public ops and functional API, every device ---------------------------------------------------


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=DTYPE_IDS.get)
def test_gemv_4bit_op(device, quant_type, dtype):
    packed, state = make_weight(96, 320, quant_type, False, device)
    A = torch.randn(1, 1, 320, device=device).to(dtype)
    out = ops.gemv_4bit(A, packed, [96, 320], state.absmax, state.code, 64)
    assert out.shape == (1, 1, 96) and out.dtype == dtype
    assert relative_error(out, reference(A, packed, state)) < TOLERANCE[dtype]
    into = torch.empty(1, 1, 96, device=device, dtype=dtype)
    ops.gemv_4bit.out(A, packed, [96, 320], state.absmax, state.code, 64, out=into)
    assert torch.equal(into, out)


@pytest.mark.parametrize("nested", [False, True])
def test_functional_gemv_4bit(device, nested):
    packed, state = make_weight(128, 256, "nf4", nested, device)
    A = torch.randn(1, 256, device=device, dtype=torch.float16)
    out = F.gemv_4bit(A, packed, state=state)
    assert relative_error(out, reference(A, packed, state)) < TOLERANCE[torch.float16]
    # The transposed [1, X] packed form and a preallocated out are accepted.
    into = torch.empty(1, 128, device=device, dtype=torch.float16)
    assert F.gemv_4bit(A, packed.t(), out=into, state=state) is into
    assert torch.equal(into, out)
    with pytest.raises(ValueError, match="state cannot be None"):
        F.gemv_4bit(A, packed)


@pytest.mark.parametrize("M", [1, 3, 40])
def test_matmul_4bit_inference(device, M):
    packed, state = make_weight(200, 384, "nf4", True, device)
    x = torch.randn(2, M, 384, device=device, dtype=torch.bfloat16)
    bias = torch.randn(200, device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        out = bitsandbytes.matmul_4bit(x, packed.t(), quant_state=state, bias=bias)
    assert out.shape == (2, M, 200)
    assert relative_error(out, reference(x, packed, state, bias)) < TOLERANCE[torch.bfloat16]


def test_half_precision_offset_equals_float32_offset(device):
    packed, state = make_weight(64, 256, "nf4", True, device)
    A = torch.randn(2, 256, device=device, dtype=torch.float16)
    args = op_arguments(packed, state)
    as_float = ops.gemm_4bit(A, packed, [64, 256], args["absmax"], 64, "nf4", None, args["absmax_8bit"],
                             args["absmax_code"], args["absmax_offset"].half().float())
    as_half = ops.gemm_4bit(A, packed, [64, 256], args["absmax"], 64, "nf4", None, args["absmax_8bit"],
                            args["absmax_code"], args["absmax_offset"].half())
    assert torch.equal(as_float, as_half)


def test_gemm_4bit_rejects_bad_arguments(device):
    packed, state = make_weight(64, 128, "nf4", False, device)
    A = torch.randn(2, 128, device=device, dtype=torch.float16)
    absmax = state.absmax
    with pytest.raises(RuntimeError, match="shapeB must be 2D"):
        ops.gemm_4bit(A, packed, [64, 128, 1], absmax, 64, "nf4")
    with pytest.raises(RuntimeError, match="A inner dim"):
        ops.gemm_4bit(A[:, :64], packed, [64, 128], absmax, 64, "nf4")
    with pytest.raises(RuntimeError, match="bias length"):
        ops.gemm_4bit(A, packed, [64, 128], absmax, 64, "nf4", torch.zeros(63, device=device, dtype=torch.float16))
    with pytest.raises(RuntimeError, match="bias dtype"):
        ops.gemm_4bit(A, packed, [64, 128], absmax, 64, "nf4", torch.zeros(64, device=device))
    with pytest.raises(RuntimeError, match="B must be backed"):
        ops.gemm_4bit(A, packed.to(torch.int32), [64, 128], absmax, 64, "nf4")
    with pytest.raises(RuntimeError, match="blocksize"):
        ops.gemm_4bit(A, packed, [64, 128], absmax, 100, "nf4")
    with pytest.raises(ValueError, match="quant_type must be 'nf4' or 'fp4', got 'int4'"):
        ops.gemm_4bit(A, packed, [64, 128], absmax, 64, "int4")
    with pytest.raises(RuntimeError, match="absmax must be float32"):
        ops.gemm_4bit(A, packed, [64, 128], absmax.half(), 64, "nf4")
    with pytest.raises(RuntimeError, match="absmax_code required"):
        ops.gemm_4bit(A, packed, [64, 128], absmax, 64, "nf4", None,
                      torch.zeros(absmax.numel(), dtype=torch.uint8, device=device))


@needs_cuda
def test_gemm_4bit_rejects_short_buffers_on_cuda():
    packed, state = make_weight(64, 128, "nf4", False, "cuda")
    A = torch.randn(2, 128, device="cuda", dtype=torch.float16)
    with pytest.raises(RuntimeError, match="B holds"):
        ops.gemm_4bit(A, packed[:10], [64, 128], state.absmax, 64, "nf4")
    with pytest.raises(RuntimeError, match="absmax must have at least"):
        ops.gemm_4bit(A, packed, [64, 128], state.absmax[:3], 64, "nf4")
    with pytest.raises(ValueError, match="must be on"):
        ops.gemm_4bit(A, packed, [64, 128], state.absmax.cpu(), 64, "nf4")
