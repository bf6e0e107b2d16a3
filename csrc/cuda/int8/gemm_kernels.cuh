// The int8 product kernels written here (cuBLASLt is the other path, select.cu):
//   stream    few rows of A: B streamed once, mma.sync m16n8k32 with operands
//             loaded straight from global memory into registers, K split across warps
//   generic   any shape, alignment and GPU (the HIP build too): one output per thread
//   epilogue  an int32 product (cuBLASLt's, or the caller's for int8_mm_dequant)
//             rescaled to the output dtype, outlier columns staged in shared memory
// Each writes either the exact int32 product (Out = int32_t) or the scaled output
// (Out = the float dtype, ScaledEpilogue read).
#pragma once

#include <type_traits>

#include "epilogue.cuh"
#include "tuning_sm90.h"

namespace bnb::cuda {

template <typename Out>
constexpr bool kIsScaled = !std::is_same_v<Out, int32_t>;

// The value stored at out[m, n] for the product `product` and, when there are
// outlier columns, their product `outlier_value` (outlier_sum's).
template <typename Out>
__device__ __forceinline__ void store_output(Out* out, const ScaledEpilogue& e, int32_t product, int64_t m, int64_t n,
                                             int64_t N, bool has_outliers, float outlier_value) {
    if constexpr (kIsScaled<Out>) {
        float value = rescale(product, e.row_stats[m], e.col_stats[n], bias_of(e, n));
        if (has_outliers) value += outlier_value;
        out[m * N + n] = Element<Out>::from_float(value);
    } else {
        out[m * N + n] = product;
    }
}

// ---- stream ------------------------------------------------------------------------------
#if BNB_GPU_HAS_MMA_SYNC
// D += A * B for m16n8k32 s8 fragments (A row-major 16 x 32, B column-major 32 x 8).
__device__ __forceinline__ void mma_s8(int32_t (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                       uint32_t b0, uint32_t b1) {
    // The device passes before sm_80 (which lack this mma) compile an empty
    // body: stream_usable never launches the kernel there.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    __trap();
#endif
}

__device__ __forceinline__ uint4 load16_or_zero(const int8_t* p, bool valid) {
    return valid ? __ldg(reinterpret_cast<const uint4*>(p)) : make_uint4(0, 0, 0, 0);
}

// A block owns 16 rows of B (the mma's M side) and 8 * kTiles rows of A (its N
// side). Lane (g, t) = (lane / 4, lane % 4) loads 16 contiguous bytes at k + 16 t
// of B rows g and g + 8 and of A row g of each tile: the dot product's order of k
// is the same permutation for both operands (it depends on t alone), so each
// 16-byte load feeds two mmas without any shuffle. Needs K % 16 == 0 and 16-byte
// aligned A and B.
template <int kTiles, typename Out>
__global__ void __launch_bounds__(int8_tuning::kStreamWarps * kWarpSize)
    int8_stream_kernel(const int8_t* __restrict__ A, const int8_t* __restrict__ B, int64_t M, int64_t N, int64_t K,
                       ScaledEpilogue epilogue, Out* __restrict__ out) {
    constexpr int kWarps = int8_tuning::kStreamWarps;
    constexpr int kUnroll = kTiles <= 2 ? 4 : 2;
    __shared__ int32_t partial[kWarps - 1][kTiles * 4][kWarpSize];
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    const int g = lane / 4;
    const int t = lane % 4;
    const int64_t n0 = int64_t{blockIdx.x} * 16;
    const int64_t m0 = int64_t{blockIdx.y} * 8 * kTiles;
    const bool b_low_valid = n0 + g < N;
    const bool b_high_valid = n0 + g + 8 < N;
    const int8_t* b_low = B + (b_low_valid ? n0 + g : 0) * K;
    const int8_t* b_high = B + (b_high_valid ? n0 + g + 8 : 0) * K;
    const int8_t* a_rows[kTiles];
    bool a_valid[kTiles];
#pragma unroll
    for (int i = 0; i < kTiles; ++i) {
        a_valid[i] = m0 + 8 * i + g < M;
        a_rows[i] = A + (a_valid[i] ? m0 + 8 * i + g : 0) * K;
    }
    int32_t acc[kTiles][4] = {};
    constexpr int64_t kStep = int64_t{kWarps} * 64;
    // The trip count depends on the warp alone: mma.sync needs every lane of the warp,
    // so the lanes whose 16 bytes lie past K load zeros instead of leaving the loop.
    for (int64_t base = int64_t{warp} * 64; base < K; base += kStep * kUnroll) {
        uint4 low[kUnroll];
        uint4 high[kUnroll];
        uint4 act[kUnroll][kTiles];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t k = base + u * kStep + 16 * t;
            const bool in_k = k < K;
            low[u] = load16_or_zero(b_low + k, in_k && b_low_valid);
            high[u] = load16_or_zero(b_high + k, in_k && b_high_valid);
#pragma unroll
            for (int i = 0; i < kTiles; ++i) act[u][i] = load16_or_zero(a_rows[i] + k, in_k && a_valid[i]);
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
            for (int i = 0; i < kTiles; ++i) {
                mma_s8(acc[i], low[u].x, high[u].x, low[u].y, high[u].y, act[u][i].x, act[u][i].y);
                mma_s8(acc[i], low[u].z, high[u].z, low[u].w, high[u].w, act[u][i].z, act[u][i].w);
            }
        }
    }
    if (warp > 0) {
#pragma unroll
        for (int i = 0; i < kTiles; ++i) {
#pragma unroll
            for (int r = 0; r < 4; ++r) partial[warp - 1][i * 4 + r][lane] = acc[i][r];
        }
    }
    // The outlier columns' product, staged by the whole block kOutlierChunk columns
    // at a time (X's values of the block's rows of A, the dtype-rounded weights of
    // its rows of B): one round of gathers per chunk instead of one warp's serial
    // loads per output. Summed in the order of outlier_sum, so every path agrees.
    float outlier_part[kTiles][4] = {};
    const int64_t outliers = kIsScaled<Out> ? outlier_count(epilogue, K) : 0;
    if constexpr (kIsScaled<Out>) {
        constexpr int kChunk = int8_tuning::kOutlierChunk;
        constexpr int kARows = 8 * kTiles;
        __shared__ float x_tile[kARows][kChunk + 1];
        __shared__ float w_tile[16][kChunk + 1];
        __shared__ int64_t chunk_columns[kChunk];
        const Out* X = static_cast<const Out*>(epilogue.X);
        for (int64_t j0 = 0; j0 < outliers; j0 += kChunk) {
            __syncthreads();  // the previous chunk is consumed
            if (threadIdx.x < kChunk && j0 + threadIdx.x < outliers) {
                chunk_columns[threadIdx.x] = outlier_column(epilogue, j0 + threadIdx.x, K);
            }
            __syncthreads();
            for (int e = threadIdx.x; e < (kARows + 16) * kChunk; e += blockDim.x) {
                const int j = e % kChunk;
                const int row = e / kChunk;
                const bool used = j0 + j < outliers;
                if (row < kARows) {
                    const int64_t m = m0 + row;
                    x_tile[row][j] = used && m < M ? Element<Out>::to_float(X[m * K + chunk_columns[j]]) : 0.0f;
                } else {
                    const int64_t n = n0 + row - kARows;
                    w_tile[row - kARows][j] =
                        used && n < N ? outlier_weight<Out>(B[n * K + chunk_columns[j]], epilogue.col_stats[n]) : 0.0f;
                }
            }
            __syncthreads();
            if (warp == 0) {
                const int used = static_cast<int>(std::min<int64_t>(kChunk, outliers - j0));
#pragma unroll
                for (int i = 0; i < kTiles; ++i) {
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const int b_row = g + (r >= 2 ? 8 : 0);
                        const int a_row = 8 * i + 2 * t + (r & 1);
                        for (int j = 0; j < used; ++j) {
                            outlier_part[i][r] = __fmaf_rn(x_tile[a_row][j], w_tile[b_row][j], outlier_part[i][r]);
                        }
                    }
                }
            }
        }
    }
    __syncthreads();
    if (warp != 0) return;
#pragma unroll
    for (int i = 0; i < kTiles; ++i) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            int32_t sum = acc[i][r];
            for (int w = 0; w < kWarps - 1; ++w) sum += partial[w][i * 4 + r][lane];
            // C fragment: rows g (r < 2) and g + 8 of B, columns 2 t and 2 t + 1 of A.
            const int64_t n = n0 + g + (r >= 2 ? 8 : 0);
            const int64_t m = m0 + 8 * i + 2 * t + (r & 1);
            if (m < M && n < N) store_output(out, epilogue, sum, m, n, N, outliers > 0, outlier_part[i][r]);
        }
    }
}
#endif

