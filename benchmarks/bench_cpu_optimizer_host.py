"""Host time of bnb.optim step() over many tiny CPU tensors, two builds side by side.

The LoRA-shaped set of benchmarks/RESULTS.md (448 adapters plus 2 square tensors, 450
in all) shrunk to tiny tensors, 4 x 64 and 64 x 4 plus 2 x 64 x 64, with
min_8bit_size=0 so that the 8-bit classes keep 8-bit states as on the full-size set:
the kernels' work is then small and step() measures mostly the host-side work per
parameter (Python, the op's argument conversion and checks), which on a GPU is what
stands between the kernel time and the step time. --shapes empty gives the same
tensors with no elements: the host-side work alone. Gradients are fresh tensor
objects at every step (as after zero_grad(set_to_none=True)) and are assigned
outside the timed region; one torch thread.

Each side is a package directory on PYTHONPATH (e.g. a `git worktree` of an older
commit with the native files copied in); the two worker processes run case by case
and round by round in turn, as benchmarks/interleaved.py describes, and the table
gives the median over all steps.

  python3 benchmarks/bench_cpu_optimizer_host.py --before /tmp/before/python --after python \\
      [--python .venv/bin/python] [--markdown out.md]
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interleaved  # noqa: E402

OPTIMIZERS = ("AdamW8bit", "PagedAdamW8bit", "AdamW", "Lion8bit")
SHAPE_SETS = {
    "tiny": [(4, 64), (64, 4)] * 224 + [(64, 64)] * 2,
    # No elements: the ops check every tensor and return before any kernel, so the
    # step time is the host-side work alone.
    "empty": [(0, 64), (64, 0)] * 224 + [(0, 64)] * 2,
}


def worker(shapes):
    import warnings

    import torch

    import bitsandbytes as bnb

    warnings.simplefilter("ignore")  # paged optimizers on the CPU say so once
    torch.set_num_threads(1)
    print(json.dumps({"ready": f"bitsandbytes from {os.path.dirname(bnb.__file__)}"}), flush=True)
    optimizer = params = gradient_sets = None
    steps = 0
    for line in sys.stdin:
        request = json.loads(line)
        if "case" in request:
            generator = torch.Generator().manual_seed(0)
            params = [torch.nn.Parameter(torch.randn(shape, generator=generator) * 0.02) for shape in shapes]
            gradient_sets = [[torch.randn(shape, generator=generator) * 1e-3 for shape in shapes] for _ in range(2)]
            optimizer = getattr(bnb.optim, request["case"])(params, lr=1e-4, min_8bit_size=0)
            steps = 0
            request = {"calls": request["warmup"]}
        seconds = []
        for _ in range(request["calls"]):
            for p, g in zip(params, gradient_sets[steps % 2]):
                p.grad = g.clone()  # a new object, as autograd makes one
            start = time.perf_counter()
            optimizer.step()
            seconds.append(time.perf_counter() - start)
            steps += 1
        print(json.dumps({"seconds": seconds}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="PYTHONPATH of the first build")
    parser.add_argument("--after", help="PYTHONPATH of the second build")
    parser.add_argument("--python", default=sys.executable, help="interpreter with torch")
    parser.add_argument("--shapes", choices=list(SHAPE_SETS), default="tiny")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10, help="steps per burst")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds of pause before each burst")
    parser.add_argument("--markdown")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(SHAPE_SETS[args.shapes])
    if not (args.before and args.after):
        parser.error("--before and --after are required")

    def start(path):
        return interleaved.Worker(["env", f"PYTHONPATH={os.path.abspath(path)}", args.python,
                                   os.path.abspath(__file__), "--worker", "--shapes", args.shapes])

    sides = {"before": start(args.before), "after": start(args.after)}
    rows = []
    count = len(SHAPE_SETS[args.shapes])
    for case in OPTIMIZERS:
        for w in sides.values():
            w.ask({"case": case, "warmup": 5})
        times = {side: [] for side in sides}
        for round_index in range(args.rounds):
            order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
            for side in order:
                time.sleep(args.gap)
                times[side] += sides[side].ask({"calls": args.steps})["seconds"]
        before, after = (statistics.median(times[side]) * 1e6 for side in ("before", "after"))
        rows.append((case, before, after))
        print(f"{case:16s} before {before:8.1f} us  after {after:8.1f} us  "
              f"({before / count * 1e3:6.0f} -> {after / count * 1e3:6.0f} ns per parameter)", flush=True)
    for w in sides.values():
        w.close()
    if args.markdown:
        lines = [f"before: {sides['before'].info['ready']}; after: {sides['after'].info['ready']}; "
                 f"{count} {args.shapes} tensors, median of {args.rounds * args.steps} steps per side", "",
                 "| optimizer | before µs/step | after µs/step | after ÷ before |", "|---|---:|---:|---:|"]
        lines += [f"| {case} | {b:.1f} | {a:.1f} | {a / b:.2f} |" for case, b, a in rows]
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
