#!/usr/bin/env bash
# Before/after benchmark of two builds of this library in one device call: the
# tree unpacked in .before/ (`git archive <commit> | tar -x -C .before`, carried
# with the call) and this one. Both are built for sm_90 and benchmarked with this
# tree's bench_cuda.py, alternating before/after for each round on the same GPU;
# compare.py prints the table.
#
#   bash benchmarks/cuda/before_after.sh [rounds]      (default 2)
set -u
OUT=${OUT:-/tmp/bnb-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
ROUNDS=${1:-2}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"


{
  stamp "build before (.before) and after (this tree)"
  build_library build-before .before
  build_library build-dev .
  befores=() afters=()
  for round in $(seq "$ROUNDS"); do
    for side in before after; do
      build_dir=build-dev
      [ "$side" = before ] && build_dir=build-before
      stamp "round $round: $side"
      timeout 300 env PYTHONPATH="$PWD/$build_dir/python" python3 benchmarks/cuda/bench_cuda.py --impl ours \
        --out "$OUT/${side}_$round.json" 2>&1 | tail -2
    done
    befores+=("$OUT/before_$round.json")
    afters+=("$OUT/after_$round.json")
  done
  stamp compare
  python3 benchmarks/cuda/compare.py --before "${befores[@]}" --after "${afters[@]}" > "$OUT/compare.md"
  stamp done
} 2>&1 | tee "$OUT/before_after.log"
tail -8 "$OUT/compare.md"
