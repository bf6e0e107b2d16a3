#!/usr/bin/env bash
# One call on the GPU machine (the device tool), from the repository root, after
#   bash benchmarks/cuda/device_run.sh build
# (which builds build-dev for sm_90): every Python test (CPU and CUDA, the
# Transformers/PEFT/Accelerate integration tests included), then the end-to-end
# benchmarks of ours and of upstream 0.50.2 (its wheel unpacked in .upstream/, run in
# its own process). Logs go to $OUT.
#
#   bash benchmarks/e2e/device_run.sh [stage ...]    stages: tests bench (default: both)
#   BNB_E2E_FLAGS="--quick" shortens the benchmark for a short lease, "--compile" adds
#   torch.compile decode, "--decode-only" skips load and QLoRA; BNB_E2E_UPSTREAM_FLAGS
#   replaces BNB_E2E_FLAGS for upstream's run; BNB_E2E_TIMEOUT bounds each side (seconds).
set -u
OUT=${OUT:-/tmp/bnb-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 BNB_GOLDEN_DIR=$PWD/.golden
STAGES=${*:-tests bench}
PY="env PYTHONPATH=$PWD/build-dev/python python3"
MODEL=/tmp/bnb-llama-1b
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
source "$(dirname "${BASH_SOURCE[0]}")/../cuda/common.sh"

if has_stage tests; then
  {
    stamp "pytest tests/python (Transformers $(python3 -c 'import transformers; print(transformers.__version__)'))"
    SITE=$(package_metadata_dir)
    timeout ${BNB_TEST_TIMEOUT:-200} env PYTHONPATH=$PWD/build-dev/python:$SITE python3 -m pytest -q -p no:cacheprovider \
      -n 12 -rf -v tests/python > "$OUT/pytest_verbose.log" 2>&1
    # -v names every result as it lands, so a run cut by its time limit still shows what failed.
    grep -E "FAILED|ERROR|crashed" "$OUT/pytest_verbose.log" | head -40
    tail -5 "$OUT/pytest_verbose.log"
    stamp done
  } > "$OUT/pytest_all.log" 2>&1
  cat "$OUT/pytest_all.log"
fi

if has_stage bench; then
  {
    stamp "e2e: prepare the 1.1B Llama checkpoint"
    [ -d $MODEL ] || timeout 90 $PY benchmarks/e2e/bench_e2e.py prepare --dir $MODEL 2>&1 | tail -2
    stamp "e2e: ours"
    timeout ${BNB_E2E_TIMEOUT:-150} $PY benchmarks/e2e/bench_e2e.py run --dir $MODEL --impl ours --baselines ${BNB_E2E_FLAGS:-} \
      --profile "$OUT/profile_ours.txt" --out "$OUT/e2e_ours.json" 2>&1 | grep -vE "Loading|Writing" | tail -12
    stamp "e2e: upstream"
    timeout ${BNB_E2E_TIMEOUT:-120} env PYTHONPATH=$PWD/.upstream python3 benchmarks/e2e/bench_e2e.py run --dir $MODEL --impl upstream \
      ${BNB_E2E_UPSTREAM_FLAGS-${BNB_E2E_FLAGS:-}} --profile "$OUT/profile_upstream.txt" --out "$OUT/e2e_upstream.json" 2>&1 | grep -vE "Loading|Writing" | tail -12
    python3 benchmarks/e2e/bench_e2e.py report "$OUT/e2e_ours.json" "$OUT/e2e_upstream.json" > "$OUT/e2e.md"
    stamp done
  } > "$OUT/e2e.log" 2>&1
  cat "$OUT/e2e.md"
fi
