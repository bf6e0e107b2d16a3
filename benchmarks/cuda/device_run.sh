#!/usr/bin/env bash
# One call on the GPU machine (the device tool), from the repository root:
#   build for sm_90, C++ tests, the CUDA tests of tests/python, compute-sanitizer over the
#   CUDA tests, benchmarks of ours and of upstream 0.50.2 (its wheel unpacked in
#   .upstream/, run in its own process), and the markdown report.
# Needs the golden vectors copied to .golden/ (shared/golden does not travel).
#
#   bash benchmarks/cuda/device_run.sh [stage ...]
#     stages, in this order: build test sanitize diagnose ncu smoke bench
#     (default: all but ncu and smoke; smoke = ours' small-batch matmul rows only)
#
# Logs go to $OUT (the device tool's folder that comes back), at most 8 files.
set -u
OUT=${OUT:-/tmp/bnb-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export BNB_GOLDEN_DIR=$PWD/.golden
STAGES=${*:-build test sanitize diagnose bench}
BUILD=build-dev
PY="env PYTHONPATH=$PWD/$BUILD/python python3"

has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if has_stage build; then
  {
    stamp environment
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"
    nvcc --version | tail -1
    stamp configure
    cmake -S . -B $BUILD -G Ninja -DPython_EXECUTABLE="$(which python3)" -DBNB_CUDA_ARCHS=90 \
      -DBNB_BUILD_BENCHMARKS=OFF 2>&1 | tail -4
    stamp build
    timeout 300 ninja -C $BUILD 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking)' | tail -40
    stamp "ctest"
    # The summary and the failures only: the list of skipped tests once pushed the summary out of a tail.
    (cd $BUILD && timeout 120 ctest -j 16 --output-on-failure > ctest.log 2>&1
     grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\*\*\*Exception|^\[  FAILED" ctest.log | head -40)
    stamp done
  } 2>&1 | tee "$OUT/build.log"
fi

if has_stage test; then
  # Every CUDA test: the CUDA-only files and each test of tests/python that runs on
  # cuda (the CPU cases run in CI). pytest-xdist replaces a crashed worker and reports
  # its test as failed, so one crash does not hide the rest; -v without the PASSED
  # lines names every failure even in a run cut by its limit.
  {
    stamp "pytest: every CUDA test of tests/python"
    timeout 300 $PY -m pytest -p no:cacheprovider -n 16 -v -rf tests/python \
      -k "$CUDA_TESTS_K" 2>&1 | grep -vE "PASSED|Warning|warner"
    stamp done
  } > "$OUT/pytest.log" 2>&1
  grep -E "^=== |passed|failed|FAILED|crashed|rror" "$OUT/pytest.log" | tail -40
fi

if has_stage sanitize; then
  # The whole CUDA suite (C++ and Python) under memcheck, racecheck, initcheck and synccheck.
  bash benchmarks/cuda/sanitize_suite.sh $BUILD
fi

if has_stage diagnose; then
  # A C++ exception thrown by the op glue crashes Python on this machine (not on the
  # development machine): a native backtrace, and the same glue built without LTO.
  cat > /tmp/raise_from_glue.py <<'PY'
import sys, torch, bitsandbytes, bitsandbytes.functional as F
A, code = torch.randn(100), F.create_dynamic_map()
for device in sys.argv[1:]:
    for blocksize in (0, 32):
        try:
            torch.ops.bitsandbytes.quantize_blockwise(A.to(device), code.to(device), blocksize)
        except ValueError as error:
            print("raised", device, blocksize, str(error)[:60], flush=True)
print("no crash")
PY
  {
    stamp "raise from the glue"
    timeout 60 $PY -X faulthandler /tmp/raise_from_glue.py cpu cuda 2>&1 | grep -v "^  File" | tail -6
    stamp "native backtrace"
    timeout 120 env PYTHONPATH=$PWD/$BUILD/python cuda-gdb -q -batch -ex run -ex "bt 30" \
      --args python3 /tmp/raise_from_glue.py cpu 2>&1 | grep -E "^#|signal|SIG" | cut -c1-220 | head -40
    stamp "glue built without LTO (CPU backend only)"
    cmake -S . -B build-nolto -G Ninja -DPython_EXECUTABLE="$(which python3)" -DBNB_WITH_CUDA=OFF \
      -DBNB_BUILD_TESTS=OFF -DBNB_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS=-fno-lto > /dev/null 2>&1
    timeout 150 ninja -C build-nolto bitsandbytes_stage 2>&1 | grep -E "error|FAILED" | head -5
    timeout 60 env PYTHONPATH=$PWD/build-nolto/python python3 -X faulthandler /tmp/raise_from_glue.py cpu 2>&1 \
      | grep -v "^  File" | tail -6
    stamp done
  } > "$OUT/diagnose.log" 2>&1
  cat "$OUT/diagnose.log"
fi

if has_stage ncu; then
  # Nsight Compute readings of each kernel family (ours, then upstream's for the same
  # calls): duration, DRAM and SM throughput, occupancy, the main warp stalls.
  NCU="ncu --clock-control none --kernel-name-base function --kernel-name regex:4bit|uantize|gemv|gemm|nvjet|Gemm
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats"
  {
    stamp "ncu: ours"
    timeout 200 $NCU $PY benchmarks/cuda/ncu_probe.py 1,4,16,64 2>&1
    stamp "ncu: upstream"
    timeout 150 $NCU env PYTHONPATH=$PWD/.upstream python3 benchmarks/cuda/ncu_probe.py 1,4,16 2>&1
    stamp done
  } > "$OUT/ncu.log" 2>&1
  grep -E "^=== |^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Achieved Occupancy|==ERROR|==WARNING" "$OUT/ncu.log" | head -120
fi

if has_stage smoke; then
  timeout 150 $PY benchmarks/cuda/bench_cuda.py --impl ours --quick --skip-quant --batches 1,4,16,64 \
    --out "$OUT/smoke.json" > "$OUT/smoke.log" 2>&1
  python3 -c "import json, sys; [print(r['op'], r['shape'], r['dtype'], r['batch'], 'kernel', r['kernel_us'], 'eager', \
    r['eager_us']) for r in json.load(open(sys.argv[1]))['rows']]" "$OUT/smoke.json"
fi

if has_stage bench; then
  {
    stamp "benchmark: ours"
    timeout 300 $PY benchmarks/cuda/bench_cuda.py --impl ours --paths --out "$OUT/bench_ours.json" 2>&1 | tail -5
    stamp "benchmark: upstream"
    timeout 180 env PYTHONPATH=$PWD/.upstream python3 benchmarks/cuda/bench_cuda.py --impl upstream \
      --out "$OUT/bench_upstream.json" 2>&1 | tail -5
    stamp report
    python3 benchmarks/cuda/report.py "$OUT/bench_ours.json" "$OUT/bench_upstream.json" > "$OUT/results.md"
    stamp done
  } 2>&1 | tee "$OUT/bench.log"
  tail -60 "$OUT/results.md"
fi
