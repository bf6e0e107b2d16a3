"""CUDA benchmarks of bitsandbytes: quantize/dequantize bandwidth and the 4-bit matmul.

Runs against whichever `bitsandbytes` is importable, so the same script measures
ours and upstream's in two separate processes (never both in one: same module
name). Every row also records the same-process physical baselines: device-to-device
copy bandwidth and torch's dense F.linear.

Method (shared/device.md, the device tool's METHOD.md):
- eager time: CUDA events around the Python call after a synchronize, so CPU
  launch overhead counts whenever the GPU would otherwise idle (what users see);
- kernel time: the call captured in a CUDA graph, replayed right behind an L2
  flush with no synchronize in between, so only GPU time is counted;
- 5 warm-up calls, median of 30; a 256 MiB buffer zeroed before every repetition
  (L2 flush) except for the copy baseline.

    python3 benchmarks/cuda/bench_cuda.py --impl ours --out ours.json
    PYTHONPATH=.upstream python3 benchmarks/cuda/bench_cuda.py --impl upstream --out upstream.json
    python3 benchmarks/cuda/report.py ours.json upstream.json > results.md
"""

import argparse
import json
import statistics
import sys
import time

import torch

WARMUP = 5
REPEATS = 30
QUANT_SHAPES = [(4096, 4096), (14336, 4096), (28672, 8192)]
MATMUL_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 8192)]
BATCHES = [1, 4, 16, 64, 256, 1024, 4096]

_flush_buffer = None


def flush_l2():
    global _flush_buffer
    if _flush_buffer is None:
        _flush_buffer = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    _flush_buffer.zero_()


def eager_time_us(fn, flush=True):
    """Median event time of fn() started on an idle GPU (CPU overhead included)."""
    for _ in range(WARMUP):
        fn()
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(REPEATS):
        if flush:
            flush_l2()
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    return statistics.median(times)


