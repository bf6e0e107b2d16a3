# Sourced by the device scripts (benchmarks/cuda/*.sh, benchmarks/e2e/device_run.sh).

# A time-stamped section header in a log.
stamp() { echo "=== $(date +%T) $*"; }

# The library and its Python package of source tree $2 in build folder $1, for sm_90, without the
# C++ tests or benchmarks; an existing configuration (device_run.sh's) is kept. BUILD_JOBS limits
# ninja's jobs (builds side by side). Prints the build's errors only.
build_library() {
  [ -f "$1/CMakeCache.txt" ] || cmake -S "$2" -B "$1" -G Ninja -DPython_EXECUTABLE="$(which python3)" \
    -DBNB_CUDA_ARCHS=90 -DBNB_BUILD_TESTS=OFF -DBNB_BUILD_BENCHMARKS=OFF > /dev/null || return 1
  timeout 400 ninja -C "$1" ${BUILD_JOBS:+-j "$BUILD_JOBS"} bitsandbytes_stage 2>&1 | grep -E "error|FAILED" | head -20
}

# A new folder holding a dist-info of bitsandbytes 0.50.2, to put on PYTHONPATH beside a staged
# build's python/ folder: Transformers and Accelerate read the distribution's metadata, which a
# staged build lacks. Prints the folder.
package_metadata_dir() {
  local site
  site=$(mktemp -d)
  mkdir -p "$site/bitsandbytes-0.50.2.dist-info"
  printf 'Metadata-Version: 2.1\nName: bitsandbytes\nVersion: 0.50.2\n' > "$site/bitsandbytes-0.50.2.dist-info/METADATA"
  printf 'bitsandbytes\n' > "$site/bitsandbytes-0.50.2.dist-info/top_level.txt"
  echo "$site"
}

# pytest's -k for every CUDA test of tests/python: the CUDA-only files and each test that runs
# on cuda (their CPU cases run in CI).
CUDA_TESTS_K="cuda or test_cuda_kernels or test_matmul_4bit_kernels"
