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
constexpr int kDequantizeVectorsPerThread = 8;

// Quantizers: each thread reads 8 consecutive elements; the threads of one
// quantization block reduce its absmax together.
constexpr int kQuantizeElementsPerThread = 8;
constexpr int kQuantizeThreads = 256;
// blocksize 4096 needs 512 threads per quantization block.
constexpr int kQuantizeMaxThreads = 512;

// Scalar fallbacks (unaligned pointers, any size).
constexpr int kScalarThreads = 256;

// ---- 4-bit matmul ------------------------------------------------------------------------
// SIMT kernel: one warp per weight row, up to kSimtMaxRows rows of A (compiled
// for 1, 2, 4 and 8), lanes striding over K in 32-element chunks.
constexpr int kSimtWarpsPerBlock = 4;
constexpr int kSimtMaxRows = 8;

inline int simt_max_rows(int64_t M) { return M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8; }

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
    // Two weight tiles per block halve the re-reads of A from L2, worth it when the
    // grid keeps about two blocks per SM, or one when A is large (4+ row groups).
    // The shared partial sums allow n_tiles * m_tiles <= 8.
    const int64_t blocks_of_two = N / 32;
    const bool two = n_tiles <= 4 && (blocks_of_two >= 2 * sm_count || (n_tiles == 4 && 4 * blocks_of_two >= 3 * sm_count));
    return {n_tiles, two ? 2 : 1};
}

// Fused kernels vs dequantize + dense GEMM: the largest M that stays fused.
// Measured on the H100 (benchmarks/RESULTS.md, "Heuristic"): the tensor-core kernel
// is 2.4-4.2x faster than dequantize + cuBLAS up to 16 rows and takes 0.83-1.03 of
// its time at 64 rows, so 64 is the crossover. Without tensor cores the SIMT kernel's work
// grows with every row of A; 4 is an estimate, not a measurement.
inline int64_t fused_max_rows(bool tensor_cores, int64_t K) {
    if (K % 32 != 0) return 0;  // the fused kernels read 32-element chunks
    return tensor_cores ? kMmaMaxRows : 4;
}

// AUTO: the SIMT kernel serves M rows only without tensor cores. Measured on the
// H100 (benchmarks/RESULTS.md), the tensor-core kernel at M = 4 beat the SIMT one at
// M = 1 on every benchmark shape (13.0 vs 15.4 us for 4096x4096, 102 vs 125 us for
// 28672x8192): dequantizing straight into mma fragments costs fewer instructions
// per weight than the SIMT dot product, even with 7 of 8 mma columns idle.
inline bool prefer_simt(bool tensor_cores, int64_t M) {
    (void)M;
    return !tensor_cores;
}

}  // namespace bnb::cuda::tuning
