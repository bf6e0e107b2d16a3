#!/usr/bin/env bash
# The whole CUDA test suite under compute-sanitizer, on the GPU machine: every CUDA test of the
# C++ suite (gtest filter Cuda*) and every CUDA test of tests/python (the test stage's selection
# in device_run.sh), split into shards that run side by side, once per tool.
#
#   bash benchmarks/cuda/sanitize_suite.sh BUILD_DIR [tool ...]
#     tools: memcheck racecheck initcheck synccheck (default: all four, in that order)
#   SHARDS (default: the core count), SHARD_TIMEOUT (seconds per shard, default 400)
#
# For each tool it prints the tests passed and failed, the sanitizer's error count summed over
# the shards, each shard that timed out, and the first reports; $OUT/sanitize-TOOL.log holds
# every shard's summary lines and reports. Exits non-zero if any tool found an error or a
# test failed.
#
# torch's caching allocator is off (PYTORCH_NO_CUDA_MEMORY_CACHING=1): every tensor is its own
# allocation, so memcheck sees an access past a tensor's end and initcheck a read of memory no
# one wrote, instead of landing inside a cached block.
set -u
BUILD=${1:?usage: sanitize_suite.sh BUILD_DIR [tool ...]}
shift
TOOLS=${*:-memcheck racecheck initcheck synccheck}
OUT=${OUT:-/tmp/bnb-device-out}
SHARDS=${SHARDS:-$(nproc)}
SHARD_TIMEOUT=${SHARD_TIMEOUT:-400}
WORK=$(mktemp -d)
CPP_TESTS=$BUILD/tests/cpp/bitsandbytes_tests
export PYTHONPATH=$PWD/$BUILD/python PYTHONUNBUFFERED=1 PYTORCH_NO_CUDA_MEMORY_CACHING=1
export BNB_GOLDEN_DIR=${BNB_GOLDEN_DIR:-$PWD/.golden}
mkdir -p "$OUT"

# The Python shards: the collected CUDA test ids dealt round-robin, one file per shard.
python3 -m pytest -q --collect-only -p no:cacheprovider tests/python \
  -k "cuda or test_cuda_kernels or test_matmul_4bit_kernels" 2>/dev/null | grep '::' > "$WORK/ids"
for ((shard = 0; shard < SHARDS; ++shard)); do
  awk -v n="$SHARDS" -v k="$shard" 'NR % n == k' "$WORK/ids" > "$WORK/py-$shard.ids"
done
CPP_SHARDS=$(( SHARDS < 4 ? SHARDS : 4 ))
echo "python: $(wc -l < "$WORK/ids") CUDA tests in $SHARDS shards;" \
  "C++: $("$CPP_TESTS" --gtest_list_tests --gtest_filter='Cuda*' | grep -c '^  ') CUDA tests in $CPP_SHARDS shards"

run_shard() {  # tool kind index
  local tool=$1 kind=$2 shard=$3 log="$WORK/$1-$2-$3.log"
  local sanitizer=(timeout "$SHARD_TIMEOUT" compute-sanitizer --tool "$tool" --print-limit 10 --target-processes all)
  if [ "$kind" = cpp ]; then
    GTEST_TOTAL_SHARDS=$CPP_SHARDS GTEST_SHARD_INDEX=$shard \
      "${sanitizer[@]}" "$CPP_TESTS" --gtest_filter='Cuda*' > "$log" 2>&1
  else
    mapfile -t ids < "$WORK/py-$shard.ids"
    [ ${#ids[@]} -gt 0 ] || return 0
    "${sanitizer[@]}" python3 -m pytest -q -p no:cacheprovider -rf "${ids[@]}" > "$log" 2>&1
  fi
  echo "exit $?" >> "$log"
}
export -f run_shard
export WORK SHARD_TIMEOUT CPP_TESTS CPP_SHARDS

failed=0
for tool in $TOOLS; do
  start=$(date +%s)
  {
    for ((shard = 0; shard < CPP_SHARDS; ++shard)); do echo "$tool cpp $shard"; done
    for ((shard = 0; shard < SHARDS; ++shard)); do echo "$tool py $shard"; done
  } | xargs -P "$SHARDS" -L 1 bash -c 'run_shard "$@"' _
  logs=("$WORK/$tool"-*.log)
  # memcheck, initcheck and synccheck end with "ERROR SUMMARY: N errors"; racecheck with
  # "RACECHECK SUMMARY: N hazards displayed (E errors, W warnings)".
  errors=$(cat "${logs[@]}" | sed -nE 's/.*ERROR SUMMARY: ([0-9]+) error.*/\1/p; s/.*RACECHECK SUMMARY: ([0-9]+) hazard.*/\1/p' \
    | awk '{s += $1} END {print s + 0}')
  cpp_passed=$(cat "$WORK/$tool"-cpp-*.log | sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' | awk '{s += $1} END {print s + 0}')
  cpp_failed=$(cat "$WORK/$tool"-cpp-*.log | sed -nE 's/^ *([0-9]+) FAILED TESTS?$/\1/p' | awk '{s += $1} END {print s + 0}')
  py_passed=$(cat "$WORK/$tool"-py-*.log | sed -nE 's/.* ([0-9]+) passed.*/\1/p' | awk '{s += $1} END {print s + 0}')
  py_failed=$(cat "$WORK/$tool"-py-*.log | sed -nE 's/.* ([0-9]+) failed.*/\1/p' | awk '{s += $1} END {print s + 0}')
  timed_out=$(grep -l '^exit 124$' "${logs[@]}" | xargs -r -n1 basename | tr '\n' ' ')
  summary="$tool: $(( $(date +%s) - start )) s; sanitizer errors $errors; C++ tests passed $cpp_passed,"
  summary+=" failed $cpp_failed; Python tests passed $py_passed, failed $py_failed; timed out: ${timed_out:-none}"
  echo "$summary"
  {
    echo "$summary"
    for log in "${logs[@]}"; do
      echo "--- $(basename "$log")"
      grep -E "SUMMARY|passed|failed|^FAILED|^\[  FAILED|^exit " "$log" | tail -8
      grep -m 40 -E "^========= [A-Z]|^=========     at|Invalid|Uninitialized|hazard" "$log"
    done
  } >> "$OUT/sanitize-$tool.log"
  grep -h -m 12 -E "^========= (Invalid|Uninitialized|Race|Error|Barrier|Program hit)" "${logs[@]}" | sort | uniq -c | head -12
  [ "$errors" = 0 ] && [ "$cpp_failed" = 0 ] && [ "$py_failed" = 0 ] && [ -z "$timed_out" ] || failed=1
done
exit "$failed"
