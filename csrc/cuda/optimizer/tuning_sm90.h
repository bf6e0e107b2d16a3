// Launch shapes of the optimizer updates, for an H200 (sm_90, 132 SMs). Not yet
// measured: the values follow from the kernels' structure (one warp per 256-element
// unit, memory bound) and await benchmarks/cuda/optimizer_bench's figures; every GPU
// uses them until another architecture gets its own tuning_sm<arch>.h.
#pragma once

#include <cstdint>

namespace bnb::cuda::optimizer_tuning {

// Threads per block: 8 warps, each updating whole 256-element units.
constexpr int kThreads = 256;
// Blocks resident per SM that a grid is capped at; past that the warps loop over
// the remaining units (the 8-bit kernels fill their code tables once per block).
constexpr int kBlocksPerSm = 16;

// Bytes of kernel parameters one launch may take: the 4 KB every CUDA version and
// HIP accept (CUDA 12.1+ allows 32 KB on sm_70+, not relied on). The tensor table
// holds as many tensors as fit; longer lists take several launches.
constexpr int64_t kParameterBytes = 4096;

}  // namespace bnb::cuda::optimizer_tuning
