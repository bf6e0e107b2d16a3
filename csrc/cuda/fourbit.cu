// 4-bit NF4 / FP4 quantize and dequantize, bit-identical to upstream's CUDA
// kernels (formats.md section 3).
#include <algorithm>

#include "cuda_ops.h"
#include "quantize_common.cuh"

namespace bnb::cuda {
namespace {

// One thread per 8 consecutive elements; the blocksize / 8 threads of a
// quantization block share its absmax. Writes 4 packed bytes per thread.
template <typename T, bnb_quant_type Q>
__global__ void __launch_bounds__(tuning::kQuantizeMaxThreads)
    quantize_4bit_kernel(const T* __restrict__ A, int64_t n, int blocksize, bool vector_loads, bool word_stores,
                         EncoderCells cells, uint8_t* __restrict__ packed, float* __restrict__ absmax) {
    __shared__ float warp_scratch[tuning::kQuantizeMaxThreads / kWarpSize];
    __shared__ CellTable cell_table;
    fill_cell_table(cell_table, cells);
    const float2* column = cell_column(cell_table);
    const int64_t first = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
    float v[8];
    load8(A, first, n, vector_loads, v);
    const int group = blocksize / 8;
    const float block_absmax = group_max(absmax8(v), group, warp_scratch);
    if (first >= n) return;
    if (threadIdx.x % group == 0) absmax[first / blocksize] = block_absmax;
    // Elements past n (odd n) encode 0 * r, as upstream's zero-filled load does.
    const float reciprocal = rcp_approx_ftz(block_absmax);
    uint32_t word = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const uint32_t high = encode_4bit<Q>(column, mul_ftz(v[2 * j], reciprocal));
        const uint32_t low = encode_4bit<Q>(column, mul_ftz(v[2 * j + 1], reciprocal));
        word |= ((high << 4) | low) << (8 * j);
    }
    const int64_t byte0 = first / 2;
    const int64_t bytes = (n + 1) / 2;
    if (word_stores && byte0 + 4 <= bytes) {
        *reinterpret_cast<uint32_t*>(packed + byte0) = word;
    } else {
        for (int j = 0; j < 4 && byte0 + j < bytes; ++j) packed[byte0 + j] = static_cast<uint8_t>(word >> (8 * j));
    }
}

// Each lane writes kDequantizeVectorsPerThread 16-byte vectors; the warp's vectors
// are contiguous, so both the packed loads and the stores coalesce.
template <typename T>
__global__ void __launch_bounds__(tuning::kDequantizeThreads)
    dequantize_4bit_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ absmax, int64_t n,
                           int log2_blocksize, Codebook16 codebook, T* __restrict__ out) {
    __shared__ LaneTable table;
    fill_lane_table(table, nullptr, codebook);
    const float* column = lane_column(table);
    constexpr int kElements = kPerVector<T>;
    constexpr int kVectors = tuning::kDequantizeVectorsPerThread;
    // kElements / 2 packed bytes per vector.
    using Bits = std::conditional_t<kElements == 8, uint32_t, unsigned short>;
    const int lane = threadIdx.x % kWarpSize;
    const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
    const int64_t warp_first = warp * (kWarpSize * kVectors * kElements);
    Bits bits[kVectors];
    float scale[kVectors];
#pragma unroll
    for (int v = 0; v < kVectors; ++v) {
        const int64_t first = warp_first + static_cast<int64_t>(v * kWarpSize + lane) * kElements;
        bits[v] = 0;
        scale[v] = 0.0f;
        if (first + kElements <= n) {
            bits[v] = __ldg(reinterpret_cast<const Bits*>(packed + first / 2));
            scale[v] = __ldg(absmax + (first >> log2_blocksize));
        }
    }
#pragma unroll
    for (int v = 0; v < kVectors; ++v) {
        const int64_t first = warp_first + static_cast<int64_t>(v * kWarpSize + lane) * kElements;
        if (first + kElements <= n) {
            float values[kElements];
#pragma unroll
            for (int b = 0; b < kElements / 2; ++b) {
                const uint32_t byte = (static_cast<uint32_t>(bits[v]) >> (8 * b)) & 0xffu;
                values[2 * b] = mul_ftz(column[(byte >> 4) * kWarpSize], scale[v]);
                values[2 * b + 1] = mul_ftz(column[(byte & 15u) * kWarpSize], scale[v]);
            }
            store_vector<T>(out + first, values);
        } else {
            for (int64_t i = first; i < n; ++i) {
                const uint32_t byte = packed[i / 2];
                const uint32_t code = (i & 1) ? (byte & 15u) : (byte >> 4);
                out[i] = Element<T>::from_float(mul_ftz(column[code * kWarpSize], absmax[i >> log2_blocksize]));
            }
        }
    }
}

