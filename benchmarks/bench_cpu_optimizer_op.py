"""One CPU optimizer op, this library's C ABI beside upstream bitsandbytes 0.50.2's
torch op, in one process (upstream's interpreter), the two interleaved run by run
so that the load of a shared machine falls on both alike; medians are printed.

  /work/.venv-upstream/bin/python benchmarks/bench_cpu_optimizer_op.py \\
      --library build/ctest/libbitsandbytes.so [--baseline build/base/libbitsandbytes.so] --log2n 20 24
"""

import argparse
import ctypes
import statistics
import time

import torch

import bitsandbytes  # noqa: F401  (registers torch.ops.bitsandbytes)
import bitsandbytes.functional as F


class Tensor(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("g", ctypes.c_void_p), ("p", ctypes.c_void_p),
                ("state1", ctypes.c_void_p), ("state2", ctypes.c_void_p),
                ("absmax1", ctypes.c_void_p), ("absmax2", ctypes.c_void_p),
                ("unorm_vec", ctypes.c_void_p), ("param_norm", ctypes.c_float)]


class Hparams(ctypes.Structure):
    _fields_ = [("beta1", ctypes.c_float), ("beta2", ctypes.c_float), ("beta3", ctypes.c_float),
                ("alpha", ctypes.c_float), ("eps", ctypes.c_float), ("weight_decay", ctypes.c_float),
                ("lr", ctypes.c_float), ("gnorm_scale", ctypes.c_float), ("max_unorm", ctypes.c_float),
                ("step", ctypes.c_int64), ("skip_zeros", ctypes.c_int)]


def make_case(n, blockwise):
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(n, generator=generator) * 1e-3
    p = torch.randn(n, generator=generator) * 0.02
    blocks = (n + 255) // 256
    if blockwise:
        s1, s2 = torch.zeros(n, dtype=torch.uint8), torch.zeros(n, dtype=torch.uint8)
    else:
        s1, s2 = torch.zeros(n), torch.zeros(n)
    return g, p, s1, s2, torch.zeros(blocks), torch.zeros(blocks)


def upstream_step(blockwise, n):
    g, p, s1, s2, a1, a2 = make_case(n, blockwise)
    qmap1, qmap2 = F.create_dynamic_map(signed=True), F.create_dynamic_map(signed=False)
    step = [0]

    def run():
        step[0] += 1
        if blockwise:
            torch.ops.bitsandbytes.optimizer_update_8bit_blockwise(
                "adam", g, p, s1, s2, 0.9, 0.999, 0.0, 0.0, 1e-8, step[0], 1e-3, qmap1, qmap2, a1, a2, 0.0, 1.0,
                False)
        else:
            torch.ops.bitsandbytes.optimizer_update_32bit(
                "adam", g, p, s1, s2, None, 0.0, 0.0, 0.9, 0.999, 0.0, 0.0, 1e-8, 0.0, step[0], 1e-3, 1.0, False)

    return run


def ours_step(lib, blockwise, n):
    g, p, s1, s2, a1, a2 = make_case(n, blockwise)
    qmap1, qmap2 = F.create_dynamic_map(signed=True), F.create_dynamic_map(signed=False)
    keep = (g, p, s1, s2, a1, a2, qmap1, qmap2)
    tensor = Tensor(n, g.data_ptr(), p.data_ptr(), s1.data_ptr(), s2.data_ptr(), a1.data_ptr(), a2.data_ptr(),
                    None, 0.0)
    h = Hparams(0.9, 0.999, 0.0, 0.0, 1e-8, 0.0, 1e-3, 1.0, 0.0, 0, 0)

    def run():
        h.step += 1
        if blockwise:
            status = lib.bnb_optimizer_update_8bit_blockwise(0, None, 0, 0, ctypes.byref(tensor), 1,
                                                             ctypes.c_void_p(qmap1.data_ptr()),
                                                             ctypes.c_void_p(qmap2.data_ptr()), ctypes.byref(h))
        else:
            status = lib.bnb_optimizer_update_32bit(0, None, 0, 0, ctypes.byref(tensor), 1, ctypes.byref(h))
        assert status == 0, status
        assert keep

    return run


def timed(run, inner):
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(inner):
        run()
    return (time.perf_counter() - start) / inner * 1e3, (time.process_time() - cpu) / inner * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", default="build/ctest/libbitsandbytes.so")
    parser.add_argument("--baseline", help="another build of this library (say, before a change), timed as 'before'")
    parser.add_argument("--log2n", type=int, nargs="+", default=[20, 24])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--ops", nargs="+", default=["8bit", "32bit"])
    parser.add_argument("--skip-upstream", action="store_true")
    args = parser.parse_args()
    lib = ctypes.CDLL(args.library)
    baseline = ctypes.CDLL(args.baseline) if args.baseline else None
    print(f"torch threads {torch.get_num_threads()}")
    for op in args.ops:
        for log2n in args.log2n:
            n = 1 << log2n
            blockwise = op == "8bit"
            runs = {"ours": ours_step(lib, blockwise, n)}
            if baseline is not None:
                runs["before"] = ours_step(baseline, blockwise, n)
            if not args.skip_upstream:
                runs["upstream"] = upstream_step(blockwise, n)
            inner = max(1, (1 << 22) // n)
            for run in runs.values():
                run()  # warm-up
            real = {name: [] for name in runs}
            cpu = {name: [] for name in runs}
            for _ in range(args.repeats):
                for name, run in runs.items():
                    r, c = timed(run, inner)
                    real[name].append(r)
                    cpu[name].append(c)
            line = f"{op} adam n=2^{log2n}:"
            for name in runs:
                line += f"  {name} {statistics.median(real[name]):8.3f} ms real {statistics.median(cpu[name]):8.3f} ms cpu"
            if "upstream" in runs:
                line += f"  speedup {statistics.median(real['upstream']) / statistics.median(real['ours']):.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
