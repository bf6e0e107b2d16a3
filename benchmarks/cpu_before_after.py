"""Before/after table of the CPU kernels of two builds (Google Benchmark binaries of
benchmarks/bench_cpu.cpp), interleaved case by case on the same machine.

Each round runs every selected case once in the before binary and once in the after
binary (order alternating between rounds), one thread, and records the median CPU
time of the binary's repetitions; a case's time per side is the median over rounds.

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
    print("| case | before µs | after µs | after/before |")
    print("|---|---|---|---|")
    ratios = []
    for case in cases:
        before, after = statistics.median(times[case]["before"]), statistics.median(times[case]["after"])
        ratios.append((after / before, case))
        print(f"| {case} | {before:.1f} | {after:.1f} | {after / before:.3f} |")
    ratios.sort()
    print(f"\nafter/before: min {ratios[0][0]:.3f}, median {ratios[len(ratios) // 2][0]:.3f}, "
          f"max {ratios[-1][0]:.3f} ({ratios[-1][1]}) over {len(ratios)} cases; "
          f"more than 3% slower: {sum(ratio > 1.03 for ratio, _ in ratios)}")


if __name__ == "__main__":
    main()
