#!/usr/bin/env bash
# Issue 16 in one call on nvidia-h200-x2, from the repository root with .golden/ and .upstream/
# (the 0.50.2 wheel unpacked) carried: build for sm_90 (device_run.sh build), then
#   phases: every phase of tests/distributed/fsdp_qlora.py with 2 processes on the random-init
#           Llama of shared/targets.md, 20 training steps (run_phases.sh);
#   bench:  the FSDP2 QLoRA step of ours and of upstream under the same script (fsdp_qlora.py
#           bench), with PagedAdamW8bit and with torch's fused AdamW, on 1 and on 2 GPUs: median
#           step time and each GPU's peak memory, as a table (a failed run is a row with its error).
#
#   bash benchmarks/distributed/device_run.sh [stage ...]   stages: build phases bench (default: all)
#   FSDP_MODEL: fsdp_qlora.py's --model (default llama-2048x16; tiny for a quick check)
#
# $OUT gets build.log, phases.log, fsdp_bench.jsonl (one JSON line a run) and fsdp_bench.md.
#
# NVLink multicast stays off, as that machine requires (KINDS.md of the device tool).
set -u
OUT=${OUT:-/tmp/bnb-device-out}
mkdir -p "$OUT"
source "$(dirname "${BASH_SOURCE[0]}")/../cuda/common.sh"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
STAGES=${*:-build phases bench}
SCRIPT=tests/distributed/fsdp_qlora.py
MODEL=(--model "${FSDP_MODEL:-llama-2048x16}")
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

if has_stage build; then
  stamp build
  bash benchmarks/cuda/device_run.sh build > /dev/null 2>&1
  grep -E "tests passed|tests failed|FAILED|error:" "$OUT/build.log" | head -10
fi

if has_stage phases; then
  stamp "phases: 2 processes, ${MODEL[*]}, 20 steps"
  FSDP_QLORA_ARGS="${MODEL[*]} --steps 20" PHASE_TIMEOUT=500 \
    bash tests/distributed/run_phases.sh "$PWD/build-dev/python" 2 2>&1 | tee "$OUT/phases.log"
fi

if has_stage bench; then
  ours=$PWD/build-dev/python:$(package_metadata_dir)
  results=$(mktemp -d)
  for impl in ours upstream; do
    path=$ours
    [ "$impl" = upstream ] && path=$PWD/.upstream:$(package_metadata_dir)
    for optimizer in paged_adamw_8bit torch_adamw; do
      for gpus in 1 2; do
        stamp "bench: $impl, $optimizer, $gpus GPU(s)"
        result=$results/${impl}_${optimizer}_${gpus}.json
        log=$(mktemp)
        timeout 400 env PYTHONPATH="$path" python3 -m torch.distributed.run --standalone --nproc-per-node "$gpus" \
          "$SCRIPT" bench "$(mktemp -d)" "${MODEL[@]}" --optimizer "$optimizer" --out "$result" > "$log" 2>&1
        grep -E "OK|FAIL" "$log" | tail -2
        # A failed run is a row too: its last error line, a rank's own where there is one.
        [ -e "$result" ] || python3 -c 'import json, sys; print(json.dumps(dict(zip(
          ["impl", "optimizer", "ranks", "failed"], [sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]]))))' \
          "$impl" "$optimizer" "$gpus" "$({ grep -E "^\[rank[0-9]+\]: [A-Za-z_.]*(Error|Exception):" "$log" ||
                grep -E "(Error|Exception):" "$log"; } | tail -1 | cut -c1-200)" > "$result"
      done
    done
  done
  cat "$results"/*.json > "$OUT/fsdp_bench.jsonl"
  python3 - "$OUT/fsdp_bench.jsonl" > "$OUT/fsdp_bench.md" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
for row in rows:
    row.setdefault("impl", "upstream" if ".upstream" in row.get("bitsandbytes", "") else "ours")
print("| bitsandbytes | optimizer | GPUs | batch per GPU | median step (ms) | peak memory per GPU (MB) |")
print("|---|---|---|---|---|---|")
for row in sorted(rows, key=lambda r: (r["impl"], r["optimizer"], r["ranks"])):
    name = "upstream 0.50.2" if row["impl"] == "upstream" else "ours"
    if "failed" in row:
        print(f"| {name} | {row['optimizer']} | {row['ranks']} | | failed: {row['failed']} | |")
        continue
    peaks = ", ".join(f"{peak:.0f}" for peak in row["peak_mb_per_rank"] if peak is not None)
    print(f"| {name} | {row['optimizer']} | {row['ranks']} | {row['batch_per_rank']} x {row['sequence']} | "
          f"{row['median_step_ms']:.1f} | {peaks} |")
PY
  cat "$OUT/fsdp_bench.md"
fi
stamp done
