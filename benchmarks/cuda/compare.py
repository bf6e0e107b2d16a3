"""Before/after table of two builds of this library measured in one device call.

Each side may have several runs of bench_cuda.py (alternated with the other side's
on the same machine); a row's time per side is the smallest of its runs' medians,
so that a run disturbed by the host counts less. A row is flagged when the after
build is more than 3% slower than the before build in both eager and kernel time.

    python3 benchmarks/cuda/compare.py --before b1.json b2.json --after a1.json a2.json
"""

import argparse
import json


def best_times(paths):
    best = {}
    for path in paths:
        for row in json.load(open(path))["rows"]:
            if row["op"] == "F.linear":
                continue
            key = (row["op"], row["shape"], row["dtype"], row["batch"])
            for field in ("eager_us", "kernel_us"):
                value = row.get(field)
                if value is None:
                    continue
                entry = best.setdefault(key, {})
                entry[field] = min(entry.get(field, value), value)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", nargs="+", required=True)
    parser.add_argument("--after", nargs="+", required=True)
    args = parser.parse_args()
    before, after = best_times(args.before), best_times(args.after)
    print("| op | shape | dtype | batch | eager before / after µs | ratio | kernel before / after µs | ratio | |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = {"eager_us": [], "kernel_us": []}
    slower = 0
    for key in sorted(before, key=str):
        if key not in after:
            continue
        cells, flags = [], []
        for field in ("eager_us", "kernel_us"):
            b, a = before[key].get(field), after[key].get(field)
            if b is None or a is None:
                cells.append("n/a | ")
                continue
            ratio = a / b
            ratios[field].append(ratio)
            flags.append(ratio > 1.03)
            cells.append(f"{b:.1f} / {a:.1f} | {ratio:.3f}")
        flagged = bool(flags) and all(flags)
        slower += flagged
        op, shape, dtype, batch = key
        print(f"| {op} | {shape} | {dtype} | {batch if batch is not None else ''} | "
              f"{cells[0]} | {cells[1]} | {'SLOWER' if flagged else ''} |")
    for field, values in ratios.items():
        if values:
            values.sort()
            print(f"\n{field}: after/before min {values[0]:.3f}, median {values[len(values) // 2]:.3f}, "
                  f"max {values[-1]:.3f} over {len(values)} rows")
    print(f"rows more than 3% slower in both eager and kernel time: {slower}")


if __name__ == "__main__":
    main()
