"""Markdown tables from two bench_cuda.py runs (ours and upstream, same GPU, same call).

    python3 benchmarks/cuda/report.py ours.json upstream.json > results.md
"""

import json
import sys
from collections import defaultdict


def load(path):
    with open(path) as handle:
        data = json.load(handle)
    table = {}
    for row in data["rows"]:
        table[(row["op"], row["shape"], row["dtype"], row["batch"])] = row
    return data["header"], table


def fmt(value, digits=1):
    return "–" if value is None else f"{value:.{digits}f}"


def kernel_us(row):
    """GPU time: the CUDA-graph replay, unless capture missed work (a replay under
    half the queued-launch time), then the queued-launch time."""
    if row is None:
        return None
    graph, queued = row.get("kernel_us"), row.get("queued_us")
    if graph is None or (queued is not None and graph < 0.5 * queued):
        return queued
    return graph


def gbs(row, key):
    if row is None:
        return None
    microseconds = kernel_us(row) if key == "kernel_us" else row.get(key)
    if microseconds is None:
        return None
    return row["bytes"] / (microseconds * 1e-6) / 1e9


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ours_header, ours = load(sys.argv[1])
    up_header, up = load(sys.argv[2]) if len(sys.argv) > 2 else ({}, {})
    out = []
    out.append(f"Device: {ours_header['device']} ({ours_header['sm_count']} SMs), torch {ours_header['torch']}.")
    out.append(f"Ours: bitsandbytes {ours_header['bitsandbytes']}; upstream: bitsandbytes "
               f"{up_header.get('bitsandbytes', 'not run')} ({up_header.get('bitsandbytes_file', '')}).")
    out.append(f"Baselines measured in each process: device-to-device copy {fmt(ours_header['copy_gbs'], 0)} GB/s "
               f"(upstream process {fmt(up_header.get('copy_gbs'), 0)}), bf16 8192³ matmul "
               f"{fmt(ours_header['bf16_tflops'], 0)} TFLOP/s (upstream process {fmt(up_header.get('bf16_tflops'), 0)}).")
    out.append(f"Method: {ours_header['method']}; eager = events around the Python call on an idle GPU "
               "(CPU overhead included), kernel = CUDA-graph replay behind the flush "
               "(or, where a graph captured less than half the work, the call queued behind the flush).")
    out.append("")
    copy = ours_header["copy_gbs"]

    quant_ops = ["dequantize_4bit nf4", "dequantize_4bit fp4", "quantize_4bit nf4", "dequantize_blockwise 8-bit",
                 "quantize_blockwise 8-bit"]
    shapes = sorted({key[1] for key in ours if key[0] in quant_ops}, key=lambda s: [int(x) for x in s.split("x")])
    if shapes:
        out.append("### Quantize / dequantize (bf16, blocksize 64 for 4-bit, 256 for 8-bit): effective GB/s "
                   "(bytes read + written)")
        out.append("")
        out.append("| op | shape | ours kernel GB/s (% of copy) | ours eager GB/s | upstream kernel GB/s | "
                   "upstream eager GB/s | ours / upstream (kernel) |")
        out.append("|---|---|---|---|---|---|---|")
        for op in quant_ops:
            for shape in shapes:
                mine = ours.get((op, shape, "bf16", None))
                theirs = up.get((op, shape, "bf16", None))
                if mine is None:
                    continue
                kernel = gbs(mine, "kernel_us")
                share = None if kernel is None else 100 * kernel / copy
                out.append(f"| {op} | {shape} | {fmt(kernel, 0)} ({fmt(share, 0)}%) | {fmt(gbs(mine, 'eager_us'), 0)} | "
                           f"{fmt(gbs(theirs, 'kernel_us'), 0)} | {fmt(gbs(theirs, 'eager_us'), 0)} | "
                           f"{fmt(ratio(kernel, gbs(theirs, 'kernel_us')), 2)}× |")
        out.append("")

    for dtype in ("bf16", "fp16"):
        keys = [key for key in ours if key[0] == "matmul_4bit" and key[2] == dtype]
        if not keys:
            continue
        out.append(f"### 4-bit matmul (`bnb.matmul_4bit`, nf4, blocksize 64, double quant), {dtype}: µs and "
                   f"ratio to {dtype} `F.linear` of the same run")
        out.append("")
        out.append("| weight N×K | batch | F.linear eager / kernel | ours eager (ratio) | ours kernel (ratio) | "
                   "upstream eager (ratio) | upstream kernel (ratio) | ours vs upstream (eager) | "
                   "weight read GB/s (ours kernel) | rel. error |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        by_shape = defaultdict(list)
        for key in keys:
            by_shape[key[1]].append(key[3])
        for shape in sorted(by_shape, key=lambda s: [int(x) for x in s.split("x")]):
            for batch in sorted(by_shape[shape]):
                dense = ours.get(("F.linear", shape, dtype, batch))
                mine = ours.get(("matmul_4bit", shape, dtype, batch))
                theirs = up.get(("matmul_4bit", shape, dtype, batch))
                dense_up = up.get(("F.linear", shape, dtype, batch))
                e, k = mine["eager_us"], kernel_us(mine)
                de, dk = dense["eager_us"], kernel_us(dense)
                te = theirs["eager_us"] if theirs else None
                tk = kernel_us(theirs)
                ude = dense_up["eager_us"] if dense_up else None
                udk = kernel_us(dense_up)
                out.append(
                    f"| {shape} | {batch} | {fmt(de)} / {fmt(dk)} | {fmt(e)} ({fmt(ratio(e, de), 2)}×) | "
                    f"{fmt(k)} ({fmt(ratio(k, dk), 2)}×) | {fmt(te)} ({fmt(ratio(te, ude), 2)}×) | "
                    f"{fmt(tk)} ({fmt(ratio(tk, udk), 2)}×) | {fmt(ratio(te, e), 2)}× faster | "
                    f"{fmt(gbs(mine, 'kernel_us'), 0)} | {mine['error']:.1e} |")
        out.append("")

    fused_keys = [key for key in ours if key[0] == "gemm_4bit fused"]
    if fused_keys:
        out.append("### Heuristic: fused kernel vs dequantize + cuBLASLt (ours, kernel µs)")
        out.append("")
        out.append("| weight N×K | dtype | batch | fused | dequantize + cuBLASLt | dequantize_4bit + F.linear | faster |")
        out.append("|---|---|---|---|---|---|---|")
        for key in sorted(fused_keys, key=lambda k: ([int(x) for x in k[1].split("x")], k[2], k[3])):
            fused = kernel_us(ours[key])
            fallback = kernel_us(ours.get(("gemm_4bit dequantize+cuBLASLt",) + key[1:]))
            torch_fallback = kernel_us(ours.get(("dequantize_4bit+F.linear",) + key[1:]))
            faster = "fused" if fused is not None and fallback is not None and fused < fallback else "dequantize"
            out.append(f"| {key[1]} | {key[2]} | {key[3]} | {fmt(fused)} | {fmt(fallback)} | {fmt(torch_fallback)} "
                       f"| {faster} |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
