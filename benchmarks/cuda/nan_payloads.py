"""The bit patterns a library writes where its output is NaN or overflows, per op and dtype.

Runs against whichever `bitsandbytes` is importable (ours, or upstream 0.50.2 with
PYTHONPATH=.upstream), on CUDA when present, else on the CPU; prints one line per case:
the op, the output dtype, and the distinct 16-bit patterns of its non-finite outputs.
Used to pin the payload every backend must write (docs/numerics.md).

    python3 benchmarks/cuda/nan_payloads.py [device]
"""

import sys

import torch

import bitsandbytes.functional as F


def patterns(tensor):
    bits = tensor.contiguous().view(torch.int16).to(torch.int32) & 0xFFFF
    bad = ~torch.isfinite(tensor)
    return sorted({f"0x{value:04x}" for value in bits[bad].tolist()})


def main():
    device = sys.argv[1] if len(sys.argv) > 1 else ("cuda" if torch.cuda.is_available() else "cpu")
    values = torch.tensor([float("nan"), -float("nan"), float("inf"), -float("inf"), 1.0, -2.0, 0.0, 3e38] * 8)
    for dtype in (torch.bfloat16, torch.float16):
        A = values.to(device, torch.float32).to(dtype)
        for quant_type in ("nf4", "fp4"):
            packed, state = F.quantize_4bit(A, blocksize=64, quant_type=quant_type)
            print(device, f"quantize+dequantize_4bit {quant_type}", dtype, patterns(F.dequantize_4bit(packed, state)))
        codes, state = F.quantize_blockwise(A, blocksize=64)
        print(device, "quantize+dequantize_blockwise", dtype, patterns(F.dequantize_blockwise(codes, state)))
        # NaN and huge absmax given directly: the dequantize alone.
        packed, state = F.quantize_4bit(torch.ones(64, device=device, dtype=dtype), blocksize=64)
        for absmax in (float("nan"), 1e30):
            state.absmax = torch.full_like(state.absmax, absmax)
            print(device, f"dequantize_4bit absmax={absmax}", dtype, patterns(F.dequantize_4bit(packed, state)))


if __name__ == "__main__":
    main()
