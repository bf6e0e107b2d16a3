#!/usr/bin/env bash
# The whole CUDA test suite under compute-sanitizer, on the GPU machine: every CUDA test of the
# C++ suite (gtest filter *Cuda*) and every CUDA test of tests/python (CUDA_TESTS_K, common.sh),
# split into shards that run side by side in one pool.
#
#   bash benchmarks/cuda/sanitize_suite.sh BUILD_DIR [tool ...]
#     tools: memcheck racecheck initcheck synccheck (default: all four)
#   PARTS: cpp, py or "cpp py" (default)   JOBS: shards run at once (default: the core count)
#   PY_SHARDS: Python shards per tool (default JOBS)   SHARD_TIMEOUT: seconds per shard (default 400)
#   CPP_FILTER: the gtest filter (default *Cuda*; *Cuda*:-*CodeSearch* leaves out the 2^32-float sweeps)
#   SKIP_IDS: a file of Python test ids to leave out (an earlier run's $OUT/ended-TOOL.ids)
#   ONLY_IDS: a file of the Python test ids to run instead of every CUDA test (e.g. the failures
#     of results/sanitize_memcheck_failed_2026-12-04.ids, rerun for their messages)
#   KERNELS: check only the kernels whose names contain it (KERNELS=bnb: ours, not torch's or
#     cuBLAS's, which then run at full speed); initcheck ignores it
#
# Each shard appends its block to $OUT/sanitize-TOOL.log as it ends: the sanitizer's summary,
# the test counts, the first reports, the slowest tests, and for a shard stopped by its timeout
# how many of its tests had ended; $OUT/ended-TOOL.ids collects the ids of the Python tests that
# ended, so that a run cut short can be resumed with SKIP_IDS. At the end one line per tool sums
# the shards. Exits non-zero if a tool reported an error, a test failed or a shard timed out.
#
# torch's caching allocator is off (PYTORCH_NO_CUDA_MEMORY_CACHING=1): every tensor is its own
# allocation, so memcheck sees an access past a tensor's end and initcheck a read of memory no
# one wrote, instead of landing inside a cached block. The tests that capture CUDA graphs (ids
# holding "graph" or "capture") run in a shard of their own with it on: without it torch calls
# cudaMalloc inside the capture, which invalidates the capture (seen 2026-12-04).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
BUILD=${1:?usage: sanitize_suite.sh BUILD_DIR [tool ...]}
shift
TOOLS=${*:-memcheck racecheck initcheck synccheck}
PARTS=${PARTS:-cpp py}
OUT=${OUT:-/tmp/bnb-device-out}
JOBS=${JOBS:-$(nproc)}
PY_SHARDS=${PY_SHARDS:-$JOBS}
CPP_SHARDS=2
SHARD_TIMEOUT=${SHARD_TIMEOUT:-400}
KERNELS=${KERNELS:-}
WORK=$(mktemp -d)
CPP_TESTS=$BUILD/tests/cpp/bitsandbytes_tests
CPP_FILTER=${CPP_FILTER:-'*Cuda*'}
# COLUMNS: pytest's summary lines keep their failure messages.
export PYTHONPATH=$PWD/$BUILD/python PYTHONUNBUFFERED=1 PYTORCH_NO_CUDA_MEMORY_CACHING=1 COLUMNS=300
export BNB_GOLDEN_DIR=${BNB_GOLDEN_DIR:-$PWD/.golden}
mkdir -p "$OUT"

# The Python shards: the collected CUDA test ids dealt round-robin, one file per shard.
if [ -n "${ONLY_IDS:-}" ]; then
  cp "$ONLY_IDS" "$WORK/collected"
else
  python3 -m pytest -q --collect-only -p no:cacheprovider tests/python \
    -k "$CUDA_TESTS_K" 2>/dev/null | grep '::' > "$WORK/collected"
fi
# A resumed run leaves out the tests an earlier one ended (its $OUT/ended-TOOL.ids, passed as SKIP_IDS).
grep -vxF -f "${SKIP_IDS:-/dev/null}" "$WORK/collected" > "$WORK/ids"
grep -iE 'graph|capture' "$WORK/ids" > "$WORK/py-graph.ids"
for ((shard = 0; shard < PY_SHARDS; ++shard)); do
  grep -viE 'graph|capture' "$WORK/ids" | awk -v n="$PY_SHARDS" -v k="$shard" 'NR % n == k' > "$WORK/py-$shard.ids"
done
echo "python: $(wc -l < "$WORK/ids") CUDA tests in $PY_SHARDS shards and a graph shard per tool; C++:" \
  "$("$CPP_TESTS" --gtest_list_tests --gtest_filter="$CPP_FILTER" | grep -c '^  ') CUDA tests in $CPP_SHARDS shards"

