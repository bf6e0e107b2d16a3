// Launch parameters of the elementwise (de)quantization kernels, in one table, so
// that a tuning change is one edit here. Chosen on an H100 (sm_90, 132 SMs). The
// 4-bit matmul has its own table (gemm_4bit/tuning_sm90.h).
#pragma once

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

}  // namespace bnb::cuda::tuning
