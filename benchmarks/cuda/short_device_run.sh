#!/usr/bin/env bash
# The whole check of a change in one short call on the GPU machine (about 7 minutes), from
# the repository root with .golden/ and .upstream/ present (8 files come back):
#   build for sm_90 + every C++ test (device_run.sh build), compute-sanitizer memcheck and
#   racecheck over the LLM.int8() C++ tests, the CUDA pytest files of the optimizers, int8
#   and the package/diagnostics, the int8 linear table (ours with its kernel split, torch,
#   upstream 0.50.2), the optimizer step on the LoRA set (ours, upstream, torch), and the QLoRA step
#   of the 1.1B Llama with torch AdamW, fused AdamW and PagedAdamW8bit (ours), its load_in_8bit
#   load and decode (with a profile), and `python -m bitsandbytes`.
# Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/bnb-short-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 BNB_GOLDEN_DIR=$PWD/.golden
PY="env PYTHONPATH=$PWD/build-dev/python python3"
TESTS=build-dev/tests/cpp/bitsandbytes_tests
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash benchmarks/cuda/device_run.sh build > /dev/null 2>&1
grep -E "tests passed|tests failed|FAILED|error:" "$OUT/build.log" | head -20
{
  stamp memcheck
  timeout 60 compute-sanitizer --tool memcheck --print-limit 10 $TESTS \
    --gtest_filter='CudaInt8.Quantizers*:CudaInt8.ScaledMm*:CudaInt8.QuantizeAndScaledMm*' 2>&1 | tail -3
  stamp racecheck
  timeout 40 compute-sanitizer --tool racecheck --print-limit 10 $TESTS --gtest_filter='CudaInt8.Quantizers*' 2>&1 | tail -2
  stamp pytest
  # The metadata Transformers/Accelerate read, for the staged package.
  SITE=$(mktemp -d) && mkdir -p "$SITE/bitsandbytes-0.50.2.dist-info"
  printf 'Metadata-Version: 2.1\nName: bitsandbytes\nVersion: 0.50.2\n' > "$SITE/bitsandbytes-0.50.2.dist-info/METADATA"
  timeout 100 env PYTHONPATH=$PWD/build-dev/python:$SITE python3 -m pytest -q -p no:cacheprovider -n 16 -rf \
    tests/python/test_optim.py tests/python/test_golden_optim.py tests/python/test_int8.py tests/python/test_nn_int8.py \
    tests/python/test_cextension.py tests/python/test_package.py tests/python/test_drop_in_inputs.py \
    tests/python/integration/test_peft_qlora.py -k "cuda or cextension or package or drop_in" 2>&1 \
    | grep -E "^(FAILED|ERROR)| passed| failed|no tests ran" | tail -15  # logged tracebacks hid the summary once
  stamp "python -m bitsandbytes"
  timeout 30 $PY -m bitsandbytes 2>&1 | head -12
  stamp done
} 2>&1 | tee "$OUT/checks.log"
{
  # Most wanted first: a call cut by the session's device time keeps what ran.
  stamp "e2e QLoRA rows (ours)"
  timeout 40 $PY benchmarks/e2e/bench_e2e.py prepare --dir /tmp/bnb-llama-1b 2>&1 | tail -1
  timeout 90 $PY benchmarks/e2e/bench_e2e.py run --dir /tmp/bnb-llama-1b --impl ours --quick --qlora-only \
    --optimizers torch_fused,paged_adamw_8bit --profile "$OUT/e2e_profile.txt" --out /tmp/e2e_ours.json 2>&1 | grep qlora
  stamp "e2e load_in_8bit rows (ours)"
  timeout 60 $PY benchmarks/e2e/bench_e2e.py run --dir /tmp/bnb-llama-1b --impl ours --quick --int8-only \
    --profile "$OUT/e2e_int8_profile.txt" --out /tmp/e2e_int8.json 2>&1 | grep -E "8bit"
  stamp "int8 ours";     timeout 45 python3 benchmarks/cuda/bench_int8.py --impl ours --kernels --out "$OUT/int8_ours.json" >/dev/null
  stamp "int8 torch";    timeout 25 python3 benchmarks/cuda/bench_int8.py --impl torch --out "$OUT/int8_torch.json" >/dev/null
  stamp "optimizer lora"
  timeout 30 $PY benchmarks/cuda/bench_optimizer.py --impl ours --sets lora --out /tmp/optim_ours.json >/dev/null
  timeout 20 python3 benchmarks/cuda/bench_optimizer.py --impl torch --sets lora --out /tmp/optim_torch.json >/dev/null
  timeout 40 env PYTHONPATH=$PWD/.upstream python3 benchmarks/cuda/bench_optimizer.py --impl upstream --sets lora \
    --out /tmp/optim_upstream.json >/dev/null
  python3 benchmarks/cuda/bench_optimizer.py --report /tmp/optim_ours.json /tmp/optim_upstream.json /tmp/optim_torch.json \
    2>&1 | tail -8
  stamp "int8 upstream"; timeout 50 env PYTHONPATH=$PWD/.upstream python3 benchmarks/cuda/bench_int8.py --impl upstream --out "$OUT/int8_upstream.json" >/dev/null
  stamp done
} 2>&1 | tee "$OUT/bench.log"
python3 benchmarks/cuda/bench_int8.py --report "$OUT"/int8_ours.json "$OUT"/int8_torch.json "$OUT"/int8_upstream.json | tail -21