// ---- generic -----------------------------------------------------------------------------
// Thread per output; blockIdx.y is the row of A, so the warp's threads share it.
template <typename Out>
__global__ void __launch_bounds__(int8_tuning::kGenericThreads)
    int8_generic_kernel(const int8_t* __restrict__ A, const int8_t* __restrict__ B, int64_t M, int64_t N, int64_t K,
                        ScaledEpilogue epilogue, Out* __restrict__ out) {
    const int64_t n = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
    for (int64_t m = blockIdx.y; m < M; m += gridDim.y) {
        if (n >= N) continue;
        const int8_t* a = A + m * K;
        const int8_t* b = B + n * K;
        int32_t sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += int32_t{a[k]} * int32_t{b[k]};
        float outlier_value = 0.0f;
        const int64_t outliers = kIsScaled<Out> ? outlier_count(epilogue, K) : 0;
        if constexpr (kIsScaled<Out>) {
            if (outliers > 0) outlier_value = outlier_sum<Out>(epilogue, B, m, n, K, outliers);
        }
        store_output(out, epilogue, sum, m, n, N, outliers > 0, outlier_value);
    }
}

// ---- outlier gather ----------------------------------------------------------------------------
// Dense copies of what the epilogue's outlier sum reads, for at most kOutlierChunk
// outliers (the epilogue gathers by itself beyond): x_dense [M, kOutlierChunk] =
// X's outlier values, w_dense [kOutlierChunk, N] = the dtype-rounded outlier
// weights, zeros past the count. Gathered once here instead of once per output
// tile: X and B are too large for L2 beside the streamed int32 product.
template <typename T>
__global__ void __launch_bounds__(int8_tuning::kEpilogueThreads)
    int8_gather_outliers_kernel(const int8_t* __restrict__ B, int64_t M, int64_t N, int64_t K, ScaledEpilogue epilogue,
                                float* __restrict__ x_dense, float* __restrict__ w_dense) {
    constexpr int kChunk = int8_tuning::kOutlierChunk;
    const int64_t count = outlier_count(epilogue, K);
    if (count == 0 || count > kChunk) return;  // the epilogue reads the copies for 1 to kChunk outliers
    const T* X = static_cast<const T*>(epilogue.X);
    const int64_t step = int64_t{gridDim.x} * blockDim.x;
    for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < (M + N) * kChunk; i += step) {
        if (i < M * kChunk) {
            const int64_t m = i / kChunk;
            const int j = static_cast<int>(i % kChunk);
            x_dense[i] = j < count ? Element<T>::to_float(X[m * K + outlier_column(epilogue, j, K)]) : 0.0f;
        } else {
            const int64_t w = i - M * kChunk;
            const int j = static_cast<int>(w / N);
            const int64_t n = w % N;
            w_dense[w] = j < count ? outlier_weight<T>(B[n * K + outlier_column(epilogue, j, K)], epilogue.col_stats[n])
                                   : 0.0f;
        }
    }
}

