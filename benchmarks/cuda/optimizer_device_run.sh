#!/usr/bin/env bash
# The optimizer and paged-memory CUDA work in one call on the GPU machine (the device
# tool), from the repository root: build for sm_90 (C ABI library and C++ tests), the
# optimizer C++ tests (golden trajectories need .golden/ carried), compute-sanitizer
# memcheck and racecheck over them, then the disabled timing test against the issue's
# targets (AdamW8bit over 269M parameters <= 1.2 ms; 448 LoRA tensors <= 0.2 ms).
#
#   bash benchmarks/cuda/optimizer_device_run.sh [stage ...]   (build test sanitize time; default all)
set -u
OUT=${OUT:-/tmp/bnb-optimizer-out}
mkdir -p "$OUT"
export BNB_GOLDEN_DIR=$PWD/.golden
STAGES=${*:-build test sanitize time}
BUILD=build-dev
TESTS=$BUILD/tests/cpp/bitsandbytes_tests
FILTER='*CudaOptimizer*:*CudaGoldenOptimizer*'
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if has_stage build; then
  {
    stamp environment
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    stamp configure
    cmake -S . -B $BUILD -G Ninja -DBNB_BUILD_PYTHON=OFF -DBNB_CUDA_ARCHS=90 -DBNB_BUILD_BENCHMARKS=OFF 2>&1 | tail -2
    stamp build
    timeout 300 ninja -C $BUILD 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking)' | tail -30
    stamp done
  } 2>&1 | tee "$OUT/build.log"
fi
if has_stage test; then
  { stamp "C++ optimizer tests"; timeout 240 $TESTS --gtest_filter="$FILTER" > "$OUT/test.log" 2>&1; echo "exit $?"; stamp done; }
  grep -E "^\[  FAILED|SKIPPED \]|PASSED|tests ran|^exit" "$OUT/test.log" | head -60
fi
if has_stage sanitize; then
  {
    stamp "compute-sanitizer memcheck (lists, chunking, unaligned, paged, graph)"
    timeout 150 compute-sanitizer --tool memcheck --print-limit 20 $TESTS \
      --gtest_filter='CudaOptimizerTest.*:*UnalignedPointersGiveAlignedBytes/*8bit*' 2>&1 | tail -8
    stamp "compute-sanitizer racecheck (the 8-bit kernels' shared code tables)"
    timeout 120 compute-sanitizer --tool racecheck --print-limit 20 $TESTS \
      --gtest_filter='*MatchesHostReferenceOverSteps/*8bit*' 2>&1 | tail -8
    stamp done
  } > "$OUT/sanitizer.log" 2>&1
  grep -E "^=== |SUMMARY|PASSED|FAILED|rror" "$OUT/sanitizer.log" | tail -20
fi
if has_stage time; then
  {
    stamp "timings against the targets"
    timeout 120 $TESTS --gtest_also_run_disabled_tests --gtest_filter='*TimesStepsAgainstTheTargets*' 2>&1 | grep -E "ms/step|FAILED|OK"
    stamp done
  } 2>&1 | tee "$OUT/time.log"
fi
