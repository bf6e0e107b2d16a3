#!/usr/bin/env bash
# Compile-only check of the HIP backend: every csrc/cuda/*.cu built by hipcc through
# csrc/hip/hip_compat.h for gfx90a and gfx1100, warnings as errors. No AMD GPU or
# hipBLAS is needed (nothing is linked or run).
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
status=0
for arch in gfx90a gfx1100; do
  extra=()
  [[ $arch == gfx1100 ]] && extra=(-nogpulib -fgpu-rdc)
  for source in "$ROOT"/csrc/cuda/*.cu; do
    if "$HIPCC" -x hip -std=c++20 -O2 -Wall -Werror --offload-arch=$arch "${extra[@]}" \
        -I"$ROOT/include" -I"$ROOT/src" -I"$ROOT/csrc/cuda" -c "$source" -o "$WORK/$(basename "$source").$arch.o"; then
      echo "hip $arch $(basename "$source"): ok"
    else
      echo "hip $arch $(basename "$source"): FAILED"
      status=1
    fi
  done
done
exit $status
