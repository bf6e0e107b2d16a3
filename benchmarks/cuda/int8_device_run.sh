#!/usr/bin/env bash
# The LLM.int8() CUDA work in one call on the GPU machine (the device tool), from the
# repository root: build for sm_90 (C ABI library and C++ tests), the int8 C++ tests,
# compute-sanitizer memcheck over them and racecheck over the shared-memory kernels,
# then benchmarks/cuda/bench_int8.py for ours, upstream 0.50.2 (.upstream/, its own
# process) and torch, and the markdown table. Needs .golden/ and .upstream/ carried.
#
#   bash benchmarks/cuda/int8_device_run.sh [stage ...]   (build test sanitize bench; default all)
set -u
OUT=${OUT:-/tmp/bnb-int8-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export BNB_GOLDEN_DIR=$PWD/.golden
STAGES=${*:-build test bench sanitize}
BUILD=build-dev
TESTS=$BUILD/tests/cpp/bitsandbytes_tests
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if has_stage build; then
  {
    stamp environment
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
    stamp configure
    cmake -S . -B $BUILD -G Ninja -DBNB_BUILD_PYTHON=OFF -DBNB_CUDA_ARCHS=90 -DBNB_BUILD_BENCHMARKS=OFF 2>&1 | tail -2
    stamp build
    timeout 300 ninja -C $BUILD 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking)' | tail -30
    stamp done
  } 2>&1 | tee "$OUT/build.log"
fi
if has_stage test; then
  { stamp "C++ tests (all; the int8 ones by name)"; timeout 120 $TESTS > "$OUT/test.log" 2>&1; echo "exit $?"; stamp done; }
  grep -E "^\[  FAILED|OK \] .*Int8|PASSED|tests ran|^exit" "$OUT/test.log" | head -40
fi
if has_stage bench; then
  {
    stamp "bench ours";     timeout 110 python3 benchmarks/cuda/bench_int8.py --impl ours --lib $BUILD/libbitsandbytes.so --out "$OUT/int8_ours.json" >/dev/null
    stamp "bench torch";    timeout 60 python3 benchmarks/cuda/bench_int8.py --impl torch --out "$OUT/int8_torch.json" >/dev/null
    stamp "bench upstream"; PYTHONPATH=$PWD/.upstream timeout 120 python3 benchmarks/cuda/bench_int8.py --impl upstream --out "$OUT/int8_upstream.json" >/dev/null
    stamp done
  } 2>&1 | tee "$OUT/bench.log"
  python3 benchmarks/cuda/bench_int8.py --report "$OUT"/int8_ours.json "$OUT"/int8_torch.json "$OUT"/int8_upstream.json | tee "$OUT/int8_table.md"
fi
if has_stage sanitize; then
  {
    stamp "memcheck"
    timeout 150 compute-sanitizer --tool memcheck --print-limit 10 $TESTS --gtest_filter='*Int8*' 2>&1 | tail -12
    stamp "racecheck (quantizers, stream kernel, epilogue)"
    timeout 40 compute-sanitizer --tool racecheck --print-limit 10 $TESTS \
      --gtest_filter='CudaInt8.Quantizers*:CudaInt8.MmDequant*:CudaInt8.QuantizeAndScaledMm*' 2>&1 | tail -8
    timeout 100 compute-sanitizer --tool racecheck --print-limit 10 $TESTS --gtest_filter="CudaInt8.ScaledMm*" 2>&1 | tail -8
    stamp done
  } 2>&1 | tee "$OUT/sanitize.log"
fi
