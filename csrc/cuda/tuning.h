// Launch parameters of every CUDA kernel family, in one table, so that a tuning
// change is one edit here. Chosen on an H100 (sm_90, 132 SMs); see
// benchmarks/RESULTS.md for the measurements behind the 4-bit matmul choices.
#pragma once

#include <cstdint>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb::cuda::tuning {

// ---- elementwise (de)quantization --------------------------------------------------
// Dequantizers: each thread writes this many 16-byte vectors of output, the warp's
// stores covering one contiguous span (coalesced loads and stores).
constexpr int kDequantizeThreads = 256;
constexpr int kDequantizeVectorsPerThread = 4;

// Quantizers: each thread reads 8 consecutive elements; the threads of one
// quantization block reduce its absmax together.
constexpr int kQuantizeElementsPerThread = 8;
constexpr int kQuantizeThreads = 256;
// blocksize 4096 needs 512 threads per quantization block.
constexpr int kQuantizeMaxThreads = 512;

// Scalar fallbacks (unaligned pointers, any size).
constexpr int kScalarThreads = 256;

// ---- 4-bit matmul ------------------------------------------------------------------------
// SIMT kernel: one warp computes `rows_per_warp` outputs for up to `max_rows` rows
// of A, lanes striding over K in 32-element chunks.
struct SimtConfig {
    int max_rows;       // compile-time row count of A (1, 2, 4 or 8)
    int rows_per_warp;  // weight rows per warp
};
constexpr int kSimtWarpsPerBlock = 4;
constexpr int kSimtMaxRows = 8;

inline SimtConfig simt_config(int64_t M) {
    if (M <= 1) return {1, 4};
    if (M <= 2) return {2, 4};
    if (M <= 4) return {4, 2};
    return {8, 2};
}

// Tensor-core kernel: a block of kMmaKWarps warps shares 16 * m_tiles weight rows
// and splits K among its warps; each warp multiplies with mma.m16n8k16 over
// n_tiles groups of 8 rows of A.
struct MmaConfig {
    int n_tiles;  // 8-row groups of A (1, 2, 4 or 8)
    int m_tiles;  // 16-row tiles of W per block (1 or 2)
};
constexpr int kMmaKWarps = 8;
constexpr int kMmaMaxRows = 64;

inline MmaConfig mma_config(int64_t M, int64_t N, int sm_count) {
    const int n_tiles = M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8;
    // Two weight tiles per block halve the re-reads of A, worth it once the grid
    // still has about two blocks per SM (the shared partial sums limit m*n to 8).
    const int m_tiles = (n_tiles <= 4 && N / 32 >= 2 * sm_count) ? 2 : 1;
    return {n_tiles, m_tiles};
}

// Fused kernels vs dequantize + dense GEMM: the largest M that stays fused.
// Tensor cores (fp16/bf16 on sm_80+) hold out longer than SIMT.
inline int64_t fused_max_rows(bool tensor_cores, int64_t K) {
    if (K % 32 != 0) return 0;  // the fused kernels read 32-element chunks
    return tensor_cores ? kMmaMaxRows : 4;
}

// AUTO: the SIMT kernel serves M rows (else the tensor-core kernel, where usable).
inline bool prefer_simt(bool tensor_cores, int64_t M) { return !tensor_cores || M <= 2; }

}  // namespace bnb::cuda::tuning
