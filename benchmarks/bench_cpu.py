"""CPU quantize/dequantize throughput: this library beside upstream bitsandbytes
0.50.2 and the pure-torch path, measured in one run on one machine.

Three worker processes run the same cases, interleaved case by case so that a
noisy neighbour hits all three alike:

  ours      torch.ops.bitsandbytes.* of this library (the C++ CPU backend)
  upstream  torch.ops.bitsandbytes.* of upstream 0.50.2 from its own virtual
            environment (never imported into the same process as ours)
  torch     this library's pure-torch kernels (bitsandbytes/backends/torch/)
  ours_avx2 (with --avx2) this library again with BNB_CPU_ISA=avx2, as on a CPU
            without AVX-512

Each case: warm-up calls, then repetitions until both a minimum count and a
minimum time are reached; time.perf_counter around the op call only (output
allocation included, as users meet it); the median is reported. Throughput is
bytes read plus bytes written (input, codes, absmax, output) over the median.

  PYTHONPATH=build-cpu/python .venv/bin/python benchmarks/bench_cpu.py \\
      --upstream-python .venv-upstream/bin/python --markdown results.md

The upstream environment is a plain venv with torch==2.13.0 and
bitsandbytes==0.50.2 installed from PyPI (benchmarks/RESULTS.md).
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SIZES = {"1M": 1 << 20, "4M": 1 << 22, "16M": 1 << 24, "64M": 1 << 26}
DTYPES = ("float32", "float16", "bfloat16")
# (op, blocksize, quant_type): 8-bit at blocksizes 256 and 4096, 4-bit at 64.
OPS = (
    ("quantize_blockwise", 256, None),
    ("quantize_blockwise", 4096, None),
    ("dequantize_blockwise", 256, None),
    ("dequantize_blockwise", 4096, None),
    ("quantize_4bit", 64, "nf4"),
    ("quantize_4bit", 64, "fp4"),
    ("dequantize_4bit", 64, "nf4"),
    ("dequantize_4bit", 64, "fp4"),
)
IMPLEMENTATIONS = ("ours", "upstream", "torch", "ours_avx2")


# ---- worker side (runs in a subprocess; imports exactly one bitsandbytes) ------------


def _bytes_moved(op, n, itemsize, blocksize):
    blocks = -(-n // blocksize)
    codes = n if op.endswith("blockwise") else (n + 1) // 2
    return n * itemsize + codes + 4 * blocks


def _digest(tensors):
    digest = hashlib.sha1()
    for tensor in tensors:
        digest.update(tensor.contiguous().view(-1).view(__import__("torch").uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _native_cpu_isa(package):
    """The CPU path of this library's native kernels (bnb_backend_variant of the C library)."""
    import ctypes
    import glob

    for path in sorted(glob.glob(os.path.join(os.path.dirname(package.__file__), "libbitsandbytes.so*"))):
        library = ctypes.CDLL(path)  # the copy _C already loaded: same handle
        if hasattr(library, "bnb_backend_variant"):
            library.bnb_backend_variant.restype = ctypes.c_char_p
            return library.bnb_backend_variant(0).decode()
    return "unknown"