// Any alignment: one element per thread, grid-stride.
template <typename T>
__global__ void __launch_bounds__(tuning::kScalarThreads)
    dequantize_4bit_scalar_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ absmax, int64_t n,
                                  int log2_blocksize, Codebook16 codebook, T* __restrict__ out) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const uint32_t byte = packed[i / 2];
        const uint32_t code = (i & 1) ? (byte & 15u) : (byte >> 4);
        out[i] = Element<T>::from_float(mul_ftz(codebook.values[code], absmax[i >> log2_blocksize]));
    }
}

}  // namespace

bnb_status quantize_4bit(const Quantize4bitArgs& args) {
    const DeviceGuard guard(args.device.index);
    const int group = static_cast<int>(args.blocksize / tuning::kQuantizeElementsPerThread);
    const int threads = std::max(tuning::kQuantizeThreads, group);
    const int64_t blocks = ceil_div(ceil_div(args.n, tuning::kQuantizeElementsPerThread), threads);
    const bool vector_loads = is_aligned(args.A, 16);
    const bool word_stores = is_aligned(args.packed, 4);
    const EncoderCells cells = encoder_cells(args.quant_type);
    const cudaStream_t stream = to_stream(args.stream);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* A = static_cast<const T*>(args.A);
        if (args.quant_type == BNB_QUANT_NF4) {
            quantize_4bit_kernel<T, BNB_QUANT_NF4><<<blocks, threads, 0, stream>>>(
                A, args.n, static_cast<int>(args.blocksize), vector_loads, word_stores, cells, args.packed, args.absmax);
        } else {
            quantize_4bit_kernel<T, BNB_QUANT_FP4><<<blocks, threads, 0, stream>>>(
                A, args.n, static_cast<int>(args.blocksize), vector_loads, word_stores, cells, args.packed, args.absmax);
        }
        return check_launch("quantize_4bit");
    });
}

bnb_status dequantize_4bit(const Dequantize4bitArgs& args) {
    const DeviceGuard guard(args.device.index);
    const Codebook16 codebook = codebook16(args.quant_type);
    const int log2_blocksize = log2_exact(args.blocksize);
    const cudaStream_t stream = to_stream(args.stream);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* out = static_cast<T*>(args.out);
        const bool vectorized = is_aligned(args.out, 16) && is_aligned(args.packed, kPerVector<T> / 2);
        if (vectorized) {
            const int64_t per_block = int64_t{tuning::kDequantizeThreads} * tuning::kDequantizeVectorsPerThread *
                                      kPerVector<T>;
            dequantize_4bit_kernel<T><<<ceil_div(args.n, per_block), tuning::kDequantizeThreads, 0, stream>>>(
                args.packed, args.absmax, args.n, log2_blocksize, codebook, out);
        } else {
            const int64_t blocks = std::min<int64_t>(ceil_div(args.n, tuning::kScalarThreads),
                                                     int64_t{device_info(args.device.index).sm_count} * 16);
            dequantize_4bit_scalar_kernel<T><<<blocks, tuning::kScalarThreads, 0, stream>>>(
                args.packed, args.absmax, args.n, log2_blocksize, codebook, out);
        }
        return check_launch("dequantize_4bit");
    });
}

}  // namespace bnb::cuda
