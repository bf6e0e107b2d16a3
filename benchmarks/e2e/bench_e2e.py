"""End-to-end benchmarks of a 4-bit Llama through Transformers/PEFT: QLoRA step, decode, load.

Measures whichever `bitsandbytes` is importable, so the same script runs ours and
upstream's in two separate processes (never both in one: same module name):

    python3 benchmarks/e2e/bench_e2e.py prepare --dir /tmp/llama-1b
    python3 benchmarks/e2e/bench_e2e.py run --dir /tmp/llama-1b --impl ours --baselines --out ours.json
    PYTHONPATH=.upstream python3 benchmarks/e2e/bench_e2e.py run --dir /tmp/llama-1b --impl upstream --out up.json
    python3 benchmarks/e2e/bench_e2e.py report ours.json up.json

Workloads (shared/targets.md, "End to end"): random-init Llama, hidden 2048, intermediate
5632, 16 layers, 16 heads, vocab 32000, bf16 compute, nf4 with double quantization.
- QLoRA step: batch 4 x 512 tokens, LoRA r=16 on every linear layer, torch AdamW on
  the LoRA parameters on both sides (the same optimizer), no gradient checkpointing;
  median of 10 steps after 3 warm-up steps, peak allocated memory over those steps.
- decode: batch 1, a 16-token prompt, 128 greedy new tokens; tokens/s, median of 3
  after one warm-up; eager, and with torch.compile of the forward (static cache,
  reduce-overhead, fullgraph; Transformers does not auto-compile bnb-quantized models).
- load: `from_pretrained` of the bf16 checkpoint onto the GPU, 4-bit and (baseline)
  bf16; median of 3 after one untimed load.
- with --int8, the same load and eager decode with `load_in_8bit=True` (LLM.int8(),
  threshold 6.0, the Transformers default).
- with --optimizers, the QLoRA step again with each listed optimizer of OPTIMIZERS
  (a fresh 4-bit model each): e.g. torch_fused (AdamW(fused=True)) and
  paged_adamw_8bit (bnb.optim.PagedAdamW8bit, what `optim="paged_adamw_8bit"` builds).
Same-run baselines with --baselines: the bf16 model with the same LoRA, bf16 decode.
"""

import argparse
import gc
import json
import statistics
import sys
import time
import traceback

import torch

LLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
             num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=2048)
TINY = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=256)


def prepare(args):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**(TINY if args.tiny else LLAMA), tie_word_embeddings=False)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(args.dir)
    print(f"saved {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters to {args.dir}")


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def quantization_config(quantization):
    """None (bf16), "nf4" (4-bit with double quantization) or "int8" (LLM.int8(), threshold 6.0)."""
    from transformers import BitsAndBytesConfig

    if quantization == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load(path, device, quantization):
    from transformers import AutoModelForCausalLM

    # A previous model (PEFT's modules hold reference cycles) is only freed by the
    # collector: left alive, its memory counts in the next row's peak.
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    kwargs = dict(dtype=torch.bfloat16, device_map=device)
    if quantization is not None:
        kwargs["quantization_config"] = quantization_config(quantization)
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def load_seconds(path, device, quantization, repeats):
    times = []
    for repeat in range(repeats + 1):  # the first load warms imports and the page cache, untimed
        seconds, model = timed(lambda: load(path, device, quantization), device)
        if repeat > 0:
            times.append(seconds)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    return statistics.median(times)


