#!/usr/bin/env bash
# Installs what it needs, then runs every test: the C/C++ suite (ctest), the
# CUDA and HIP compile checks where their compilers exist, pytest, and the
# sanitizer runs (clang): the C/C++ suite under ASan + UBSan, each fuzzer for
# BNB_FUZZ_SECONDS (default 30), and pytest again against the sanitizer build
# of the library. BNB_SANITIZERS=0 leaves the sanitizer runs out.
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$BNB_ROOT"

need_apt=()
[ -e /usr/include/gtest/gtest.h ] || need_apt+=(libgtest-dev)
[ -e /usr/include/benchmark/benchmark.h ] || need_apt+=(libbenchmark-dev)
command -v hipcc >/dev/null 2>&1 || need_apt+=(hipcc libamdhip64-dev rocm-device-libs)
# libFuzzer and the ASan/UBSan runtimes come with Debian's clang and libclang-rt-dev.
has_sanitizer_toolchain() {
  command -v clang++ >/dev/null 2>&1 && [ -e "$(clang -print-file-name=libclang_rt.asan-x86_64.so)" ]
}
sanitize=${BNB_SANITIZERS:-1}
[ "$sanitize" = 0 ] || has_sanitizer_toolchain || need_apt+=(clang libclang-rt-dev)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing ${need_apt[*]}"
  (apt-get update -q && apt-get install -y -q "${need_apt[@]}") >/dev/null
fi

PATH=$BNB_VENV/bin:$PATH
echo "== C/C++ tests"
cmake -S . -B build/ctest -G Ninja -DBNB_BUILD_PYTHON=OFF -DBNB_WITH_CUDA=OFF >/dev/null
cmake --build build/ctest
ctest --test-dir build/ctest --output-on-failure

if command -v hipcc >/dev/null 2>&1; then
  echo "== HIP compile check (gfx90a, gfx1100)"
  bash csrc/hip/compile_check.sh
fi

if [ "$sanitize" != 0 ] && ! has_sanitizer_toolchain; then
  sanitize=0
  echo "== sanitizer runs skipped: clang with libclang-rt-dev not found"
fi
if [ "$sanitize" != 0 ]; then
  # One clang build in build/sanitize serves the ctest run, the fuzzers and the sanitized pytest.
  echo "== C/C++ tests under ASan + UBSan (clang, build/sanitize)"
  cmake -S . -B build/sanitize -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DBNB_BUILD_FUZZERS=ON -DBNB_BUILD_PYTHON=OFF -DBNB_BUILD_BENCHMARKS=OFF -DBNB_WITH_CUDA=OFF >/dev/null
  cmake --build build/sanitize
  # install.*: the install consumers are built without the fuzzer's coverage runtime.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build/sanitize --output-on-failure -j2 -E '^install[.]'
  echo "== fuzzers (${BNB_FUZZ_SECONDS:-30} s each)"
  bash tests/fuzz/run.sh "${BNB_FUZZ_SECONDS:-30}"
fi

echo "== Python tests"
HF_HUB_OFFLINE=1 "$BNB_PYTHON" -m pytest -q -ra tests/python "$@"

if [ "$sanitize" != 0 ]; then
  echo "== Python tests against the ASan + UBSan library (tests/fuzz/python_sanitized.sh)"
  bash tests/fuzz/python_sanitized.sh
fi
