"""CPU optimizer steps: this library's bnb.optim beside upstream bitsandbytes 0.50.2.

Both workers time `optimizer.step()` of the same optimizer class over the same
float32 parameters with fixed gradients, each with its own package: ours from the
interpreter given by --ours-python (this repository installed), upstream's from
--python (a venv with torch==2.13.0, numpy, packaging and bitsandbytes==0.50.2
installed with --no-deps). Timing as benchmarks/interleaved.py describes.

Parameter sets: "dense", 4 tensors of 2048 x 2048 (16.8M elements); "lora",
64 adapters of 16 x 2048 and 2048 x 16 (4.2M elements in 128 tensors, the shape
of a QLoRA step's trainable parameters).

  python3 benchmarks/bench_cpu_optimizer.py --ours-python .venv/bin/python \\
      --python /work/.venv-upstream/bin/python --markdown benchmarks/results/cpu_optimizer.md
"""

import argparse
import os
import sys

import interleaved

OPTIMIZERS = ("AdamW8bit", "PagedAdamW8bit", "AdamW", "Lion8bit", "SGD8bit")
PARAMETER_SETS = {
    "dense": [(2048, 2048)] * 4,
    "lora": [(16, 2048), (2048, 16)] * 64,
}


def cases():
    for parameters in PARAMETER_SETS:
        for optimizer in OPTIMIZERS:
            yield {"optimizer": optimizer, "parameters": parameters}


def label(case):
    shapes = PARAMETER_SETS[case["parameters"]]
    elements = sum(rows * cols for rows, cols in shapes) / 1e6
    return f"{case['optimizer']} {case['parameters']} ({len(shapes)} tensors, {elements:.1f}M)"


def worker():
    import warnings

    import torch

    import bitsandbytes as bnb

    warnings.simplefilter("ignore")  # paged optimizers on the CPU say so once

    def prepare(case):
        generator = torch.Generator().manual_seed(0)
        parameters = []
        for rows, cols in PARAMETER_SETS[case["parameters"]]:
            p = torch.nn.Parameter(torch.randn(rows, cols, generator=generator) * 0.02)
            p.grad = torch.randn(rows, cols, generator=generator) * 1e-3
            parameters.append(p)
        kwargs = {"momentum": 0.9} if case["optimizer"].startswith("SGD") else {}
        optimizer = getattr(bnb.optim, case["optimizer"])(parameters, lr=1e-4, **kwargs)
        return optimizer.step

    interleaved.serve(prepare, f"bitsandbytes {bnb.__version__} from {os.path.dirname(bnb.__file__)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ours-python", default=sys.executable, help="interpreter with this repository installed")
    interleaved.add_arguments(parser)
    args = parser.parse_args()
    if args.worker:
        return worker()
    python = {"ours": args.ours_python, "upstream": args.python}
    interleaved.compare(args, list(cases()), label,
                        lambda kind: [python[kind], os.path.abspath(__file__), "--worker", kind])


if __name__ == "__main__":
    main()