def decode_tokens_per_second(model, device, new_tokens, compiled, runs=3, compile_mode="reduce-overhead"):
    prompt = torch.randint(3, model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0)).to(device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    if compiled:
        kwargs["cache_implementation"] = "static"
        compiled_forward = torch.compile(model.forward, mode=compile_mode, fullgraph=True)

        def forward(*args, **kw):
            # Each call is a new CUDA-graph step: generate reads the previous step's logits
            # before this one runs, and the static cache is updated in place.
            if compile_mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            return compiled_forward(*args, **kw)

        model.forward = forward
    warmups = 2 if compiled else 1
    for _ in range(warmups):
        model.generate(prompt, **kwargs)
    times = [timed(lambda: model.generate(prompt, **kwargs), device)[0] for _ in range(runs)]
    return new_tokens / statistics.median(times)


def profile_table(fn, sort_by, rows=30):
    """torch.profiler's per-op table of one call of fn (CPU and CUDA activity)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows, max_name_column_width=70)


def paged_adamw_8bit(params):
    import bitsandbytes as bnb  # whichever bitsandbytes this process measures

    return bnb.optim.PagedAdamW8bit(params, lr=1e-4)


# The QLoRA step's optimizers over the LoRA parameters, by name (lr 1e-4 each).
OPTIMIZERS = {
    "torch": lambda params: torch.optim.AdamW(params, lr=1e-4),
    "torch_fused": lambda params: torch.optim.AdamW(params, lr=1e-4, fused=True),
    "paged_adamw_8bit": paged_adamw_8bit,
}


def lora_model(model, device, batch, seq):
    """The model with LoRA r=16 on every linear layer, in training mode, and a batch of tokens."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    tokens = torch.randint(3, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(1))
    model.train()
    return model, tokens.to(device)


def training_step(model, tokens, optimizer):
    loss = model(input_ids=tokens, labels=tokens).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def lora_step(model, device, batch, seq, steps, warmup, profile_to=None, optimizer_name="torch"):
    model, tokens = lora_model(model, device, batch, seq)
    optimizer = OPTIMIZERS[optimizer_name]([p for p in model.parameters() if p.requires_grad])

    def step():
        return training_step(model, tokens, optimizer)

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [timed(step, device)[0] for _ in range(steps)]
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    if profile_to is not None:
        profile_to.write(f"== one QLoRA step ({optimizer_name} optimizer), by GPU time\n"
                         f"{profile_table(step, 'self_device_time_total')}\n")
        if optimizer_name != "torch":  # where the optimizer's host time goes
            profile_to.write(f"== one QLoRA step ({optimizer_name} optimizer), by CPU time\n"
                             f"{profile_table(step, 'self_cpu_time_total')}\n")
    return statistics.median(times) * 1e3, peak / 1e9


def lora_steps_interleaved(model, device, batch, seq, steps, warmup, optimizer_names):
    """Median step ms per optimizer, their steps taken in turn on one model.

    The QLoRA step is host-bound and the host's speed drifts between runs by more than
    the optimizers differ: in turn, every optimizer sees the same drift. Each has its
    own state over the same LoRA parameters.
    """
    model, tokens = lora_model(model, device, batch, seq)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizers = {name: OPTIMIZERS[name](parameters) for name in optimizer_names}
    times = {name: [] for name in optimizer_names}
    for round_index in range(warmup + steps):
        for name, optimizer in optimizers.items():
            elapsed = timed(lambda: training_step(model, tokens, optimizer), device)[0]
            if round_index >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def attempt(results, key, fn):
    try:
        results[key] = fn()
    except Exception as error:  # recorded, not hidden: the report shows the failure
        traceback.print_exc()
        results[key] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    print(f"{key}: {results[key]}", flush=True)


def run(args):
    import bitsandbytes as bnb

    device = args.device
    results = {"impl": args.impl, "bitsandbytes": bnb.__version__, "bitsandbytes_file": bnb.__file__,
               "torch": torch.__version__,
               "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    new_tokens = 8 if args.tiny else 128
    seq = 32 if args.tiny else 512
    steps, warmup = (2, 1) if args.tiny else (4, 2) if args.quick else (10, 3)
    repeats = 1 if args.tiny or args.quick else 3
    results["method"] = {"new_tokens": new_tokens, "decode_runs": 1 if args.quick else 3, "lora_steps": steps,
                         "lora_warmup": warmup, "load_repeats": repeats}

    if args.int8_only:
        int8_rows(args, results, new_tokens, results["method"]["decode_runs"], repeats)
        return save_results(args.out, results)
    if not args.decode_only and not args.qlora_only:
        attempt(results, "load_4bit_s", lambda: load_seconds(args.dir, device, "nf4", repeats))
    model = load(args.dir, device, "nf4")
    results["footprint_4bit_gb"] = model.get_memory_footprint() / 1e9
    runs = results["method"]["decode_runs"]
    if not args.qlora_only:
        attempt(results, "decode_eager_tok_s",
                lambda: decode_tokens_per_second(model, device, new_tokens, False, runs))
    profile_to = open(args.profile, "w") if args.profile and not args.decode_only else None
    if profile_to is not None and not args.qlora_only:
        prompt = torch.randint(3, model.config.vocab_size, (1, 16), device=device)
        profile_to.write("== greedy decode of 16 tokens, by CPU time\n" + profile_table(
            lambda: model.generate(prompt, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0),
            "self_cpu_time_total") + "\n")
    if not args.decode_only:
        attempt(results, "qlora_step", lambda: lora_step(model, device, 4, seq, steps, warmup, profile_to))
    del model
    if args.optimizers and not args.decode_only:
        model = load(args.dir, device, "nf4")
        names = ["torch"] + args.optimizers.split(",")
        attempt(results, "qlora_interleaved",
                lambda: lora_steps_interleaved(model, device, 4, seq, 2 * steps, warmup, names))
        del model
    for name in args.optimizers.split(",") if args.optimizers and not args.decode_only else []:
        model = load(args.dir, device, "nf4")
        attempt(results, f"qlora_step_{name}",
                lambda: lora_step(model, device, 4, seq, steps, warmup, profile_to, optimizer_name=name))
        del model
    if profile_to is not None:
        profile_to.close()
    if args.qlora_only:
        return save_results(args.out, results)
    if args.compile:
        model = load(args.dir, device, "nf4")
        attempt(results, "decode_compiled_tok_s",
                lambda: decode_tokens_per_second(model, device, new_tokens, True, runs, args.compile_mode))
        del model
    if args.int8:
        int8_rows(args, results, new_tokens, runs, repeats)
    if args.baselines:
        if not args.decode_only:
            attempt(results, "load_bf16_s", lambda: load_seconds(args.dir, device, None, repeats))
        model = load(args.dir, device, None)
        results["footprint_bf16_gb"] = model.get_memory_footprint() / 1e9
        attempt(results, "decode_bf16_eager_tok_s",
                lambda: decode_tokens_per_second(model, device, new_tokens, False, runs))
        if not args.decode_only:
            attempt(results, "lora_bf16_step", lambda: lora_step(model, device, 4, seq, steps, warmup))
        if args.compile:
            del model
            model = load(args.dir, device, None)
            attempt(results, "decode_bf16_compiled_tok_s",
                    lambda: decode_tokens_per_second(model, device, new_tokens, True, runs, args.compile_mode))
    save_results(args.out, results)


def int8_rows(args, results, new_tokens, runs, repeats):
    """load_in_8bit: load time, footprint, eager decode, with --compile compiled decode (and the eager
    decode's profile, with --profile and --int8-only)."""
    device = args.device
    if not args.decode_only:
        attempt(results, "load_8bit_s", lambda: load_seconds(args.dir, device, "int8", repeats))
    model = load(args.dir, device, "int8")
    results["footprint_8bit_gb"] = model.get_memory_footprint() / 1e9
    attempt(results, "decode_8bit_eager_tok_s",
            lambda: decode_tokens_per_second(model, device, new_tokens, False, runs))
    if args.compile:
        compiled_model = load(args.dir, device, "int8")
        attempt(results, "decode_8bit_compiled_tok_s",
                lambda: decode_tokens_per_second(compiled_model, device, new_tokens, True, runs, args.compile_mode))
        del compiled_model
    if args.profile and args.int8_only:
        prompt = torch.randint(3, model.config.vocab_size, (1, 16), device=device)
        with open(args.profile, "w") as profile_to:
            profile_to.write("== load_in_8bit greedy decode of 16 tokens, by CPU time\n" + profile_table(
                lambda: model.generate(prompt, max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0),
                "self_cpu_time_total") + "\n")


def save_results(path, results):
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def report(args):
    ours, upstream = (json.load(open(path)) for path in (args.ours, args.upstream))

    def cell(result, key, index=None, fmt="{:.1f}"):
        value = result.get(key, "-")
        if isinstance(value, str):
            return value
        return fmt.format(value[index] if index is not None else value)

    def ratio(key, index=None, higher_is_better=False):
        a, b = ours.get(key), upstream.get(key)
        if not isinstance(a, (int, float, list)) or not isinstance(b, (int, float, list)):
            return "-"
        a, b = (a[index], b[index]) if index is not None else (a, b)
        return f"{(a / b if higher_is_better else b / a):.2f}x"

    print(f"Device: {ours['device']}; torch {ours['torch']}; ours {ours['bitsandbytes']}, "
          f"upstream {upstream['bitsandbytes']}.\n")
    print("| workload | ours | upstream 0.50.2 | ours vs upstream | bf16 baseline (same run) |")
    print("|---|---|---|---|---|")
    print(f"| QLoRA step, ms (4 x 512, LoRA r=16 all linear, torch AdamW) | {cell(ours, 'qlora_step', 0)} | "
          f"{cell(upstream, 'qlora_step', 0)} | {ratio('qlora_step', 0)} faster | {cell(ours, 'lora_bf16_step', 0)} |")
    print(f"| QLoRA step peak memory, GB | {cell(ours, 'qlora_step', 1, '{:.2f}')} | "
          f"{cell(upstream, 'qlora_step', 1, '{:.2f}')} | | {cell(ours, 'lora_bf16_step', 1, '{:.2f}')} |")
    for key in sorted(k for k in ours if k.startswith("qlora_step_")):
        print(f"| QLoRA step, ms, optimizer {key[len('qlora_step_'):]} (peak GB) | {cell(ours, key, 0)} "
              f"({cell(ours, key, 1, '{:.2f}')}) | {cell(upstream, key, 0)} ({cell(upstream, key, 1, '{:.2f}')}) | "
              f"{ratio(key, 0)} faster | |")
    for name, ms in ours.get("qlora_interleaved", {}).items() if isinstance(
            ours.get("qlora_interleaved"), dict) else []:
        theirs = upstream.get("qlora_interleaved", {})
        other = theirs.get(name) if isinstance(theirs, dict) else None
        print(f"| QLoRA step, ms, optimizers in turn on one model: {name} | {ms:.1f} | "
              f"{'-' if other is None else f'{other:.1f}'} | {'-' if other is None else f'{other / ms:.2f}x faster'} | |")
    print(f"| greedy decode batch 1, eager, tokens/s | {cell(ours, 'decode_eager_tok_s')} | "
          f"{cell(upstream, 'decode_eager_tok_s')} | {ratio('decode_eager_tok_s', higher_is_better=True)} | "
          f"{cell(ours, 'decode_bf16_eager_tok_s')} |")
    print(f"| greedy decode batch 1, torch.compile, tokens/s | {cell(ours, 'decode_compiled_tok_s')} | "
          f"{cell(upstream, 'decode_compiled_tok_s')} | {ratio('decode_compiled_tok_s', higher_is_better=True)} | "
          f"{cell(ours, 'decode_bf16_compiled_tok_s')} |")
    print(f"| from_pretrained load_in_4bit, s | {cell(ours, 'load_4bit_s', fmt='{:.2f}')} | "
          f"{cell(upstream, 'load_4bit_s', fmt='{:.2f}')} | {ratio('load_4bit_s')} faster | "
          f"{cell(ours, 'load_bf16_s', fmt='{:.2f}')} (bf16 load) |")
    print(f"| model footprint, GB | {cell(ours, 'footprint_4bit_gb', fmt='{:.3f}')} | "
          f"{cell(upstream, 'footprint_4bit_gb', fmt='{:.3f}')} | | {cell(ours, 'footprint_bf16_gb', fmt='{:.3f}')} |")
    if "decode_8bit_eager_tok_s" in ours:
        print(f"| load_in_8bit greedy decode batch 1, eager, tokens/s | {cell(ours, 'decode_8bit_eager_tok_s')} | "
              f"{cell(upstream, 'decode_8bit_eager_tok_s')} | {ratio('decode_8bit_eager_tok_s', higher_is_better=True)} | "
              f"{cell(ours, 'decode_bf16_eager_tok_s')} |")
        print(f"| load_in_8bit greedy decode batch 1, torch.compile, tokens/s | "
              f"{cell(ours, 'decode_8bit_compiled_tok_s')} | {cell(upstream, 'decode_8bit_compiled_tok_s')} | "
              f"{ratio('decode_8bit_compiled_tok_s', higher_is_better=True)} | "
              f"{cell(ours, 'decode_bf16_compiled_tok_s')} |")
        print(f"| from_pretrained load_in_8bit, s | {cell(ours, 'load_8bit_s', fmt='{:.2f}')} | "
              f"{cell(upstream, 'load_8bit_s', fmt='{:.2f}')} | {ratio('load_8bit_s')} faster | "
              f"{cell(ours, 'load_bf16_s', fmt='{:.2f}')} (bf16 load) |")
        print(f"| 8-bit model footprint, GB | {cell(ours, 'footprint_8bit_gb', fmt='{:.3f}')} | "
              f"{cell(upstream, 'footprint_8bit_gb', fmt='{:.3f}')} | | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "run"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--tiny", action="store_true", help="a 2-layer model, to check the script on a CPU")
    run_parser = sub.choices["run"]
    run_parser.add_argument("--impl", required=True)
    run_parser.add_argument("--out", required=True)
    run_parser.add_argument("--baselines", action="store_true")
    run_parser.add_argument("--compile", action="store_true")
    run_parser.add_argument("--int8", action="store_true", help="also load_in_8bit: load time, footprint, eager decode")
    run_parser.add_argument("--optimizers", default="",
                            help="comma-separated OPTIMIZERS names: extra QLoRA step rows, one per optimizer")
    run_parser.add_argument("--compile-mode", default="reduce-overhead", help="torch.compile mode of --compile")
    run_parser.add_argument("--decode-only", action="store_true", help="only the decode rows (and footprint)")
    run_parser.add_argument("--qlora-only", action="store_true",
                            help="only the QLoRA step rows (torch AdamW and each --optimizers entry)")
    run_parser.add_argument("--int8-only", action="store_true", help="only the load_in_8bit rows")
    run_parser.add_argument("--profile", help="write torch.profiler tables of one decode and one QLoRA step here")
    run_parser.add_argument("--quick", action="store_true",
                            help="one timed decode and load, 4 LoRA steps after 2 warm-ups (a short device lease)")
    report_parser = sub.add_parser("report")
    report_parser.add_argument("ours")
    report_parser.add_argument("upstream")
    args = parser.parse_args()
    {"prepare": prepare, "run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
