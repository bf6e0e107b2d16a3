#!/usr/bin/env bash
# A kernel change checked and timed in one device call, from the repository root with
# .golden/, .upstream/ and .before/ (`git archive <commit> | tar -x -C .before`) carried:
#   this tree built with its C++ tests (device_run.sh build: ctest, golden included), the
#   tree in .before/ built beside it, the quick benchmark of after / before / upstream 0.50.2
#   alternated in one process order, compare.py's table, the CUDA pytest files of the 4-bit
#   and quantization kernels, compute-sanitizer memcheck and racecheck of their C++ tests, and
#   the NaN payloads every backend writes (benchmarks/cuda/nan_payloads.py).
#
#   bash benchmarks/cuda/check_run.sh [batches]        (default 1,4,16,64)
# Trees in .variant-<name>/ (carried too) are built and timed beside .before/ as well.
set -u
OUT=${OUT:-/tmp/bnb-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 BNB_GOLDEN_DIR=$PWD/.golden HF_HUB_OFFLINE=1
BATCHES=${1:-1,4,16,64}
TESTS=build-dev/tests/cpp/bitsandbytes_tests
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench() {  # side, PYTHONPATH, [impl], [extra flags]
  timeout 150 env PYTHONPATH="$2" python3 benchmarks/cuda/bench_cuda.py --impl "${3:-ours}" --quick \
    --batches "$BATCHES" ${4:-} --out "$OUT/bench_$1.json" 2>&1 | tail -1
}
VARIANTS=$(ls -d .variant-* 2>/dev/null | sed 's/^.variant-//')

{
  stamp "build .before and the variants (library only) beside this tree"
  export BUILD_JOBS=6  # the builds run side by side
  [ -d .before ] && build_library build-before .before &
  for name in $VARIANTS; do build_library "build-variant-$name" ".variant-$name" & done
  bash benchmarks/cuda/device_run.sh build > /dev/null 2>&1
  grep -E "tests passed|tests failed|FAILED|Failed|error:" "$OUT/build.log" | head -20
  wait
  stamp "benchmark: after (with both 4-bit paths), before, variants, upstream"
  bench after "$PWD/build-dev/python" ours --paths
  [ -d build-before/python ] && bench before "$PWD/build-before/python"
  for name in $VARIANTS; do bench "variant-$name" "$PWD/build-variant-$name/python"; done
  bench upstream "$PWD/.upstream" upstream
  python3 benchmarks/cuda/compare.py --before "$OUT/bench_before.json" --after "$OUT/bench_after.json" \
    > "$OUT/compare.md" 2>&1
  for name in $VARIANTS; do
    python3 benchmarks/cuda/compare.py --before "$OUT/bench_before.json" --after "$OUT/bench_variant-$name.json" \
      > "$OUT/compare_variant-$name.md" 2>&1
  done
  python3 benchmarks/cuda/report.py "$OUT/bench_after.json" "$OUT/bench_upstream.json" > "$OUT/results.md" 2>&1
  stamp "pytest: 4-bit and quantization kernels on cuda"
  timeout 200 env PYTHONPATH=$PWD/build-dev/python python3 -m pytest -q -p no:cacheprovider -n 16 -rf \
    tests/python/test_matmul_4bit_kernels.py tests/python/test_cuda_kernels.py tests/python/test_nn_4bit.py \
    ${CHECK_PYTEST_FILES:-} -k "$CUDA_TESTS_K" \
    2>&1 | grep -E "^(FAILED|ERROR)| passed| failed|no tests ran" | tail -15
  stamp "memcheck: 4-bit matmul and golden quantizers (C++)"
  timeout 120 compute-sanitizer --tool memcheck --print-limit 10 $TESTS \
    --gtest_filter='CudaGemm4bit.*:*CudaGoldenBlockwise*:*CudaGoldenFourBit*' 2>&1 | tail -3
  stamp "memcheck: the tensor-core kernels (Python)"
  timeout 100 compute-sanitizer --tool memcheck --print-limit 10 env PYTHONPATH=$PWD/build-dev/python python3 -m pytest \
    -q -p no:cacheprovider tests/python/test_matmul_4bit_kernels.py -k "test_tensor_core_kernel and (sm or 4096x32)" \
    2>&1 | tail -3
  stamp "racecheck: the same"
  timeout 90 compute-sanitizer --tool racecheck --print-limit 10 $TESTS \
    --gtest_filter='CudaGemm4bit.*:*CudaGoldenBlockwise*' 2>&1 | tail -2
  timeout 90 compute-sanitizer --tool racecheck --print-limit 10 env PYTHONPATH=$PWD/build-dev/python python3 -m pytest \
    -q -p no:cacheprovider tests/python/test_matmul_4bit_kernels.py -k "test_tensor_core_kernel and sm and True-64-bf16" \
    2>&1 | tail -2
  stamp "NaN payloads: ours, upstream"
  timeout 30 env PYTHONPATH=$PWD/build-dev/python python3 benchmarks/cuda/nan_payloads.py 2>&1 | tail -12
  timeout 30 env PYTHONPATH=$PWD/.upstream python3 benchmarks/cuda/nan_payloads.py 2>&1 | tail -12
  stamp done
} 2>&1 | tee "$OUT/check.log"
tail -40 "$OUT/compare.md"
for name in $VARIANTS; do echo "== variant $name"; grep -E "matmul|rows more" "$OUT/compare_variant-$name.md"; done
tail -30 "$OUT/results.md"
