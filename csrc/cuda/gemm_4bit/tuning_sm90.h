// Launch shapes and kernel choices of the 4-bit matmul, chosen on an H100 (sm_90,
// 132 SMs) from the measurements in benchmarks/RESULTS.md ("4-bit matmul" and
// "Heuristic"). It is the only architecture measured so far, so select.cu applies
// this table on every GPU; another architecture's measurements become another
// tuning_sm<arch>.h chosen there by compute capability.
#pragma once

#include <cstdint>

namespace bnb::cuda::tuning {

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

// From 17 rows of A (4+ row groups) the K-split kernel's re-reads of A from L2 (all
// of A per 16 or 32 weight rows) outweigh the weights: gemm_4bit_mma_shared_a_kernel
// stages A in shared memory for 16 * warps weight rows, 8 warps where that grid still
// gives every SM a block, else 4; 0 keeps the K-split kernel (a grid too small to fill
// the GPU without splitting K).
inline int mma_staged_a_warps(int64_t M, int64_t N, int sm_count) {
    if (M <= 16) return 0;
    if (N / 128 >= sm_count) return 8;
    if (N / 64 >= sm_count) return 4;
    return 0;
}

// Fused kernels vs dequantize + dense GEMM: the largest M that stays fused.
// Measured on the H200 (benchmarks/RESULTS.md, "Heuristic", 2026-12-04): up to 32
// rows the tensor-core kernel is faster than dequantize + cuBLASLt on every shape
// (4096x4096: 18.4 against 29.6 us at 32 rows); at 48-64 rows it stays faster only
// where A is staged in shared memory (28672x8192: 200 against 290 us at 64 rows),
// while the K-split kernel that small grids take loses (4096x4096: 37.7 against
// 28.4 us at 64 rows). Without tensor cores the SIMT kernel's work grows with every
// row of A; 4 is an estimate, not a measurement.
inline int64_t fused_max_rows(bool tensor_cores, int64_t N, int64_t K, int sm_count) {
    if (K % 32 != 0) return 0;  // the fused kernels read 32-element chunks
    if (!tensor_cores) return 4;
    return mma_staged_a_warps(kMmaMaxRows, N, sm_count) != 0 ? kMmaMaxRows : 32;
}

// AUTO: the SIMT kernel serves M rows only without tensor cores. Measured
// (benchmarks/RESULTS.md, "4-bit matmul"), the tensor-core kernel at M = 4 beat the
// SIMT one at M = 1 on every benchmark shape: dequantizing straight into mma
// fragments costs fewer instructions per weight than the SIMT dot product, even
// with 7 of 8 mma columns idle.
inline bool prefer_simt(bool tensor_cores) { return !tensor_cores; }

// cuBLASLt workspace of the dense GEMM, carved out of the caller's workspace:
// the sizes NVIDIA's cuBLAS documentation recommends (32 MiB on Hopper, 4 MiB
// before it); not measured here.
inline int64_t dense_gemm_workspace_bytes(int compute_capability) {
    return compute_capability >= 90 ? int64_t{32} << 20 : int64_t{4} << 20;
}

}  // namespace bnb::cuda::tuning