def kernel_time_us(fn, flush=True):
    """Median GPU time of fn() replayed from a CUDA graph (no launch gaps); None if
    the call cannot be captured."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            fn()
    except Exception as error:  # noqa: BLE001  (record, don't stop the run)
        print(f"    graph capture failed: {type(error).__name__}: {error}", file=sys.stderr)
        torch.cuda.synchronize()
        return None
    for _ in range(WARMUP):
        graph.replay()
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(REPEATS):
        if flush:
            flush_l2()
        else:
            torch.cuda._sleep(100_000)  # keep the GPU busy while the replay is submitted
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    del graph
    return statistics.median(times)


def queued_time_us(fn):
    """Median event time of fn() queued behind the L2 flush (no synchronize in
    between, so the CPU overhead hides behind the flush): GPU time without a graph,
    a cross-check where graph capture misses work."""
    for _ in range(WARMUP):
        fn()
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(REPEATS):
        flush_l2()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    return statistics.median(times)


def copy_bandwidth_gbs():
    """Device-to-device copy of 1 GiB (bytes read + written): the better of the
    eager and the graph-replay timing, both without L2 flush."""
    src = torch.randn(256 * 1024 * 1024, device="cuda")
    dst = torch.empty_like(src)
    moved = 2 * src.numel() * src.element_size()
    best = min(eager_time_us(lambda: dst.copy_(src), flush=False), kernel_time_us(lambda: dst.copy_(src), flush=False))
    del src, dst
    return moved / (best * 1e-6) / 1e9


def dense_tflops():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    microseconds = kernel_time_us(lambda: a @ b, flush=False)
    return 2 * 8192**3 / (microseconds * 1e-6) / 1e12


# ---- the library under test --------------------------------------------------------------------


def library():
    import bitsandbytes
    import bitsandbytes.functional as F

    return bitsandbytes, F


def quant_rows(impl, record):
    bnb, F = library()
    ops = torch.ops.bitsandbytes
    code = F.create_dynamic_map(signed=True).cuda()
    for N, K in QUANT_SHAPES:
        n = N * K
        A = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        shape = f"{N}x{K}"
        for quant_type in ("nf4", "fp4"):
            packed, absmax = ops.quantize_4bit(A, 64, quant_type, torch.uint8)
            moved = n // 2 + n * 2 + absmax.numel() * 4
            call = lambda: ops.dequantize_4bit(packed, absmax, 64, quant_type, [N, K], torch.bfloat16)  # noqa: E731
            record(f"dequantize_4bit {quant_type}", shape, "bf16", None, call, moved)
        moved = n * 2 + n // 2 + (n // 64) * 4
        record("quantize_4bit nf4", shape, "bf16", None, lambda: ops.quantize_4bit(A, 64, "nf4", torch.uint8), moved)
        codes, absmax8 = ops.quantize_blockwise(A, code, 256)
        moved = n + n * 2 + absmax8.numel() * 4
        record("dequantize_blockwise 8-bit", shape, "bf16", None,
               lambda: ops.dequantize_blockwise(codes, absmax8, code, 256, torch.bfloat16), moved)
        moved = n * 2 + n + (n // 256) * 4
        record("quantize_blockwise 8-bit", shape, "bf16", None, lambda: ops.quantize_blockwise(A, code, 256), moved)
        del A, packed, absmax, codes, absmax8
        torch.cuda.empty_cache()


def matmul_rows(impl, record, dtypes, batches, shapes, paths):
    bnb, F = library()
    for N, K in shapes:
        W = (torch.randn(N, K, device="cuda") * 0.02).to(torch.bfloat16)
        packed, state = F.quantize_4bit(W, blocksize=64, quant_type="nf4", compress_statistics=True)
        shape = f"{N}x{K}"
        for dtype in dtypes:
            dense = W.to(dtype)
            state.dtype = dtype
            name = "bf16" if dtype == torch.bfloat16 else "fp16"
            for M in batches:
                x = torch.randn(M, K, device="cuda", dtype=dtype)
                with torch.inference_mode():
                    expected = torch.nn.functional.linear(x, F.dequantize_4bit(packed, state).to(dtype)).float()
                    out = bnb.matmul_4bit(x, packed.t(), quant_state=state).float()
                    error = ((out - expected).norm() / expected.norm()).item()
                    record("F.linear", shape, name, M, lambda: torch.nn.functional.linear(x, dense), 2 * N * K)
                    record("matmul_4bit", shape, name, M, lambda: bnb.matmul_4bit(x, packed.t(), quant_state=state),
                           N * K // 2, error=error)
                    if impl == "ours" and paths:
                        # algo: a bnb_gemm_4bit_algo (0 AUTO: fused up to 64 rows, 4 DEQUANTIZE).
                        for algo, label in ((4, "dequantize+cuBLASLt"), (0, "fused")):
                            if algo == 0 and M > 64:
                                continue
                            call = lambda: torch.ops.bitsandbytes_internal.gemm_4bit_algo(  # noqa: E731
                                x, packed, [N, K], state.state2.absmax, 64, "nf4", None, state.absmax,
                                state.state2.code, state.offset, algo)
                            record(f"gemm_4bit {label}", shape, name, M, call, N * K // 2)
                        # What the glue ran before the library chose the dense path itself.
                        record("dequantize_4bit+F.linear", shape, name, M,
                               lambda: torch.nn.functional.linear(x, F.dequantize_4bit(packed, state).to(dtype)),
                               N * K // 2)
                del x
            del dense
        del W, packed, state
        torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["ours", "upstream"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="fewer shapes (smoke run)")
    parser.add_argument("--skip-quant", action="store_true")
    parser.add_argument("--paths", action="store_true", help="also time ours' fused and dequantize paths")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="comma-separated matmul batches")
    args = parser.parse_args()

    bnb, _ = library()
    torch.manual_seed(0)
    properties = torch.cuda.get_device_properties(0)
    header = {
        "impl": args.impl,
        "bitsandbytes": getattr(bnb, "__version__", "?"),
        "bitsandbytes_file": bnb.__file__,
        "torch": torch.__version__,
        "device": properties.name,
        "sm_count": properties.multi_processor_count,
        "copy_gbs": copy_bandwidth_gbs(),
        "bf16_tflops": dense_tflops(),
        "method": f"CUDA events, {WARMUP} warm-up, median of {REPEATS}, 256 MiB L2 flush before each repetition",
    }
    print(json.dumps(header), flush=True)
    rows = []

    def record(op, shape, dtype, batch, call, moved_bytes, error=None):
        started = time.time()
        row = {
            "op": op, "shape": shape, "dtype": dtype, "batch": batch, "bytes": moved_bytes,
            "eager_us": eager_time_us(call), "kernel_us": kernel_time_us(call), "queued_us": queued_time_us(call),
            "error": error,
        }
        rows.append(row)
        print(json.dumps(row), f"({time.time() - started:.1f}s)", flush=True)

    if not args.skip_quant:
        quant_rows(args.impl, record)
    shapes = MATMUL_SHAPES[:1] + MATMUL_SHAPES[-1:] if args.quick else MATMUL_SHAPES
    batches = [int(batch) for batch in args.batches.split(",")]
    matmul_rows(args.impl, record, [torch.bfloat16, torch.float16], batches, shapes, args.paths)
    with open(args.out, "w") as handle:
        json.dump({"header": header, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
