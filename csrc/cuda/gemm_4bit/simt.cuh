// The SIMT 4-bit matmul kernel, for few rows of A (decode): lanes stream W in
// 32-element chunks.
#pragma once

#include "common.cuh"

namespace bnb::cuda {

// 16-byte vectors of A per 32-element chunk.
template <typename T>
constexpr int kChunkVectors = kChunk * static_cast<int>(sizeof(T)) / 16;

// sum_j a[j] * weights[j] over one chunk of A held in registers.
template <typename T>
__device__ __forceinline__ float dot_chunk(const uint4 (&a)[kChunkVectors<T>], const float (&weights)[kChunk]) {
    float sum = 0.0f;
#pragma unroll
    for (int v = 0; v < kChunkVectors<T>; ++v) {
        const uint32_t words[4] = {a[v].x, a[v].y, a[v].z, a[v].w};
        if constexpr (sizeof(T) == 4) {
#pragma unroll
            for (int w = 0; w < 4; ++w) sum = fmaf(__uint_as_float(words[w]), weights[4 * v + w], sum);
        } else {
#pragma unroll
            for (int w = 0; w < 4; ++w) {
                sum = fmaf(Element<T>::low_of(words[w]), weights[8 * v + 2 * w], sum);
                sum = fmaf(Element<T>::high_of(words[w]), weights[8 * v + 2 * w + 1], sum);
            }
        }
    }
    return sum;
}

template <typename T>
__device__ __forceinline__ void load_chunk(const T* __restrict__ a, uint4 (&out)[kChunkVectors<T>]) {
#pragma unroll
    for (int v = 0; v < kChunkVectors<T>; ++v) out[v] = __ldg(reinterpret_cast<const uint4*>(a) + v);
}

// Chunks a lane keeps in flight: one row of A fits in registers for 4 chunks of
// 16-bit values (2 of float32); with more rows A is re-read from L1 instead.
template <typename T, int MAX_ROWS>
constexpr int simt_unroll() {
    return MAX_ROWS == 1 && sizeof(T) == 4 ? 2 : 4;
}

// One warp per weight row n, for up to MAX_ROWS rows of A. Lane l takes the
// 32-element chunks l, l + 32, ... of the row: a 16-byte load of W and one scale
// per chunk, UNROLL chunks loaded before any is used; codebook values come from
// a per-lane table and each chunk's dot product is scaled once.
template <typename T, int MAX_ROWS, bool NESTED>
__global__ void __launch_bounds__(tuning::kSimtWarpsPerBlock* kWarpSize) gemm_4bit_simt_kernel(GemmParams p) {
    constexpr int kUnroll = simt_unroll<T, MAX_ROWS>();
    constexpr bool kHoistA = MAX_ROWS == 1;
    __shared__ LaneTable table;
    __shared__ float nested_code[NESTED ? 256 : 1];
    const Scales<NESTED> scales = load_scales<NESTED>(p, nested_code);
    fill_lane_table(table, p.code, p.codebook);
    const float* column = lane_column(table);
    const T* A = static_cast<const T*>(p.A);
    const int lane = threadIdx.x % kWarpSize;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * tuning::kSimtWarpsPerBlock + threadIdx.x / kWarpSize;
    if (row >= p.N) return;
    const int rows_of_A = static_cast<int>(p.M);
    const int64_t chunks = p.K / kChunk;
    const int64_t row_first = row * p.K;
    float acc[MAX_ROWS];
#pragma unroll
    for (int m = 0; m < MAX_ROWS; ++m) acc[m] = 0.0f;
    for (int64_t base = lane; base < chunks; base += int64_t{kWarpSize} * kUnroll) {
        uint4 packed[kUnroll];
        RawScale raw[kUnroll];
        uint4 act[kHoistA ? kUnroll : 1][kChunkVectors<T>];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t chunk = base + u * kWarpSize;
            packed[u] = make_uint4(0, 0, 0, 0);
            raw[u] = {0.0f, 0u};
            if (chunk < chunks) {
                const int64_t element = row_first + chunk * kChunk;
                packed[u] = __ldg(reinterpret_cast<const uint4*>(p.B + element / 2));
                raw[u] = scales.load(element >> p.log2_blocksize);
                if constexpr (kHoistA) load_chunk<T>(A + chunk * kChunk, act[u]);
            }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t chunk = base + u * kWarpSize;
            if (chunk < chunks) {
                float weights[kChunk];
                const uint32_t words[4] = {packed[u].x, packed[u].y, packed[u].z, packed[u].w};
#pragma unroll
                for (int b = 0; b < kChunk / 2; ++b) {
                    const uint32_t byte = (words[b / 4] >> (8 * (b % 4))) & 0xffu;
                    weights[2 * b] = column[(byte >> 4) * kWarpSize];
                    weights[2 * b + 1] = column[(byte & 15u) * kWarpSize];
                }
                const float scale = scales.scale(raw[u]);
                if constexpr (kHoistA) {
                    acc[0] = fmaf(dot_chunk<T>(act[u], weights), scale, acc[0]);
                } else {
#pragma unroll
                    for (int m = 0; m < MAX_ROWS; ++m) {
                        if (m < rows_of_A) {
                            uint4 a[kChunkVectors<T>];
                            load_chunk<T>(A + m * p.K + chunk * kChunk, a);
                            acc[m] = fmaf(dot_chunk<T>(a, weights), scale, acc[m]);
                        }
                    }
                }
            }
        }
    }
    T* out = static_cast<T*>(p.out);
#pragma unroll
    for (int m = 0; m < MAX_ROWS; ++m) {
        const float sum = warp_sum(acc[m]);
        if (lane == 0 && m < rows_of_A) out[m * p.N + row] = Element<T>::from_float(sum + bias_of<T>(p, row));
    }
}

template <typename T, bool NESTED>
void launch_simt(const GemmParams& p, cudaStream_t stream) {
    const auto launch = [&](auto max_rows) {
        constexpr int kMaxRows = decltype(max_rows)::value;
        gemm_4bit_simt_kernel<T, kMaxRows, NESTED>
            <<<ceil_div(p.N, tuning::kSimtWarpsPerBlock), tuning::kSimtWarpsPerBlock * kWarpSize, 0, stream>>>(p);
    };
    using I = int;
    switch (tuning::simt_max_rows(p.M)) {
        case 1: launch(std::integral_constant<I, 1>{}); break;
        case 2: launch(std::integral_constant<I, 2>{}); break;
        case 4: launch(std::integral_constant<I, 4>{}); break;
        default: launch(std::integral_constant<I, 8>{}); break;
    }
}

}  // namespace bnb::cuda
