#!/usr/bin/env bash
# Compile-only check of the HIP backend: every csrc/cuda source (the sm_90a-only
# *_sm90a.cu files excepted) built by hipcc through csrc/cuda/vendors/hip.h, warnings
# as errors. The AMD targets are listed here and nowhere else. No AMD GPU or ROCm
# libraries are needed (nothing is linked or run); a HIP library build needs ROCm's
# runtime, which CI does not have, so there is no CMake target for it yet.
#
#   bash csrc/hip/compile_check.sh [hipcc]
#
# Debian's hipcc (ROCm 5.2 device libraries) has no gfx1100 bitcode, so that target is
# compiled with -nogpulib -fgpu-rdc (device code compiled, device link deferred).
set -euo pipefail
HIPCC=${1:-hipcc}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HIP_PLATFORM=amd  # hipcc otherwise targets NVIDIA when nvcc is installed
mapfile -t SOURCES < <(find "$ROOT/csrc/cuda" -name '*.cu' ! -name '*_sm90a.cu' | sort)
status=0
for arch in gfx90a gfx1100; do
  extra=()
  [[ $arch == gfx1100 ]] && extra=(-nogpulib -fgpu-rdc)
  for source in "${SOURCES[@]}"; do
    name=${source#"$ROOT/csrc/cuda/"}
    if "$HIPCC" -x hip -std=c++20 -O2 -Wall -Werror --offload-arch=$arch "${extra[@]}" \
        -I"$ROOT/include" -I"$ROOT/src" -I"$ROOT/csrc/cuda" -c "$source" -o "$WORK/${name//\//_}.$arch.o"; then
      echo "hip $arch $name: ok"
    else
      echo "hip $arch $name: FAILED"
      status=1
    fi
  done
done
exit $status
