#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) in build/sanitize and runs
# each for a bounded time on a copy of its seed corpus, printing the executions.
#
#   tests/fuzz/run.sh [seconds per fuzzer]     (default: BNB_FUZZ_SECONDS or 40)
#
# A finding stops that fuzzer: its input is left in build/sanitize/fuzz-findings/
# and the script exits non-zero. BNB_FUZZ_KEEP_CORPUS=1 merges what a run found
# back into build/sanitize/fuzz-corpus/<family> for the next run (not the repo's seeds).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-${BNB_FUZZ_SECONDS:-40}}"
build="$root/build/sanitize"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DBNB_BUILD_FUZZERS=ON -DBNB_BUILD_PYTHON=OFF -DBNB_BUILD_BENCHMARKS=OFF -DBNB_WITH_CUDA=OFF >/dev/null
fuzzers=()
for source in "$root"/tests/fuzz/fuzz_*.cpp; do fuzzers+=("$(basename "$source" .cpp)"); done
cmake --build "$build" --target "${fuzzers[@]}" -j "${BNB_BUILD_JOBS:-2}"

findings="$build/fuzz-findings"
mkdir -p "$findings"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
failed=0
total=0
summary=""
for fuzzer in "${fuzzers[@]}"; do
  family="${fuzzer#fuzz_}"
  work="$build/fuzz-corpus/$family"
  if [ "${BNB_FUZZ_KEEP_CORPUS:-0}" != 1 ]; then rm -rf "$work"; fi
  mkdir -p "$work"
  cp -n "$root/tests/fuzz/corpus/$family"/* "$work"/ 2>/dev/null || true
  log="$build/fuzz-$family.log"
  status=0
  # One process (no -jobs): the other core stays free.
  "$build/tests/fuzz/$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 \
    -artifact_prefix="$findings/$family-" "$work" >"$log" 2>&1 || status=$?
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  executions="${executions:-0}"
  total=$((total + executions))
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "== $fuzzer: FINDING (exit $status) after $executions executions; input in $findings"
    grep -m1 -E "FUZZ FINDING|ERROR: |runtime error" "$log" || tail -5 "$log"
  fi
  summary+=$(printf '%-16s %12s executions in %ss\n' "$fuzzer" "$executions" "$seconds")$'\n'
done
printf '%s' "$summary"
printf '%-16s %12s executions\n' "total" "$total"
exit "$failed"
