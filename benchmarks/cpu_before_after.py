"""Before/after table of the CPU kernels of two builds (Google Benchmark binaries of
benchmarks/bench_cpu.cpp), interleaved case by case on the same machine.

Each round runs every selected case once in the before binary and once in the after
binary (order alternating between rounds), one thread, and records the median CPU
time of the binary's repetitions; a case's time per side is the median over rounds
and, less sensitive to a busy machine (noise only ever adds time), the minimum.

    python3 benchmarks/cpu_before_after.py BEFORE_BIN AFTER_BIN [--rounds 5] [--filter REGEX]
"""

import argparse
import json
import os
import statistics
import subprocess


def run_case(binary, case):
    result = subprocess.run(
        [binary, f"--benchmark_filter=^{case}$", "--benchmark_min_time=0.05", "--benchmark_repetitions=3",
         "--benchmark_report_aggregates_only=true", "--benchmark_format=json"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, check=True)
    for entry in json.loads(result.stdout)["benchmarks"]:
        if entry.get("aggregate_name") == "median":
            return entry["cpu_time"] * {"ns": 1e-3, "us": 1.0, "ms": 1e3}[entry["time_unit"]]
    raise RuntimeError(f"no median for {case}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--filter", default="log2n:20/")
    args = parser.parse_args()
    listed = subprocess.run([args.before, "--benchmark_list_tests"], capture_output=True, text=True, check=True)
    cases = [case for case in listed.stdout.split() if args.filter in case]
    times = {case: {"before": [], "after": []} for case in cases}
    for round_index in range(args.rounds):
        for case in cases:
            sides = ("before", "after") if round_index % 2 == 0 else ("after", "before")
            for side in sides:
                times[case][side].append(run_case(getattr(args, side), case))
    print("| case | before µs (median) | after µs (median) | after/before | before µs (min) | after µs (min) | after/before |")
    print("|---|---|---|---|---|---|---|")
    ratios = {"median": [], "min": []}
    for case in cases:
        row = []
        for name, statistic in (("median", statistics.median), ("min", min)):
            before, after = statistic(times[case]["before"]), statistic(times[case]["after"])
            ratios[name].append((after / before, case))
            row += [f"{before:.1f}", f"{after:.1f}", f"{after / before:.3f}"]
        print(f"| {case} | " + " | ".join(row) + " |")
    for name, values in ratios.items():
        values.sort()
        print(f"\nafter/before ({name} over rounds): min {values[0][0]:.3f}, median {values[len(values) // 2][0]:.3f}, "
              f"max {values[-1][0]:.3f} ({values[-1][1]}) over {len(values)} cases; "
              f"more than 3% slower: {sum(ratio > 1.03 for ratio, _ in values)}")


if __name__ == "__main__":
    main()
