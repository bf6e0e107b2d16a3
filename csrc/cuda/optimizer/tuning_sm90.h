// Launch shapes of the optimizer updates, for an H200 (sm_90, 132 SMs); every GPU
// uses them until another architecture gets its own tuning_sm<arch>.h.
#pragma once

#include <cstdint>

namespace bnb::cuda::optimizer_tuning {

// Threads per block: 8 warps, each updating whole 256-element units.
constexpr int kThreads = 256;
// Blocks per SM that a 32-bit grid is capped at; past that the warps loop over the
// remaining units.
constexpr int kBlocksPerSm = 16;
// The 8-bit kernels build their code tables once per block, so their grid is capped
// at the resident blocks: at 4 per SM the register limit (64) holds every rule
// without spilling but AdEMAMix (76 bytes), where 3 would leave a quarter of the
// warps idle while loads are in flight.
constexpr int kBlocksPerSm8bit = 4;

// Bytes of kernel parameters one launch may take. The tensor table holds as many
// tensors as fit, longer lists take several launches: CUDA 12.1 and later take
// 32764 bytes on sm_70+ (a QLoRA model's LoRA tensors in one or two launches), HIP
// the 4 KB of older CUDA.
#if defined(__HIPCC__) || CUDART_VERSION < 12010
constexpr int64_t kParameterBytes = 4096;
#else
constexpr int64_t kParameterBytes = 32764;
#endif

}  // namespace bnb::cuda::optimizer_tuning
