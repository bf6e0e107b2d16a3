#!/usr/bin/env bash
# One call on the GPU machine (the device tool), from the repository root, after
#   bash benchmarks/cuda/device_run.sh build
# (which builds build-dev for sm_90): the Transformers/PEFT/Accelerate integration
# tests on CUDA and CPU, then the end-to-end benchmarks of ours and of upstream 0.50.2
# (its wheel unpacked in .upstream/, run in its own process). Logs go to $OUT.
#
#   bash benchmarks/e2e/device_run.sh [stage ...]    stages: integration bench (default: both)
set -u
OUT=${OUT:-/tmp/bnb-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 BNB_GOLDEN_DIR=$PWD/.golden
STAGES=${*:-integration bench}
PY="env PYTHONPATH=$PWD/build-dev/python python3"
MODEL=/tmp/bnb-llama-1b
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
stamp() { echo "=== $(date +%T) $*"; }

if has_stage integration; then
  {
    stamp "integration tests (Transformers $(python3 -c 'import transformers; print(transformers.__version__)'), PEFT, Accelerate)"
    # Transformers and Accelerate read the distribution metadata: give the staged package one.
    SITE=$(mktemp -d)
    mkdir -p "$SITE/bitsandbytes-0.50.2.dist-info"
    printf 'Metadata-Version: 2.1\nName: bitsandbytes\nVersion: 0.50.2\n' > "$SITE/bitsandbytes-0.50.2.dist-info/METADATA"
    printf 'bitsandbytes\n' > "$SITE/bitsandbytes-0.50.2.dist-info/top_level.txt"
    timeout 240 env PYTHONPATH=$PWD/build-dev/python:$SITE python3 -m pytest -q -p no:cacheprovider -rs \
      tests/python/integration tests/python/test_nn_4bit.py 2>&1 | tail -30
    stamp done
  } 2>&1 | tee "$OUT/integration.log"
fi

if has_stage bench; then
  {
    stamp "e2e: prepare the 1.1B Llama checkpoint"
    [ -d $MODEL ] || timeout 120 $PY benchmarks/e2e/bench_e2e.py prepare --dir $MODEL 2>&1 | tail -2
    stamp "e2e: ours"
    timeout 240 $PY benchmarks/e2e/bench_e2e.py run --dir $MODEL --impl ours --baselines --compile \
      --out "$OUT/e2e_ours.json" 2>&1 | grep -vE "Loading|Writing" | tail -12
    stamp "e2e: upstream"
    timeout 200 env PYTHONPATH=$PWD/.upstream python3 benchmarks/e2e/bench_e2e.py run --dir $MODEL --impl upstream \
      --compile --out "$OUT/e2e_upstream.json" 2>&1 | grep -vE "Loading|Writing" | tail -12
    python3 benchmarks/e2e/bench_e2e.py report "$OUT/e2e_ours.json" "$OUT/e2e_upstream.json" | tee "$OUT/e2e.md"
    stamp done
  } 2>&1 | tee "$OUT/e2e.log"
fi
