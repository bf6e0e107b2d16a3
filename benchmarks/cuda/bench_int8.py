"""LLM.int8() linear forward on CUDA: ours (the C ABI through ctypes), upstream
bitsandbytes' Linear8bitLt, torch fp16 nn.Linear and torch._int_mm, one shape at a time.

The same call of the script measures one implementation; run upstream in its own
process (same module name as ours):

    python3 benchmarks/cuda/bench_int8.py --impl ours --lib build-dev/libbitsandbytes.so --out ours.json
    PYTHONPATH=.upstream python3 benchmarks/cuda/bench_int8.py --impl upstream --out upstream.json
    python3 benchmarks/cuda/bench_int8.py --impl torch --out torch.json
    python3 benchmarks/cuda/bench_int8.py --report ours.json upstream.json torch.json

A forward is, for every implementation, y = linear(x) with x [batch, K] fp16 and
an int8 weight [N, K] (fp16 for nn.Linear) with bias: ours = bnb_int8_vectorwise_quant
(x, threshold) + bnb_int8_scaled_mm (outlier columns fused); upstream =
Linear8bitLt(has_fp16_weights=False, threshold); torch._int_mm = the int8 GEMM
alone (int32 out, no quantization or rescale; torch needs batch > 16).
x is N(0, 1) with 4 planted outlier columns (|x| = 8), so that threshold 6.0 has
outliers to handle on every row, as in real LLM activations.

Method (shared/device.md, METHOD.md): eager = CUDA events around the call after a
synchronize (launch overhead included, what users see); kernel = the call captured
in a CUDA graph behind an L2 flush, minus nothing (the flush is outside the
events); 3 warm-ups, median of 20; a 256 MiB buffer zeroed before every repetition.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys

import torch

WARMUP = 3
REPEATS = 20
WEIGHTS = [(4096, 4096), (28672, 8192)]  # (N, K)
BATCHES = [1, 16, 256, 2048, 8192]
THRESHOLDS = [0.0, 6.0]
OUTLIER_COLUMNS = [17, 1000, 2047, 4001]

_flush = None


def flush_l2():
    global _flush
    if _flush is None:
        _flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    _flush.zero_()


def eager_us(fn):
    for _ in range(WARMUP):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(REPEATS):
        flush_l2()
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    return statistics.median(times)


def kernel_us(fn):
    """GPU time of fn() replayed from a CUDA graph; None when it cannot be captured."""
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
    except Exception as error:  # noqa: BLE001  (recorded, the run goes on)
        print(f"    graph capture failed: {type(error).__name__}: {error}", file=sys.stderr)
        torch.cuda.synchronize()
        return None
    for _ in range(WARMUP):
        graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(REPEATS):
        flush_l2()
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    del graph
    return statistics.median(times)


def activations(batch, K):
    # Drawn on the CPU: a failed graph capture (upstream with outliers) leaves the CUDA
    # generator unusable for the rest of the process.
    x = torch.randn(batch, K, dtype=torch.float16)
    x[:, [c for c in OUTLIER_COLUMNS if c < K]] = 8.0
    return x.cuda()


# ---- ours: the C ABI ------------------------------------------------------------------------------
class Device(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("index", ctypes.c_int32)]


CUDA = Device(1, 0)
FLOAT16 = 1


def load_ours(path):
    lib = ctypes.CDLL(path)
    p, i64, f32, c_int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
    lib.bnb_int8_vectorwise_quant.argtypes = [Device, p, c_int, p, i64, i64, f32, p, p, p, p]
    lib.bnb_int8_scaled_mm.argtypes = [Device, p, c_int, p, i64, i64, p, i64, p, p, c_int, p, p, p, p, p, i64, p]
    lib.bnb_int8_scaled_mm_workspace_size.argtypes = [Device, c_int, i64, i64, i64, c_int, ctypes.POINTER(i64)]
    lib.bnb_last_error.restype = ctypes.c_char_p
    return lib


class OursLinear:
    def __init__(self, lib, weight, bias, threshold, batch):
        self.lib, self.bias, self.threshold = lib, bias, threshold
        N, K = weight.shape
        self.N, self.K = N, K
        self.CB = torch.empty(N, K, dtype=torch.int8, device="cuda")
        self.SCB = torch.empty(N, dtype=torch.float32, device="cuda")
        self.check(lib.bnb_int8_vectorwise_quant(CUDA, self.stream(), FLOAT16, weight.data_ptr(), N, K, 0.0,
                                                 self.CB.data_ptr(), self.SCB.data_ptr(), None, None))
        self.CA = torch.empty(batch, K, dtype=torch.int8, device="cuda")
        self.SCA = torch.empty(batch, dtype=torch.float32, device="cuda")
        self.columns = torch.empty(K, dtype=torch.int64, device="cuda")
        self.count = torch.empty(1, dtype=torch.int64, device="cuda")
        self.out = torch.empty(batch, N, dtype=torch.float16, device="cuda")
        size = ctypes.c_int64(0)
        self.check(lib.bnb_int8_scaled_mm_workspace_size(CUDA, FLOAT16, batch, N, K, int(threshold > 0),
                                                         ctypes.byref(size)))
        self.workspace = torch.empty(max(size.value, 1), dtype=torch.uint8, device="cuda")
        self.workspace_bytes = size.value

    def check(self, status):
        if status != 0:
            raise RuntimeError(f"bitsandbytes C ABI: status {status}: {self.lib.bnb_last_error().decode()}")

    @staticmethod
    def stream():
        return torch.cuda.current_stream().cuda_stream

    def __call__(self, x):
        stream, M = self.stream(), x.shape[0]
        outliers = self.threshold > 0
        self.check(self.lib.bnb_int8_vectorwise_quant(
            CUDA, stream, FLOAT16, x.data_ptr(), M, self.K, self.threshold, self.CA.data_ptr(), self.SCA.data_ptr(),
            self.columns.data_ptr() if outliers else None, self.count.data_ptr() if outliers else None))
        self.check(self.lib.bnb_int8_scaled_mm(
            CUDA, stream, FLOAT16, self.CA.data_ptr(), M, self.K, self.CB.data_ptr(), self.N, self.SCA.data_ptr(),
            self.SCB.data_ptr(), FLOAT16, self.bias.data_ptr(), x.data_ptr() if outliers else None,
            self.columns.data_ptr() if outliers else None, self.count.data_ptr() if outliers else None,
            self.workspace.data_ptr(), self.workspace_bytes, self.out.data_ptr()))
        return self.out


def kernel_split_us(fn, calls=10):
    """Device time per call of each kernel (and memset) that fn launches, by torch.profiler
    (CUPTI sees the C ABI's launches too), without the L2 flush: where a cell's time goes."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    split = {}
    for event in prof.key_averages():
        if event.device_type == torch.autograd.DeviceType.CUDA and event.self_device_time_total > 0:
            split[event.key[:90]] = event.self_device_time_total / calls
    return split


def run_impl(args):
    rows = []
    lib = load_ours(args.lib) if args.impl == "ours" else None
    for N, K in [w for w in WEIGHTS if args.weights is None or f"{w[0]}x{w[1]}" in args.weights.split(",")]:
        torch.manual_seed(0)
        weight = (torch.randn(N, K, dtype=torch.float16) / K**0.5).cuda()
        bias = torch.randn(N, dtype=torch.float16).cuda()
        thresholds = [t for t in THRESHOLDS if args.thresholds is None or str(t) in args.thresholds.split(",")]
        for threshold in thresholds if args.impl != "torch" else [None]:
            module = None
            if args.impl == "upstream":
                import bitsandbytes as bnb

                module = bnb.nn.Linear8bitLt(K, N, bias=True, has_fp16_weights=False, threshold=threshold)
                module.weight = bnb.nn.Int8Params(weight.cpu(), requires_grad=False, has_fp16_weights=False)
                module.bias = torch.nn.Parameter(bias.cpu(), requires_grad=False)
                module = module.cuda()
            for batch in [b for b in BATCHES if args.batches is None or str(b) in args.batches.split(",")]:
                x = activations(batch, K)
                cells = []
                if args.impl == "ours":
                    linear = OursLinear(lib, weight, bias, threshold, batch)
                    cells.append(("ours", threshold, lambda: linear(x)))
                elif args.impl == "upstream":
                    cells.append(("upstream", threshold, lambda: module(x)))
                else:
                    fp16 = torch.nn.Linear(K, N, device="cuda", dtype=torch.float16)
                    with torch.no_grad():
                        fp16.weight.copy_(weight)
                        fp16.bias.copy_(bias)
                    cells.append(("fp16", None, lambda: fp16(x)))
                    if batch > 16:
                        a8 = torch.randint(-127, 128, (batch, K), dtype=torch.int8).cuda()
                        b8 = torch.randint(-127, 128, (N, K), dtype=torch.int8).cuda()
                        cells.append(("int_mm", None, lambda: torch._int_mm(a8, b8.t())))
                for name, thr, fn in cells:
                    with torch.no_grad():
                        eager = eager_us(fn)
                        kernel = kernel_us(fn)
                    row = dict(impl=name, N=N, K=K, batch=batch, threshold=thr, eager_us=eager, kernel_us=kernel)
                    if args.kernels:
                        with torch.no_grad():
                            row["kernels"] = kernel_split_us(fn)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    save(args.out, rows)  # a run cut by its time limit keeps what it measured
                del x
            del module
            torch.cuda.empty_cache()
    save(args.out, rows)


def save(path, rows):
    info = dict(device=torch.cuda.get_device_name(), torch=torch.__version__)
    with open(path, "w") as f:
        json.dump(dict(info=info, rows=rows), f, indent=1)


def report(paths):
    rows = []
    info = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        rows += data["rows"]
        info = data["info"]
    key = {(r["impl"], r["N"], r["K"], r["batch"], r["threshold"]): r for r in rows}
    print(f"Device: {info.get('device')}, torch {info.get('torch')}. Times in µs (eager / graph kernel); "
          "ratios are eager ÷ fp16 nn.Linear eager, kernel ÷ fp16 kernel.\n")
    print("| weight N×K | thr | batch | fp16 | int_mm | upstream | ours | ours÷fp16 eager | kernel | ours÷upstream eager |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda r, k: "n/a" if r is None or r.get(k) is None else f"{r[k]:.1f}"  # noqa: E731
    for N, K in WEIGHTS:
        for threshold in THRESHOLDS:
            for batch in BATCHES:
                fp16 = key.get(("fp16", N, K, batch, None))
                int_mm = key.get(("int_mm", N, K, batch, None))
                up = key.get(("upstream", N, K, batch, threshold))
                ours = key.get(("ours", N, K, batch, threshold))
                ratio = lambda a, b, k: "n/a" if not a or not b or a.get(k) is None or b.get(k) is None else f"{a[k] / b[k]:.2f}"  # noqa: E731
                print(f"| {N}×{K} | {threshold} | {batch} | {fmt(fp16, 'eager_us')} / {fmt(fp16, 'kernel_us')} | "
                      f"{fmt(int_mm, 'kernel_us')} | {fmt(up, 'eager_us')} / {fmt(up, 'kernel_us')} | "
                      f"{fmt(ours, 'eager_us')} / {fmt(ours, 'kernel_us')} | {ratio(ours, fp16, 'eager_us')} | "
                      f"{ratio(ours, fp16, 'kernel_us')} | {ratio(ours, up, 'eager_us')} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["ours", "upstream", "torch"])
    parser.add_argument("--lib", default="build-dev/libbitsandbytes.so")
    parser.add_argument("--out")
    parser.add_argument("--report", nargs="+")
    parser.add_argument("--weights", help="subset of WEIGHTS, e.g. 4096x4096")
    parser.add_argument("--batches", help="subset of BATCHES, e.g. 1,16")
    parser.add_argument("--thresholds", help="subset of THRESHOLDS, e.g. 6.0")
    parser.add_argument("--kernels", action="store_true", help="also each kernel's device time per call (profiler)")
    args = parser.parse_args()
    if args.report:
        report(args.report)
    else:
        run_impl(args)


if __name__ == "__main__":
    main()