// ---- epilogue ------------------------------------------------------------------------------
// out[m, n] from C[m, n] (int32) for tiles of 32 x 64; thread (ty, tx) owns rows
// ty and ty + 16, columns 4 tx .. 4 tx + 3. With at most kOutlierChunk outliers
// and the gather kernel's dense copies (x_dense, w_dense; null: none), the outlier
// sum reads those. Otherwise the dtype-rounded weights go through shared memory
// kOutlierChunk columns at a time and each thread reads X's values of its rows (the
// 16 threads of a row read the same address). A block walks several row tiles of
// one column strip (the grid's rows stride over them), so with at most
// kOutlierChunk outliers it stages its weights once and its row-tile loop has no
// barrier. Every path sums the same terms in the same order.
template <typename T, bool kOutliers>
__global__ void __launch_bounds__(int8_tuning::kEpilogueThreads)
    int8_epilogue_kernel(const int32_t* __restrict__ C, const int8_t* __restrict__ B, int64_t M, int64_t N, int64_t K,
                         ScaledEpilogue epilogue, bool vector_ok, const float* __restrict__ x_dense,
                         const float* __restrict__ w_dense, T* __restrict__ out) {
    constexpr int kRows = int8_tuning::kEpilogueRows;
    constexpr int kCols = int8_tuning::kEpilogueCols;
    constexpr int kChunk = int8_tuning::kOutlierChunk;
    constexpr int kRowsPerThread = kRows * kCols / 4 / int8_tuning::kEpilogueThreads;
    const int tx = threadIdx.x % (kCols / 4);
    const int ty = threadIdx.x / (kCols / 4);
    const int64_t n0 = int64_t{blockIdx.x} * kCols;
    const int64_t n_first = n0 + 4 * tx;
    __shared__ float w_tile[kOutliers ? kChunk : 1][kCols];
    const T* X = static_cast<const T*>(epilogue.X);
    const int64_t count = kOutliers ? outlier_count(epilogue, K) : 0;
    const auto stage_weights = [&](int64_t j0) {
        for (int i = threadIdx.x; i < kChunk * kCols; i += blockDim.x) {
            const int j = i / kCols;
            const int c = i % kCols;
            const int64_t n = n0 + c;
            w_tile[j][c] = n < N && j0 + j < count
                               ? outlier_weight<T>(B[n * K + outlier_column(epilogue, j0 + j, K)], epilogue.col_stats[n])
                               : 0.0f;
        }
    };
    const bool weights_resident = count <= kChunk;
    const bool dense = weights_resident && x_dense != nullptr;
    if (kOutliers && weights_resident && !dense) {
        stage_weights(0);
        __syncthreads();  // never rewritten after this
    }
    for (int64_t m0 = int64_t{blockIdx.y} * kRows; m0 < M; m0 += int64_t{gridDim.y} * kRows) {
        float values[kRowsPerThread][4];
#pragma unroll
        for (int r = 0; r < kRowsPerThread; ++r) {
            const int64_t m = m0 + ty + r * (kRows / kRowsPerThread);
            int32_t product[4] = {0, 0, 0, 0};
            if (m < M) {
                if (vector_ok && n_first + 4 <= N) {
                    const int4 raw = *reinterpret_cast<const int4*>(C + m * N + n_first);
                    product[0] = raw.x; product[1] = raw.y; product[2] = raw.z; product[3] = raw.w;
                } else {
                    for (int c = 0; c < 4; ++c) product[c] = n_first + c < N ? C[m * N + n_first + c] : 0;
                }
            }
            const float row_stat = m < M ? epilogue.row_stats[m] : 0.0f;
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int64_t n = n_first + c;
                values[r][c] = n < N ? rescale(product[c], row_stat, epilogue.col_stats[n], bias_of(epilogue, n)) : 0.0f;
            }
        }
        // No outliers (a threshold that marked none) add nothing, not even +0.0 to a -0.0.
        if (kOutliers && dense && count > 0) {
            float sums[kRowsPerThread][4] = {};
            for (int j = 0; j < count; ++j) {
                float w[4];
                if (vector_ok && n_first + 4 <= N) {
                    const float4 raw = *reinterpret_cast<const float4*>(w_dense + j * N + n_first);
                    w[0] = raw.x; w[1] = raw.y; w[2] = raw.z; w[3] = raw.w;
                } else {
                    for (int c = 0; c < 4; ++c) w[c] = n_first + c < N ? w_dense[j * N + n_first + c] : 0.0f;
                }
#pragma unroll
                for (int r = 0; r < kRowsPerThread; ++r) {
                    const int64_t m = m0 + ty + r * (kRows / kRowsPerThread);
                    const float x = m < M ? x_dense[m * kChunk + j] : 0.0f;
#pragma unroll
                    for (int c = 0; c < 4; ++c) sums[r][c] = __fmaf_rn(x, w[c], sums[r][c]);
                }
            }
#pragma unroll
            for (int r = 0; r < kRowsPerThread; ++r) {
#pragma unroll
                for (int c = 0; c < 4; ++c) values[r][c] += sums[r][c];
            }
        } else if constexpr (kOutliers) {
            for (int64_t j0 = 0; j0 < count; j0 += kChunk) {
                if (!weights_resident) {
                    __syncthreads();  // the previous chunk's weights are consumed
                    stage_weights(j0);
                    __syncthreads();
                }
                // Per chunk from zero, padded columns skipped (they added exact zeros).
                const int used = static_cast<int>(std::min<int64_t>(kChunk, count - j0));
                float sums[kRowsPerThread][4] = {};
                for (int j = 0; j < used; ++j) {
                    const int64_t column = outlier_column(epilogue, j0 + j, K);
#pragma unroll
                    for (int r = 0; r < kRowsPerThread; ++r) {
                        const int64_t m = m0 + ty + r * (kRows / kRowsPerThread);
                        const float x = m < M ? Element<T>::to_float(X[m * K + column]) : 0.0f;
#pragma unroll
                        for (int c = 0; c < 4; ++c) sums[r][c] = __fmaf_rn(x, w_tile[j][4 * tx + c], sums[r][c]);
                    }
                }
#pragma unroll
                for (int r = 0; r < kRowsPerThread; ++r) {
#pragma unroll
                    for (int c = 0; c < 4; ++c) values[r][c] += sums[r][c];
                }
            }
        }
#pragma unroll
        for (int r = 0; r < kRowsPerThread; ++r) {
            const int64_t m = m0 + ty + r * (kRows / kRowsPerThread);
            if (m >= M) continue;
            for (int c = 0; c < 4; ++c) {
                if (n_first + c < N) out[m * N + n_first + c] = Element<T>::from_float(values[r][c]);
            }
        }
    }
}

}  // namespace bnb::cuda
