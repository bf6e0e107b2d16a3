"""Optimizer steps on CUDA: bnb.optim classes of ours and of upstream 0.50.2, and torch's
fused AdamW, over the parameter sets of shared/targets.md. One implementation per
process (ours and upstream share the module name):

    PYTHONPATH=<ours> python3 benchmarks/cuda/bench_optimizer.py --impl ours --out ours.json
    PYTHONPATH=.upstream python3 benchmarks/cuda/bench_optimizer.py --impl upstream --out upstream.json
    python3 benchmarks/cuda/bench_optimizer.py --impl torch --out torch.json
    python3 benchmarks/cuda/bench_optimizer.py --report ours.json upstream.json torch.json

Parameter sets (float32 parameters and gradients):
- "dense": 8 x 4096x4096 + 3 x 11008x4096 (269.5M elements), the targets' set;
- "lora": 224 x 16x2048 + 224 x 2048x16 + 2 x 2048x2048 (23.1M elements in 450
  tensors), a QLoRA step's trainable parameters.

Method (shared/device.md): optimizer.step() between CUDA events after a synchronize
(eager, host work included: what a training loop pays), 3 warm-up steps (they create
the states and page them in), median of 20; a 256 MiB buffer is zeroed before every
repetition so that no set starts in L2. State bytes: every tensor of optimizer.state.
"""

import argparse
import json
import os
import statistics

import torch

WARMUP = 3
REPEATS = 20
PARAMETER_SETS = {
    "dense": [(4096, 4096)] * 8 + [(11008, 4096)] * 3,
    "lora": [(16, 2048)] * 224 + [(2048, 16)] * 224 + [(2048, 2048)] * 2,
}
BNB_OPTIMIZERS = ("AdamW8bit", "PagedAdamW8bit", "AdamW", "Lion8bit")
TORCH_OPTIMIZERS = ("AdamW(fused)", "AdamW(foreach)")

_flush = None


def flush_l2():
    global _flush
    if _flush is None:
        _flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    _flush.zero_()


def step_ms(step):
    for _ in range(WARMUP):
        step()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(REPEATS):
        flush_l2()
        torch.cuda.synchronize()
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def parameters_of(shapes):
    generator = torch.Generator(device="cuda").manual_seed(0)
    parameters = []
    for rows, cols in shapes:
        p = torch.nn.Parameter(torch.randn(rows, cols, device="cuda", generator=generator) * 0.02)
        p.grad = torch.randn(rows, cols, device="cuda", generator=generator) * 1e-3
        parameters.append(p)
    return parameters


def make_optimizer(impl, name, parameters):
    if impl == "torch":
        fused = name == "AdamW(fused)"
        return torch.optim.AdamW(parameters, lr=1e-4, fused=fused, foreach=not fused)
    import bitsandbytes as bnb

    return getattr(bnb.optim, name)(parameters, lr=1e-4)


def state_bytes(optimizer):
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def run_impl(args):
    names = TORCH_OPTIMIZERS if args.impl == "torch" else BNB_OPTIMIZERS
    rows = []
    for set_name, shapes in PARAMETER_SETS.items():
        if args.sets and set_name not in args.sets.split(","):
            continue
        for name in names:
            parameters = parameters_of(shapes)
            optimizer = make_optimizer(args.impl, name, parameters)
            ms = step_ms(optimizer.step)
            row = dict(impl=args.impl, optimizer=name, set=set_name, tensors=len(shapes),
                       elements=sum(r * c for r, c in shapes), step_ms=ms, state_bytes=state_bytes(optimizer),
                       peak_bytes=torch.cuda.max_memory_allocated())
            print(json.dumps(row), flush=True)
            rows.append(row)
            save(args.out, rows)  # a run cut by its time limit keeps what it measured
            del optimizer, parameters
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()


def save(path, rows):
    info = dict(device=torch.cuda.get_device_name(), torch=torch.__version__)
    if rows and rows[0]["impl"] != "torch":
        import bitsandbytes as bnb

        info["bitsandbytes"] = f"{bnb.__version__} from {os.path.dirname(bnb.__file__)}"
    with open(path, "w") as f:
        json.dump(dict(info=info, rows=rows), f, indent=1)


def report(paths):
    rows, infos = [], []
    for path in paths:
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
            rows += data["rows"]
            infos.append(data["info"])
    print("Runs: " + "; ".join(", ".join(f"{k} {v}" for k, v in info.items()) for info in infos) + "\n")
    key = {(r["impl"], r["optimizer"], r["set"]): r for r in rows}
    print("| set | optimizer | upstream ms | ours ms | ours ÷ upstream | torch fused AdamW ms | ours ÷ fused | "
          "state MB (ours / upstream) |")
    print("|---|---|---|---|---|---|---|---|")
    for set_name, shapes in PARAMETER_SETS.items():
        fused = key.get(("torch", "AdamW(fused)", set_name))
        for name in BNB_OPTIMIZERS:
            ours, up = key.get(("ours", name, set_name)), key.get(("upstream", name, set_name))
            fmt = lambda r: "n/a" if r is None else f"{r['step_ms']:.3f}"  # noqa: E731
            ratio = lambda a, b: "n/a" if a is None or b is None else f"{a['step_ms'] / b['step_ms']:.2f}"  # noqa: E731
            mb = lambda r: "n/a" if r is None else f"{r['state_bytes'] / 1e6:.0f}"  # noqa: E731
            print(f"| {set_name} ({len(shapes)} tensors) | {name} | {fmt(up)} | {fmt(ours)} | {ratio(ours, up)} | "
                  f"{fmt(fused)} | {ratio(ours, fused)} | {mb(ours)} / {mb(up)} |")
    for name in TORCH_OPTIMIZERS:
        for set_name in PARAMETER_SETS:
            r = key.get(("torch", name, set_name))
            if r:
                print(f"\ntorch {name} on {set_name}: {r['step_ms']:.3f} ms, state {r['state_bytes'] / 1e6:.0f} MB",
                      end="")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["ours", "upstream", "torch"])
    parser.add_argument("--out")
    parser.add_argument("--report", nargs="+")
    parser.add_argument("--sets", help="subset of PARAMETER_SETS, e.g. lora")
    args = parser.parse_args()
    if args.report:
        report(args.report)
    else:
        run_impl(args)


if __name__ == "__main__":
    main()
