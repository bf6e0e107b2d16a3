"""CPU 4-bit matmul: the native bnb_gemm_4bit beside dequantize + torch linear.

Calls the C ABI of a built libbitsandbytes through ctypes (no Python extension
needed) on torch tensors:

  native       bnb_gemm_4bit (AUTO, workspace as bnb_gemm_4bit_workspace_size says)
  dequant+lin  bnb_dequantize_4bit into A's dtype, then torch.nn.functional.linear:
               the path the CPU took before it had a native kernel
  linear       torch.nn.functional.linear alone on the already dequantized weight

Weights nf4, blocksize 64, plain absmax. Each case: warm-up calls, then the three
variants interleaved round by round (a noisy neighbour hits all alike) until a
minimum count and time; the median of time.perf_counter around each call.

  PATH=/work/main/.venv/bin:$PATH python benchmarks/bench_cpu_gemm_4bit.py \\
      --library build/dev/libbitsandbytes.so
"""

import argparse
import ctypes
import statistics
import time

import torch

DTYPES = {"bf16": (torch.bfloat16, 2), "fp32": (torch.float32, 0)}  # bnb_dtype values
ROWS = (1, 16, 256)
WEIGHTS = ((4096, 4096), (4096, 11008))  # [N, K]
BLOCKSIZE = 64
NF4 = 0
CPU = (0, 0)


class Device(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("index", ctypes.c_int)]


def load(path):
    lib = ctypes.CDLL(path)
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bnb_quantize_4bit.argtypes = [Device, p, ctypes.c_int, ctypes.c_int, p, i64, i64, p, p]
    lib.bnb_dequantize_4bit.argtypes = [Device, p, ctypes.c_int, ctypes.c_int, p, p, i64, i64, p]
    lib.bnb_gemm_4bit.argtypes = [Device, p, ctypes.c_int, ctypes.c_int, p, i64, i64, p, i64, i64, p, p, p, p, p,
                                  ctypes.c_int, p, i64, p]
    lib.bnb_gemm_4bit_workspace_size.argtypes = [Device, ctypes.c_int, i64, i64, i64, i64, ctypes.c_int,
                                                 ctypes.c_int, ctypes.POINTER(i64)]
    lib.bnb_last_error.restype = ctypes.c_char_p
    return lib


def check(lib, status):
    if status != 0:
        raise RuntimeError(lib.bnb_last_error().decode())


def aligned_workspace(nbytes):
    storage = torch.empty(nbytes + 256, dtype=torch.uint8)
    offset = (-storage.data_ptr()) % 256
    return storage, storage.data_ptr() + offset


def measure(calls, min_rounds, min_seconds):
    for call in calls:
        call()
    times = [[] for _ in calls]
    start = time.perf_counter()
    while len(times[0]) < min_rounds or time.perf_counter() - start < min_seconds:
        for call, samples in zip(calls, times):
            t0 = time.perf_counter()
            call()
            samples.append(time.perf_counter() - t0)
    return [statistics.median(samples) for samples in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", required=True)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--rows", nargs="+", type=int, default=list(ROWS))
    parser.add_argument("--weights", nargs="+", default=[f"{n}x{k}" for n, k in WEIGHTS], help="NxK ...")
    args = parser.parse_args()
    lib = load(args.library)
    device = Device(*CPU)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| dtype | W [N, K] | M | native ms | dequant+linear ms | linear ms | speed-up vs dequant+linear |"
          " native error |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype_name in args.dtypes:
        dtype, bnb_dtype = DTYPES[dtype_name]
        for N, K in (tuple(int(x) for x in shape.split("x")) for shape in args.weights):
            weight = torch.randn(N, K, dtype=torch.float32)
            packed = torch.empty((N * K + 1) // 2, dtype=torch.uint8)
            absmax = torch.empty(-(-N * K // BLOCKSIZE), dtype=torch.float32)
            check(lib, lib.bnb_quantize_4bit(device, None, NF4, 0, weight.data_ptr(), N * K, BLOCKSIZE,
                                             packed.data_ptr(), absmax.data_ptr()))
            dequantized = torch.empty(N, K, dtype=dtype)

            def dequantize():
                check(lib, lib.bnb_dequantize_4bit(device, None, NF4, bnb_dtype, packed.data_ptr(),
                                                   absmax.data_ptr(), N * K, BLOCKSIZE, dequantized.data_ptr()))
                return dequantized

            dequantize()
            for M in args.rows:
                A = torch.randn(M, K, dtype=torch.float32).to(dtype)
                out = torch.empty(M, N, dtype=dtype)
                nbytes = ctypes.c_int64()
                check(lib, lib.bnb_gemm_4bit_workspace_size(device, bnb_dtype, M, N, K, BLOCKSIZE, 0, 0,
                                                            ctypes.byref(nbytes)))
                _storage, workspace = aligned_workspace(nbytes.value)

                def native():
                    check(lib, lib.bnb_gemm_4bit(device, None, bnb_dtype, NF4, A.data_ptr(), M, K, packed.data_ptr(),
                                                 N, BLOCKSIZE, absmax.data_ptr(), None, None, None, None, 0,
                                                 workspace, nbytes.value, out.data_ptr()))

                native()
                reference = torch.nn.functional.linear(A.double(), dequantize().double())
                error = ((out.double() - reference).norm() / reference.norm()).item()
                native_s, path_s, linear_s = measure(
                    [native, lambda: torch.nn.functional.linear(A, dequantize()),
                     lambda: torch.nn.functional.linear(A, dequantized)],
                    min_rounds=5, min_seconds=args.min_seconds)
                print(f"| {dtype_name} | {N}x{K} | {M} | {native_s * 1e3:.2f} | {path_s * 1e3:.2f} | "
                      f"{linear_s * 1e3:.2f} | {path_s / native_s:.2f}x | {error:.1e} |", flush=True)


if __name__ == "__main__":
    main()
