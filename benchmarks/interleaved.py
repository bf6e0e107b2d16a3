"""Side-by-side CPU timing of two worker processes (ours and upstream), shared by
the bench_cpu_*.py scripts.

The workers run the same cases, interleaved case by case and round by round, so
that a noisy neighbour hits both alike. Each case: warm-up calls, then rounds in
which each worker in turn makes a burst of back-to-back calls (about
--burst-seconds, at least 3), as a training or inference loop does, after a pause
(--gap) in which the other worker's OpenMP threads, which spin for a while after a
parallel region, go to sleep; the result is the median over all calls of
time.perf_counter around one call.

A script supplies `cases()`, `label(case)` and, per worker kind, a function
returning (prepare, description): prepare(case) builds the case's inputs and
returns the call to time.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def add_arguments(parser):
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the upstream worker (torch + bitsandbytes 0.50.2)")
    parser.add_argument("--min-rounds", type=int, default=10)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds of pause before each burst")
    parser.add_argument("--burst-seconds", type=float, default=0.02)
    parser.add_argument("--markdown")
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def serve(prepare, description):
    """The worker's side: answer the driver's requests on stdin/stdout."""
    import torch

    print(json.dumps({"ready": description, "threads": torch.get_num_threads()}), flush=True)
    call = None
    for line in sys.stdin:
        request = json.loads(line)
        if "case" in request:
            call = prepare(request["case"])
            for _ in range(request["warmup"]):
                call()
            print(json.dumps({"prepared": True}), flush=True)
        else:
            seconds = []
            for _ in range(request["calls"]):
                start = time.perf_counter()
                call()
                seconds.append(time.perf_counter() - start)
            print(json.dumps({"seconds": seconds}), flush=True)


class Worker:
    def __init__(self, argv):
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self.receive()

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("worker exited")
        return json.loads(line)

    def ask(self, request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def compare(args, cases, label, worker_argv):
    """Times every case on both workers; worker_argv(kind) is the command of one.

    Prints a line per case and, with --markdown, writes the table."""
    workers = {kind: Worker(worker_argv(kind)) for kind in ("ours", "upstream")}
    rows = []
    for case in cases:
        for w in workers.values():
            w.ask({"case": case, "warmup": 3})
        times = {kind: [] for kind in workers}
        bursts = {kind: 1 for kind in workers}
        start = time.perf_counter()
        rounds = 0
        while rounds < args.min_rounds or time.perf_counter() - start < args.min_seconds:
            for kind, w in workers.items():
                time.sleep(args.gap)
                seconds = w.ask({"run": True, "calls": bursts[kind]})["seconds"]
                times[kind] += seconds
                bursts[kind] = max(3, int(args.burst_seconds / statistics.median(seconds)))
            rounds += 1
        medians = {kind: statistics.median(values) * 1e3 for kind, values in times.items()}
        rows.append((label(case), medians["ours"], medians["upstream"], len(times["ours"]), len(times["upstream"])))
        print(f"{rows[-1][0]:58s} ours {medians['ours']:9.3f} ms  upstream {medians['upstream']:9.3f} ms  "
              f"x{medians['upstream'] / medians['ours']:.1f}", flush=True)
    for w in workers.values():
        w.close()

    if args.markdown:
        lines = [
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; ours: "
            f"{workers['ours'].info['ready']}, {workers['upstream'].info['ready']} with torch threads "
            f"{workers['upstream'].info['threads']}",
            "",
            "| case | ours (ms) | upstream (ms) | upstream / ours | calls ours / upstream |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| {name} | {ours:.3f} | {up:.3f} | {up / ours:.1f} | {n} / {m} |" for name, ours, up, n, m in rows]
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    return rows