def _worker(implementation):
    import torch

    import bitsandbytes
    from bitsandbytes.functional import create_dynamic_map

    isa = _native_cpu_isa(bitsandbytes) if implementation.startswith("ours") else "upstream's own"
    if implementation == "ours_avx2" and isa != "avx2":
        raise RuntimeError(f"BNB_CPU_ISA=avx2 did not take effect (the library reports {isa})")
    if implementation == "torch":
        from types import SimpleNamespace

        from bitsandbytes.backends.torch import KERNELS

        ops = SimpleNamespace(**{name: kernel for name, kernel in KERNELS.items() if "." not in name})
    else:
        ops = torch.ops.bitsandbytes
    native = torch.ops.bitsandbytes  # prepares dequantization inputs fast in every worker
    code = create_dynamic_map(signed=True)
    print(json.dumps({"ready": implementation, "version": getattr(bitsandbytes, "__version__", "?"),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "file": bitsandbytes.__file__, "isa": isa}), flush=True)
    call = None
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "load":
            case = command["case"]
            dtype = getattr(torch, case["dtype"])
            n, blocksize, quant_type, op = case["n"], case["blocksize"], case["quant_type"], case["op"]
            generator = torch.Generator().manual_seed(1234)
            A = torch.randn(n, generator=generator, dtype=torch.float32).to(dtype)
            if op == "quantize_blockwise":
                call = lambda: ops.quantize_blockwise(A, code, blocksize)  # noqa: E731
            elif op == "dequantize_blockwise":
                q, absmax = native.quantize_blockwise(A, code, blocksize)
                call = lambda: ops.dequantize_blockwise(q, absmax, code, blocksize, dtype)  # noqa: E731
            elif op == "quantize_4bit":
                call = lambda: ops.quantize_4bit(A, blocksize, quant_type, torch.uint8)  # noqa: E731
            else:
                packed, absmax = native.quantize_4bit(A, blocksize, quant_type, torch.uint8)
                call = lambda: ops.dequantize_4bit(packed, absmax, blocksize, quant_type, [n], dtype)  # noqa: E731
            result = call()  # warm-up (first touch, lazy initialisation, torch.compile if any)
            digest = _digest(result if isinstance(result, tuple) else (result,))
            del result
            start = time.perf_counter()
            call()
            single = time.perf_counter() - start
            reply = {"single_s": single, "digest": digest, "bytes": _bytes_moved(op, n, A.element_size(), blocksize)}
        elif command["cmd"] == "time":
            times = []
            for _ in range(command["reps"]):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            reply = {"times": times}
        else:  # unload
            call = A = q = packed = absmax = None
            reply = {}
        print(json.dumps(reply), flush=True)


# ---- driver side ---------------------------------------------------------------------


