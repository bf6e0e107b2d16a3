"""CPU LLM.int8(): this library's C ABI beside upstream bitsandbytes 0.50.2.

Two worker processes run the same cases, interleaved case by case and round by
round so that a noisy neighbour hits both alike:

  ours      bnb_int8_* of a built libbitsandbytes, called through ctypes on
            torch tensors (no Python extension needed)
  upstream  torch.ops.bitsandbytes.* of upstream 0.50.2 in its own virtual
            environment: int8_vectorwise_quant is its default (PyTorch) kernel,
            int8_linear_matmul its CPU kernel (torch._int_mm), int8_scaled_mm
            its composite of the two inner ops

Cases: quantize 4096 x 4096 fp16 at threshold 0 and 6 (activations with a few
outlier columns), int8_linear_matmul and int8_scaled_mm (fp16 out, bias) of
M x 4096 against a 4096 x 4096 weight for M in 1, 16, 256; timed as
benchmarks/interleaved.py describes (outputs allocated by the caller for ours,
by the op for upstream, as each is used).

  python3 benchmarks/bench_cpu_int8.py --library build/ctest/libbitsandbytes.so \\
      --python /work/.venv-upstream/bin/python --markdown benchmarks/results/cpu_int8.md

--python is an interpreter with torch and upstream bitsandbytes (both workers
use it; ours imports only torch): a venv with torch==2.13.0, numpy, packaging
and bitsandbytes==0.50.2 installed with --no-deps (benchmarks/results/cpu_int8.md).
"""

import argparse
import os

import interleaved

M_VALUES = (1, 16, 256)
N = K = 4096
QUANT_SHAPE = (4096, 4096)
THRESHOLDS = (0.0, 6.0)
FP16 = 1  # bnb_dtype


def cases():
    for threshold in THRESHOLDS:
        yield {"op": "int8_vectorwise_quant", "threshold": threshold, "shape": QUANT_SHAPE}
    for op in ("int8_linear_matmul", "int8_scaled_mm"):
        for m in M_VALUES:
            yield {"op": op, "M": m, "N": N, "K": K}


def label(case):
    if case["op"] == "int8_vectorwise_quant":
        return f"int8_vectorwise_quant {case['shape'][0]}x{case['shape'][1]} fp16 threshold {case['threshold']:g}"
    return f"{case['op']} M={case['M']} x {case['N']}x{case['K']}"


# ---- worker side ------------------------------------------------------------------


def _inputs(torch, case):
    generator = torch.Generator().manual_seed(0)
    if case["op"] == "int8_vectorwise_quant":
        rows, cols = case["shape"]
        a = torch.randn(rows, cols, generator=generator)
        a[:, ::512] *= 8.0  # outlier columns, as in LLM activations
        return {"A": a.half()}
    m, n, k = case["M"], case["N"], case["K"]
    return {
        "A": torch.randint(-127, 128, (m, k), dtype=torch.int8, generator=generator),
        "B": torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=generator),
        "row_stats": torch.rand(m, generator=generator) * 4 + 0.1,
        "col_stats": torch.rand(n, generator=generator) * 4 + 0.1,
        "bias": torch.randn(n, generator=generator).half(),
    }


def _ours(torch, library):
    import ctypes

    class Device(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("index", ctypes.c_int)]

    lib = ctypes.CDLL(library)
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bnb_int8_vectorwise_quant.argtypes = [Device, p, ctypes.c_int, p, i64, i64, ctypes.c_float, p, p, p, p]
    lib.bnb_int8_linear_matmul.argtypes = [Device, p, p, i64, i64, p, i64, p]
    lib.bnb_int8_scaled_mm.argtypes = [Device, p, ctypes.c_int, p, i64, i64, p, i64, p, p, ctypes.c_int, p, p, p, p,
                                       p, i64, p]
    lib.bnb_last_error.restype = ctypes.c_char_p
    lib.bnb_backend_variant.restype = ctypes.c_char_p
    cpu = Device(0, 0)

    def check(status):
        if status != 0:
            raise RuntimeError(lib.bnb_last_error().decode())

    def prepare(case, t):
        if case["op"] == "int8_vectorwise_quant":
            a = t["A"]
            rows, cols = a.shape
            threshold = case["threshold"]

            def call():
                out = torch.empty(rows, cols, dtype=torch.int8)
                stats = torch.empty(rows, dtype=torch.float32)
                outlier_cols = torch.empty(cols, dtype=torch.int64)
                count = torch.empty(1, dtype=torch.int64)
                check(lib.bnb_int8_vectorwise_quant(cpu, None, FP16, a.data_ptr(), rows, cols, threshold,
                                                    out.data_ptr(), stats.data_ptr(), outlier_cols.data_ptr(),
                                                    count.data_ptr()))
                return out
            return call
        a, b = t["A"], t["B"]
        m, k = a.shape
        n = b.shape[0]
        if case["op"] == "int8_linear_matmul":
            def call():
                out = torch.empty(m, n, dtype=torch.int32)
                check(lib.bnb_int8_linear_matmul(cpu, None, a.data_ptr(), m, k, b.data_ptr(), n, out.data_ptr()))
                return out
            return call

        def call():
            out = torch.empty(m, n, dtype=torch.float16)
            check(lib.bnb_int8_scaled_mm(cpu, None, FP16, a.data_ptr(), m, k, b.data_ptr(), n,
                                         t["row_stats"].data_ptr(), t["col_stats"].data_ptr(), FP16,
                                         t["bias"].data_ptr(), None, None, None, None, 0, out.data_ptr()))
            return out
        return call

    return prepare, "path " + lib.bnb_backend_variant(0).decode()


def _upstream(torch):
    import bitsandbytes  # noqa: F401  (registers torch.ops.bitsandbytes)

    ops = torch.ops.bitsandbytes

    def prepare(case, t):
        if case["op"] == "int8_vectorwise_quant":
            return lambda: ops.int8_vectorwise_quant(t["A"], case["threshold"])
        if case["op"] == "int8_linear_matmul":
            return lambda: ops.int8_linear_matmul(t["A"], t["B"])
        return lambda: ops.int8_scaled_mm(t["A"], t["B"], t["row_stats"], t["col_stats"], t["bias"], torch.float16)

    return prepare, "upstream " + bitsandbytes.__version__


def worker(kind, library):
    import torch

    prepare, description = _ours(torch, library) if kind == "ours" else _upstream(torch)
    interleaved.serve(lambda case: prepare(case, _inputs(torch, case)), description)


# ---- driver side --------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", default="build/ctest/libbitsandbytes.so")
    interleaved.add_arguments(parser)
    args = parser.parse_args()
    library = os.path.abspath(args.library)
    if args.worker:
        return worker(args.worker, library)
    interleaved.compare(args, list(cases()), label,
                        lambda kind: [args.python, os.path.abspath(__file__), "--worker", kind, "--library", library])


if __name__ == "__main__":
    main()
