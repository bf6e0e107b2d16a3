#!/usr/bin/env bash
# Installs what it needs, then runs every test: the C/C++ suite (ctest), the
# CUDA and HIP compile checks where their compilers exist, and pytest.
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$BNB_ROOT"

need_apt=()
[ -e /usr/include/gtest/gtest.h ] || need_apt+=(libgtest-dev)
[ -e /usr/include/benchmark/benchmark.h ] || need_apt+=(libbenchmark-dev)
command -v hipcc >/dev/null 2>&1 || need_apt+=(hipcc libamdhip64-dev rocm-device-libs)
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

echo "== Python tests"
HF_HUB_OFFLINE=1 "$BNB_PYTHON" -m pytest -q -ra tests/python "$@"
