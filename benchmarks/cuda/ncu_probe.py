"""One call of each CUDA kernel family, for Nsight Compute to read (ncu replays each
launch itself, with caches flushed). Runs against whichever `bitsandbytes` is
importable, like bench_cuda.py:

    ncu --clock-control none --section SpeedOfLight --section Occupancy \
        --section WarpStateStats python3 benchmarks/cuda/ncu_probe.py

Weights nf4, blocksize 64, double quantization, bf16, as in bench_cuda.py's matmul rows.
"""

import sys

import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F

SHAPES = [(4096, 4096), (28672, 8192)]
BATCHES = [int(b) for b in (sys.argv[1].split(",") if len(sys.argv) > 1 else ["1", "4", "16"])]


def main():
    torch.manual_seed(0)
    for n, k in SHAPES:
        weight = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        packed, state = F.quantize_4bit(weight, blocksize=64, quant_type="nf4", compress_statistics=True)
        F.dequantize_4bit(packed, state)
        F.quantize_blockwise(weight, blocksize=256)
        for batch in BATCHES:
            A = torch.randn(batch, k, device="cuda", dtype=torch.bfloat16)
            bnb.matmul_4bit(A, packed.t(), quant_state=state)
        torch.nn.functional.linear(torch.randn(1, k, device="cuda", dtype=torch.bfloat16), weight)
    torch.cuda.synchronize()
    print("probe done")


if __name__ == "__main__":
    main()