def _cpu_jiffies():
    """(all jiffies, busy jiffies) of the whole machine since boot."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return sum(fields), sum(fields) - fields[3] - fields[4]  # less idle and iowait


def _process_jiffies(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total


class OthersLoad:
    """Share of the machine's cores that processes other than ours kept busy
    between start() and stop()."""

    def __init__(self, pids):
        self.pids = pids

    def start(self):
        self.start_all, self.start_busy = _cpu_jiffies()
        self.start_ours = _process_jiffies(self.pids)

    def stop(self):
        all_jiffies, busy = _cpu_jiffies()
        ours = _process_jiffies(self.pids)
        others = (busy - self.start_busy) - (ours - self.start_ours)
        return max(0.0, others / max(all_jiffies - self.start_all, 1))


def _wait_for_quiet(load, threshold, max_wait):
    """Waits (up to max_wait s) until other processes use less than `threshold`
    of the cores over half a second."""
    deadline = time.monotonic() + max_wait
    while True:
        load.start()
        time.sleep(0.5)
        if load.stop() <= threshold or time.monotonic() > deadline:
            return


def _measure(case, workers, args):
    """Loads the case in every worker, then times them in alternating rounds
    until each has its repetitions: at least --min-reps, more for fast calls (up
    to --min-seconds), fewer (>= 3) for calls slower than --max-seconds / --min-reps."""
    loaded = {name: worker.request({"cmd": "load", "case": case}) for name, worker in workers.items()}
    wanted = {}
    for name, info in loaded.items():
        single = max(info["single_s"], 1e-9)
        if single * args.min_reps > args.max_seconds:
            wanted[name] = max(3, int(args.max_seconds / single))
        else:
            wanted[name] = max(args.min_reps, min(200, int(args.min_seconds / single)))
    times = {name: [] for name in workers}
    while any(len(times[name]) < wanted[name] for name in workers):
        for name, worker in workers.items():
            remaining = wanted[name] - len(times[name])
            if remaining > 0:
                chunk = max(1, min(remaining, -(-wanted[name] // args.rounds)))
                times[name] += worker.request({"cmd": "time", "reps": chunk})["times"]
    results = {}
    for name, worker in workers.items():
        worker.request({"cmd": "unload"})
        median = statistics.median(times[name])
        results[name] = {"median_s": median, "min_s": min(times[name]), "reps": len(times[name]),
                         "gbps": loaded[name]["bytes"] / median / 1e9, "digest": loaded[name]["digest"]}
    return results


class Worker:
    def __init__(self, implementation, python, env):
        self.implementation = implementation
        self.process = subprocess.Popen(
            [python, os.path.abspath(__file__), "--worker", implementation],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            cwd=os.path.dirname(os.path.abspath(__file__)))
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {implementation} worker ({python}) did not start")
        self.info = json.loads(line)

    def request(self, command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.implementation} worker died on {command}")
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _case_label(op, blocksize, quant_type):
    return f"{op} {quant_type or ''} bs{blocksize}".replace("  ", " ")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-python", default=os.path.join(os.path.dirname(__file__), "..", ".venv-upstream",
                                                                  "bin", "python"),
                        help="interpreter of the venv with upstream bitsandbytes 0.50.2 ('' to skip)")
    parser.add_argument("--sizes", default="1M,4M,16M,64M", help="comma-separated, from " + ",".join(SIZES))
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--ops", default="", help="comma-separated op names to keep (default: all)")
    parser.add_argument("--min-reps", type=int, default=10)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="repeat fast cases up to this long")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="cap per case and implementation; slower ones get fewer (>= 3) repetitions")
    parser.add_argument("--torch-max-n", default="16M", help="largest size for the slow pure-torch path ('' = all)")
    parser.add_argument("--rounds", type=int, default=5, help="alternate the implementations this many times per case")
    parser.add_argument("--quiet-threshold", type=float, default=0.1,
                        help="a case counts only if other processes kept at most this share of the cores busy "
                             "while it ran; before each attempt the script waits for such a quiet moment")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait for a quiet machine (s)")
    parser.add_argument("--attempts", type=int, default=4, help="measurements of a disturbed case before keeping it")
    parser.add_argument("--avx2", action="store_true", help="also run this library on its AVX2 path")
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--report", metavar="JSON", help="only print the table of a saved --json run")
    parser.add_argument("--markdown", help="write the results table here")
    args = parser.parse_args()

    if args.worker:
        _worker(args.worker)
        return
    if args.report:
        with open(args.report) as saved:
            run = json.load(saved)
        print(_markdown(run["header"], run["rows"]))
        return

    env_ours = dict(os.environ)
    # Workers run from this folder: keep the caller's PYTHONPATH meaning the same.
    if env_ours.get("PYTHONPATH"):
        env_ours["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env_ours["PYTHONPATH"].split(os.pathsep))
    env_upstream = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    workers = {"ours": Worker("ours", sys.executable, env_ours), "torch": Worker("torch", sys.executable, env_ours)}
    if args.upstream_python:
        workers["upstream"] = Worker("upstream", args.upstream_python, env_upstream)
    if args.avx2:
        workers["ours_avx2"] = Worker("ours_avx2", sys.executable, dict(env_ours, BNB_CPU_ISA="avx2"))
    for worker in workers.values():
        print(f"# {worker.implementation}: bitsandbytes {worker.info['version']} ({worker.info['file']}), "
              f"torch {worker.info['torch']}, {worker.info['threads']} threads, CPU path {worker.info['isa']}",
              file=sys.stderr)

    load = OthersLoad([os.getpid()] + [worker.process.pid for worker in workers.values()])
    sizes = [s for s in args.sizes.split(",") if s]
    dtypes = [d for d in args.dtypes.split(",") if d]
    wanted_ops = {o for o in args.ops.split(",") if o}
    torch_max_n = SIZES[args.torch_max_n] if args.torch_max_n else None
    rows = []
    for op, blocksize, quant_type in OPS:
        if wanted_ops and op not in wanted_ops:
            continue
        for dtype in dtypes:
            for size in sizes:
                n = SIZES[size]
                case = {"op": op, "dtype": dtype, "n": n, "blocksize": blocksize, "quant_type": quant_type}
                row = {"op": op, "blocksize": blocksize, "quant_type": quant_type, "dtype": dtype, "size": size, "n": n}
                names = [name for name in IMPLEMENTATIONS if name in workers
                         and not (name == "torch" and torch_max_n is not None and n > torch_max_n)]
                # A case that other processes disturbed (they took more than the
                # threshold of the cores while it ran) is measured again.
                for attempt in range(1, args.attempts + 1):
                    _wait_for_quiet(load, args.quiet_threshold, args.quiet_wait)
                    load.start()
                    results = _measure(case, {name: workers[name] for name in names}, args)
                    others = load.stop()
                    if others <= args.quiet_threshold:
                        break
                row.update(results)
                row["others_busy"] = round(others, 3)
                row["attempts"] = attempt
                rows.append(row)
                print(_format_row(row), file=sys.stderr, flush=True)
    for worker in workers.values():
        worker.close()

    header = {
        "cpu": _cpu_model(), "cores": os.cpu_count(),
        "threads": {name: w.info["threads"] for name, w in workers.items()},
        "isa": {name: w.info["isa"] for name, w in workers.items()},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "versions": {name: w.info["version"] for name, w in workers.items()},
        "torch": workers["ours"].info["torch"],
        "method": f"median of >= {args.min_reps} reps (more up to {args.min_seconds}s for fast cases, >= 3 when one "
                  f"call is slower than {args.max_seconds}s/{args.min_reps}) after a warm-up call, the implementations "
                  f"timed in {args.rounds} alternating rounds per case; a case during which other processes used more "
                  f"than {args.quiet_threshold:.0%} of the cores is measured again (up to {args.attempts} attempts, "
                  f"each after waiting up to {args.quiet_wait:.0f}s for a quiet moment)",
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"header": header, "rows": rows}, out, indent=1)
    table = _markdown(header, rows)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(table)
    print(table)


def _format_row(row):
    parts = [f"{_case_label(row['op'], row['blocksize'], row['quant_type']):28s} {row['dtype']:9s} {row['size']:>4s}"]
    for name in IMPLEMENTATIONS:
        if name in row:
            parts.append(f"{name} {row[name]['median_s'] * 1e3:9.2f} ms {row[name]['gbps']:6.2f} GB/s")
    return "  ".join(parts) + f"  (others busy {row['others_busy']:.0%}, attempt {row['attempts']})"


def _ratio(row, other):
    if other not in row:
        return "—"
    return f"{row[other]['median_s'] / row['ours']['median_s']:.2f}×"


def _markdown(header, rows):
    with_avx2 = any("ours_avx2" in row for row in rows)
    lines = [
        f"CPU: {header['cpu']}, {header['cores']} cores; torch {header['torch']}; threads "
        + ", ".join(f"{k} {v}" for k, v in header["threads"].items())
        + f"; OMP_NUM_THREADS {header['omp_num_threads']}; our CPU path {header['isa'].get('ours')}",
        f"Method: {header['method']}.",
        "Ratios are their median time over ours (> 1: ours faster). '=' after the torch ratio: ours and the "
        "pure-torch path produced identical bytes ('≠': they did not). 'others busy': share of the cores that other "
        "processes used while the case ran (kept attempt).",
        "",
    ]
    head = ("| op | dtype | n | ours ms (min) | ours GB/s | upstream ms (min) | upstream GB/s | ours vs upstream "
            "| torch ms | ours vs torch | others busy |")
    rule = "|---|---|---|---|---|---|---|---|---|---|---|"
    if with_avx2:
        head += " ours avx2 ms | avx2 vs upstream |"
        rule += "---|---|"
    lines += [head, rule]
    for row in rows:
        ours = row["ours"]
        upstream = row.get("upstream")
        torch_path = row.get("torch")
        same = "" if not torch_path else (" =" if torch_path["digest"] == ours["digest"] else " ≠")
        line = (f"| {_case_label(row['op'], row['blocksize'], row['quant_type'])} | {row['dtype']} | {row['size']} "
                f"| {_ms(ours)} ({ours['min_s'] * 1e3:.2f}) | {ours['gbps']:.2f} "
                f"| {_ms(upstream)} ({upstream['min_s'] * 1e3 if upstream else float('nan'):.2f}) "
                f"| {upstream['gbps'] if upstream else float('nan'):.2f} | {_ratio(row, 'upstream')} "
                f"| {_ms(torch_path, 1)} | {_ratio(row, 'torch')}{same} | {row['others_busy']:.0%} |")
        if with_avx2:
            avx2 = row.get("ours_avx2")
            versus = f"{upstream['median_s'] / avx2['median_s']:.2f}×" if avx2 and upstream else "—"
            line += f" {_ms(avx2)} | {versus} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _ms(result, digits=2):
    return f"{result['median_s'] * 1e3:.{digits}f}" if result else "—"


if __name__ == "__main__":
    main()
