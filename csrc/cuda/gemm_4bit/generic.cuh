// The generic 4-bit matmul kernel: any shape and alignment, correct and slow.
#pragma once

#include <algorithm>

#include "common.cuh"

namespace bnb::cuda {

// One warp per output element; nibbles addressed by flat index, so any K and
// any alignment work.
template <typename T, bool NESTED>
__global__ void __launch_bounds__(256) gemm_4bit_generic_kernel(GemmParams p) {
    __shared__ float table[16];
    __shared__ float nested_code[NESTED ? 256 : 1];
    for (int i = threadIdx.x; i < 16; i += blockDim.x) table[i] = p.code != nullptr ? p.code[i] : p.codebook.values[i];
    const Scales<NESTED> scales = load_scales<NESTED>(p, nested_code);
    __syncthreads();
    const T* A = static_cast<const T*>(p.A);
    T* out = static_cast<T*>(p.out);
    const int lane = threadIdx.x % kWarpSize;
    const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarpSize;
    for (int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize; w < p.M * p.N;
         w += warps) {
        const int64_t m = w / p.N;
        const int64_t n = w % p.N;
        float acc = 0.0f;
        for (int64_t k = lane; k < p.K; k += kWarpSize) {
            const int64_t i = n * p.K + k;
            const uint32_t byte = p.B[i / 2];
            const uint32_t code = (i & 1) ? (byte & 15u) : (byte >> 4);
            const float weight = mul_ftz(table[code], scales(i >> p.log2_blocksize));
            acc = fmaf(weight, Element<T>::to_float(A[m * p.K + k]), acc);
        }
        acc = warp_sum(acc);
        if (lane == 0) out[m * p.N + n] = Element<T>::from_float(acc + bias_of<T>(p, n));
    }
}

template <typename T, bool NESTED>
void launch_generic(const GemmParams& p, cudaStream_t stream, int sm_count) {
    const int64_t blocks = std::min<int64_t>(ceil_div(p.M * p.N * kWarpSize, 256), int64_t{sm_count} * 32);
    gemm_4bit_generic_kernel<T, NESTED><<<std::max<int64_t>(blocks, 1), 256, 0, stream>>>(p);
}

}  // namespace bnb::cuda