run_shard() {  # tool part index
  local tool=$1 part=$2 shard=$3 log="$WORK/$1-$2-$3.log" status=0
  local sanitizer=(timeout "$SHARD_TIMEOUT" compute-sanitizer --tool "$tool" --print-limit 10 --target-processes all)
  # cuBLASLt's Hopper kernels store through TMA bulk copies, which the tools track only when asked:
  # untracked, initcheck reported 40 KB copies of cuBLASLt outputs as never written (2026-12-04).
  # Not yet run with this option; a compute-sanitizer without it runs as before.
  if [ "$BULK_COPY" = 1 ]; then
    case "$tool" in memcheck | initcheck) sanitizer+=(--check-bulk-copy yes) ;; esac
  fi
  # initcheck must see every kernel's writes, or it reports reads of what an unchecked kernel wrote.
  [ -n "$KERNELS" ] && [ "$tool" != initcheck ] && sanitizer+=(--kernel-name "kns=$KERNELS")
  if [ "$part" = cpp ]; then
    GTEST_TOTAL_SHARDS=$CPP_SHARDS GTEST_SHARD_INDEX=$shard \
      "${sanitizer[@]}" "$CPP_TESTS" --gtest_filter="$CPP_FILTER" > "$log" 2>&1 || status=$?
  else
    mapfile -t ids < "$WORK/py-$shard.ids"
    [ ${#ids[@]} -gt 0 ] || return 0
    local caching=(env)
    [ "$shard" = graph ] && caching=(env -u PYTORCH_NO_CUDA_MEMORY_CACHING)
    "${caching[@]}" "${sanitizer[@]}" python3 -m pytest -v -p no:cacheprovider -rfE --durations=3 "${ids[@]}" \
      > "$log" 2>&1 || status=$?
    grep -oE '^tests/[^ ]+ (PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)' "$log" | cut -d' ' -f1 \
      | flock "$WORK/lock" tee -a "$OUT/ended-$tool.ids" > /dev/null
  fi
  echo "exit $status" >> "$log"
  {
    echo "--- $tool $part shard $shard: exit $status"
    grep -E "SUMMARY|tests? ran|PASSED  \]|FAILED TEST|^=+ .*(passed|failed|error)" "$log" | tail -6
    grep -m 40 -E "^(FAILED|ERROR) tests/" "$log" | cut -c1-300  # pytest -rf: each failure and its message
    if [ "$part" = py ]; then  # from pytest -v's lines: a shard stopped by its timeout counts too
      echo "python tests: $(grep -cE '^tests/[^ ]+ PASSED' "$log") passed," \
        "$(grep -cE '^tests/[^ ]+ (FAILED|ERROR)' "$log") failed, $(grep -cE '^tests/[^ ]+ SKIPPED' "$log") skipped"
      grep -E '^tests/[^ ]+ (FAILED|ERROR)' "$log" | sed 's/^/failed: /'
    fi
    if [ "$status" = 124 ]; then
      echo "timed out after $(grep -cE ' (PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)' "$log") ended tests;" \
        "running: $(grep -E '::' "$log" | tail -1 | cut -c1-160)"
    fi
    grep -m 40 -E "^========= (Invalid|Uninitialized|Race|Error|Barrier|Program hit|Warp|Potential|Unused)|^=========     at" "$log"
    grep -A 4 "slowest 3 durations" "$log" | grep -E "^[0-9.]+s "
  } | flock "$WORK/lock" tee -a "$OUT/sanitize-$tool.log" > /dev/null
}
BULK_COPY=$(compute-sanitizer --help 2>/dev/null | grep -q -- --check-bulk-copy && echo 1 || echo 0)
export -f run_shard
export WORK SHARD_TIMEOUT CPP_TESTS CPP_SHARDS CPP_FILTER OUT KERNELS BULK_COPY

start=$(date +%s)
for tool in $TOOLS; do
  [[ " $PARTS " == *" cpp "* ]] && for ((shard = 0; shard < CPP_SHARDS; ++shard)); do echo "$tool cpp $shard"; done
  [[ " $PARTS " == *" py "* ]] && for shard in graph $(seq 0 $((PY_SHARDS - 1))); do echo "$tool py $shard"; done
done | xargs -P "$JOBS" -L 1 bash -c 'run_shard "$@"' _

failed=0
sum() { sed -nE "$1" "$2" | awk '{s += $1} END {print s + 0}'; }
for tool in $TOOLS; do
  log="$OUT/sanitize-$tool.log"
  # memcheck, initcheck and synccheck end with "ERROR SUMMARY: N errors"; racecheck with
  # "RACECHECK SUMMARY: N hazards displayed (E errors, W warnings)".
  # (not "ERROR SUMMARY: N errors were not printed", which follows the first past --print-limit).
  errors=$(sum 's/.*ERROR SUMMARY: ([0-9]+) errors?$/\1/p; s/.*RACECHECK SUMMARY: ([0-9]+) hazard.*/\1/p' "$log")
  cpp_passed=$(sum 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' "$log")
  cpp_failed=$(sum 's/^ *([0-9]+) FAILED TESTS?$/\1/p' "$log")
  py_passed=$(sum 's/^python tests: ([0-9]+) passed.*/\1/p' "$log")
  py_failed=$(sum 's/^python tests: .* ([0-9]+) failed.*/\1/p' "$log")
  timed_out=$(grep -c '^timed out after' "$log")
  line="$tool: sanitizer errors $errors; C++ CUDA tests passed $cpp_passed, failed $cpp_failed; Python CUDA tests"
  line+=" passed $py_passed, failed $py_failed; shards timed out $timed_out; pool $(( $(date +%s) - start )) s"
  echo "$line" | tee -a "$log"
  [ "$errors" = 0 ] && [ "$cpp_failed" = 0 ] && [ "$py_failed" = 0 ] && [ "$timed_out" = 0 ] || failed=1
done
exit "$failed"
