// Blockwise 8-bit quantize and dequantize against a 256-entry code, bit-identical
// to upstream's CUDA kernels (formats.md section 2).
#include <algorithm>

#include "cuda_ops.h"
#include "quantize_common.cuh"

namespace bnb::cuda {
namespace {

// One thread per 8 consecutive elements, blocksize / 8 threads per quantization block.
template <typename T>
__global__ void __launch_bounds__(tuning::kQuantizeMaxThreads)
    quantize_blockwise_kernel(const T* __restrict__ A, const float* __restrict__ code, int64_t n, int blocksize,
                              bool vector_loads, bool vector_stores, uint8_t* __restrict__ out,
                              float* __restrict__ absmax) {
    __shared__ float code_table[kCodeSize];
    __shared__ float tree[kTreeNodes];
    __shared__ float warp_scratch[tuning::kQuantizeMaxThreads / kWarpSize];
    for (int i = threadIdx.x; i < kCodeSize; i += blockDim.x) code_table[i] = code[i];
    for (int i = threadIdx.x; i < kTreeNodes; i += blockDim.x) tree[i] = code[tree_pivot(i)];
    const int64_t first = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
    float v[8];
    load8(A, first, n, vector_loads, v);
    __syncthreads();  // code_table
    const int group = blocksize / 8;
    const float block_absmax = group_max(absmax8(v), group, warp_scratch);
    if (first >= n) return;
    if (threadIdx.x % group == 0) absmax[first / blocksize] = block_absmax;
    const float reciprocal = rcp_approx_ftz(block_absmax);
    uint32_t codes[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) codes[j] = search_code<TopBracket::kCode>(tree, code_table, mul_ftz(v[j], reciprocal));
    if (vector_stores && first + 8 <= n) {
        uint2 packed;
        packed.x = codes[0] | (codes[1] << 8) | (codes[2] << 16) | (codes[3] << 24);
        packed.y = codes[4] | (codes[5] << 8) | (codes[6] << 16) | (codes[7] << 24);
        *reinterpret_cast<uint2*>(out + first) = packed;
    } else {
        for (int j = 0; j < 8 && first + j < n; ++j) out[first + j] = static_cast<uint8_t>(codes[j]);
    }
}

// As dequantize_4bit_kernel: 16-byte output vectors, contiguous per warp.
template <typename T>
__global__ void __launch_bounds__(tuning::kDequantizeThreads)
    dequantize_blockwise_kernel(const uint8_t* __restrict__ A, const float* __restrict__ code,
                                const float* __restrict__ absmax, int64_t n, int log2_blocksize,
                                T* __restrict__ out) {
    __shared__ float code_table[kCodeSize];
    for (int i = threadIdx.x; i < kCodeSize; i += blockDim.x) code_table[i] = code[i];
    __syncthreads();
    constexpr int kElements = kPerVector<T>;
    constexpr int kVectors = tuning::kDequantizeVectorsPerThread;
    // kElements code bytes per vector.
    using Bits = std::conditional_t<kElements == 8, uint2, uint32_t>;
    const int lane = threadIdx.x % kWarpSize;
    const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
    const int64_t warp_first = warp * (kWarpSize * kVectors * kElements);
    uint32_t words[kVectors][2];
    float scale[kVectors];
#pragma unroll
    for (int v = 0; v < kVectors; ++v) {
        const int64_t first = warp_first + static_cast<int64_t>(v * kWarpSize + lane) * kElements;
        words[v][0] = words[v][1] = 0;
        scale[v] = 0.0f;
        if (first + kElements <= n) {
            if constexpr (kElements == 8) {
                const uint2 raw = __ldg(reinterpret_cast<const uint2*>(A + first));
                words[v][0] = raw.x;
                words[v][1] = raw.y;
            } else {
                words[v][0] = __ldg(reinterpret_cast<const uint32_t*>(A + first));
            }
            scale[v] = __ldg(absmax + (first >> log2_blocksize));
        }
    }
    static_assert(sizeof(Bits) == kElements, "one code byte per element");
#pragma unroll
    for (int v = 0; v < kVectors; ++v) {
        const int64_t first = warp_first + static_cast<int64_t>(v * kWarpSize + lane) * kElements;
        if (first + kElements <= n) {
            float values[kElements];
#pragma unroll
            for (int j = 0; j < kElements; ++j) {
                const uint32_t q = (words[v][j / 4] >> (8 * (j % 4))) & 0xffu;
                values[j] = mul_ftz(code_table[q], scale[v]);
            }
            store_vector<T>(out + first, values);
        } else {
            for (int64_t i = first; i < n; ++i) {
                out[i] = Element<T>::from_float(mul_ftz(code_table[A[i]], absmax[i >> log2_blocksize]));
            }
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(tuning::kScalarThreads)
    dequantize_blockwise_scalar_kernel(const uint8_t* __restrict__ A, const float* __restrict__ code,
                                       const float* __restrict__ absmax, int64_t n, int log2_blocksize,
                                       T* __restrict__ out) {
    __shared__ float code_table[kCodeSize];
    for (int i = threadIdx.x; i < kCodeSize; i += blockDim.x) code_table[i] = code[i];
    __syncthreads();
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = Element<T>::from_float(mul_ftz(code_table[A[i]], absmax[i >> log2_blocksize]));
    }
}

}  // namespace

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args) {
    const DeviceGuard guard(args.device.index);
    const int group = static_cast<int>(args.blocksize / tuning::kQuantizeElementsPerThread);
    const int threads = std::max(tuning::kQuantizeThreads, group);
    const int64_t blocks = ceil_div(ceil_div(args.n, tuning::kQuantizeElementsPerThread), threads);
    const bool vector_loads = is_aligned(args.A, 16);
    const bool vector_stores = is_aligned(args.out, 8);
    const cudaStream_t stream = to_stream(args.stream);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        quantize_blockwise_kernel<T><<<blocks, threads, 0, stream>>>(
            static_cast<const T*>(args.A), args.code, args.n, static_cast<int>(args.blocksize), vector_loads,
            vector_stores, args.out, args.absmax);
        return check_launch("quantize_blockwise");
    });
}

bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args) {
    const DeviceGuard guard(args.device.index);
    const int log2_blocksize = log2_exact(args.blocksize);
    const cudaStream_t stream = to_stream(args.stream);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* out = static_cast<T*>(args.out);
        const bool vectorized = is_aligned(args.out, 16) && is_aligned(args.A, kPerVector<T>);
        if (vectorized) {
            const int64_t per_block = int64_t{tuning::kDequantizeThreads} * tuning::kDequantizeVectorsPerThread *
                                      kPerVector<T>;
            dequantize_blockwise_kernel<T><<<ceil_div(args.n, per_block), tuning::kDequantizeThreads, 0, stream>>>(
                args.A, args.code, args.absmax, args.n, log2_blocksize, out);
        } else {
            const int64_t blocks = std::min<int64_t>(ceil_div(args.n, tuning::kScalarThreads),
                                                     int64_t{device_info(args.device.index).sm_count} * 16);
            dequantize_blockwise_scalar_kernel<T><<<blocks, tuning::kScalarThreads, 0, stream>>>(
                args.A, args.code, args.absmax, args.n, log2_blocksize, out);
        }
        return check_launch("dequantize_blockwise");
    });
}

}  // namespace bnb::cuda
