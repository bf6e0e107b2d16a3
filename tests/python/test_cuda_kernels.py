"""CUDA quantization kernels: what only the GPU path has (misaligned views and the
scalar paths they take, side streams, CUDA graphs, large tensors, device indices).

test_backend_ops.py runs every op on CUDA against the pure-torch oracle and the
golden data, over the sizes around a warp's span and the storage dtypes; this file
adds what is specific to the CUDA launchers.
"""

import pytest
import torch
from conftest import assert_bitwise_equal

import bitsandbytes.functional as F

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

ops = torch.ops.bitsandbytes

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DTYPE_IDS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def random_values(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=generator) * 3.0).to(dtype)


def dynamic_code(device) -> torch.Tensor:
    return F.create_dynamic_map(signed=True).to(device)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS.get)
@pytest.mark.parametrize("offset", [1, 3, 5])
def test_misaligned_views_take_the_scalar_paths(dtype, offset):
    """Views that start a few elements into their storage: the kernels drop to
    element-wise loads and stores and must still give the aligned result."""
    n, blocksize = 4096 + 37, 64
    base = random_values(n + offset, dtype, seed=offset).cuda()
    A = base[offset:]
    aligned = A.clone()
    packed, absmax = ops.quantize_4bit(A, blocksize, "nf4", torch.uint8)
    packed_ref, absmax_ref = ops.quantize_4bit(aligned, blocksize, "nf4", torch.uint8)
    assert_bitwise_equal(packed, packed_ref)
    assert_bitwise_equal(absmax, absmax_ref)

    packed_view = torch.empty(packed.numel() + offset, dtype=torch.uint8, device="cuda")[offset:]
    packed_view.copy_(packed.view(-1))
    out_view = torch.empty(n + offset, dtype=dtype, device="cuda")[offset:]
    ops.dequantize_4bit.out(packed_view, absmax, blocksize, "nf4", [n], dtype, out=out_view)
    assert_bitwise_equal(out_view, ops.dequantize_4bit(packed, absmax, blocksize, "nf4", [n], dtype))

    code = dynamic_code("cuda")
    codes, absmax8 = ops.quantize_blockwise(A, code, 256)
    codes_ref, absmax8_ref = ops.quantize_blockwise(aligned, code, 256)
    assert_bitwise_equal(codes, codes_ref)
    assert_bitwise_equal(absmax8, absmax8_ref)
    codes_view = torch.empty(n + offset, dtype=torch.uint8, device="cuda")[offset:]
    codes_view.copy_(codes)
    out8 = torch.empty(n + offset, dtype=dtype, device="cuda")[offset:]
    ops.dequantize_blockwise.out(codes_view, absmax8, code, 256, dtype, out=out8)
    assert_bitwise_equal(out8, ops.dequantize_blockwise(codes, absmax8, code, 256, dtype))


def test_non_contiguous_input_equals_contiguous():
    A = random_values(256 * 320, torch.bfloat16, seed=11).reshape(256, 320).cuda().t()
    assert not A.is_contiguous()
    packed, absmax = ops.quantize_4bit(A, 64, "fp4", torch.uint8)
    packed_ref, absmax_ref = ops.quantize_4bit(A.contiguous(), 64, "fp4", torch.uint8)
    assert_bitwise_equal(packed, packed_ref)
    assert_bitwise_equal(absmax, absmax_ref)


def test_large_tensor_matches_cpu():
    """Enough blocks for many waves of the grid; every output byte written."""
    n = 64 * 1024 * 1024 + 123
    A = random_values(n, torch.bfloat16, seed=5)
    packed_cpu, absmax_cpu = ops.quantize_4bit(A, 64, "nf4", torch.uint8)
    packed_cuda, absmax_cuda = ops.quantize_4bit(A.cuda(), 64, "nf4", torch.uint8)
    assert_bitwise_equal(packed_cuda, packed_cpu)
    assert_bitwise_equal(absmax_cuda, absmax_cpu)
    out = torch.full((n,), float("nan"), dtype=torch.bfloat16, device="cuda")
    ops.dequantize_4bit.out(packed_cuda, absmax_cuda, 64, "nf4", [n], torch.bfloat16, out=out)
    assert_bitwise_equal(out, ops.dequantize_4bit(packed_cpu, absmax_cpu, 64, "nf4", [n], torch.bfloat16))


def test_side_stream_is_used():
    """Work queued on a side stream: the kernels must run on it, after the input is
    written there (on the default stream they would read the zeros)."""
    n = 1 << 22
    source = random_values(n, torch.float16, seed=3).cuda()
    expected_packed, expected_absmax = ops.quantize_4bit(source, 64, "nf4", torch.uint8)
    expected_out = ops.dequantize_4bit(expected_packed, expected_absmax, 64, "nf4", [n], torch.float16)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        A = torch.zeros(n, dtype=torch.float16, device="cuda")
        torch.cuda._sleep(50_000_000)  # keeps the side stream busy
        A.copy_(source)
        packed, absmax = ops.quantize_4bit(A, 64, "nf4", torch.uint8)
        out = ops.dequantize_4bit(packed, absmax, 64, "nf4", [n], torch.float16)
    side.synchronize()
    assert_bitwise_equal(packed, expected_packed)
    assert_bitwise_equal(out, expected_out)


def test_cuda_graph_replays_dequantize_with_new_data():
    n, blocksize = 1 << 20, 64
    A = random_values(n, torch.bfloat16, seed=1).cuda()
    packed, absmax = ops.quantize_4bit(A, blocksize, "nf4", torch.uint8)
    static_packed, static_absmax = packed.clone(), absmax.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture
        ops.dequantize_4bit(static_packed, static_absmax, blocksize, "nf4", [n], torch.bfloat16)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = ops.dequantize_4bit(static_packed, static_absmax, blocksize, "nf4", [n], torch.bfloat16)
    B = random_values(n, torch.bfloat16, seed=2).cuda()
    new_packed, new_absmax = ops.quantize_4bit(B, blocksize, "nf4", torch.uint8)
    static_packed.copy_(new_packed)
    static_absmax.copy_(new_absmax)
    graph.replay()
    torch.cuda.synchronize()
    assert_bitwise_equal(static_out, ops.dequantize_4bit(new_packed, new_absmax, blocksize, "nf4", [n], torch.bfloat16))


def test_cuda_graph_captures_quantize():
    n = 1 << 18
    static_A = random_values(n, torch.float16, seed=4).cuda()
    ops.quantize_4bit(static_A, 64, "fp4", torch.uint8)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_packed, static_absmax = ops.quantize_4bit(static_A, 64, "fp4", torch.uint8)
    B = random_values(n, torch.float16, seed=9).cuda()
    static_A.copy_(B)
    graph.replay()
    torch.cuda.synchronize()
    packed, absmax = ops.quantize_4bit(B, 64, "fp4", torch.uint8)
    assert_bitwise_equal(static_packed, packed)
    assert_bitwise_equal(static_absmax, absmax)


def test_second_device_index_is_honoured():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    A = random_values(10000, torch.float32, seed=8).to("cuda:1")
    packed, absmax = ops.quantize_4bit(A, 64, "nf4", torch.uint8)
    assert packed.device == A.device
    packed_ref, absmax_ref = ops.quantize_4bit(A.cpu(), 64, "nf4", torch.uint8)
    assert_bitwise_equal(packed, packed_ref)
    assert_bitwise_equal(absmax, absmax_ref)
