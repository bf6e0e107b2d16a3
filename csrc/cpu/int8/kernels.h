// The LLM.int8() kernels (formats.md section 5), written once over the vector
// layer and compiled by scalar.cpp, avx2.cpp and avx512.cpp
// (common/isa_dispatch.h); entry.cpp splits the work among threads.
//
// Quantization reproduces upstream's CUDA codes bit for bit; every path gives
// the scalar reference's bytes, the float epilogues included (one FMA where
// the formula has one, outlier columns summed in their order).
//
// Products: a tile of up to kInt8TileRows rows of A against kInt8TileColumns
// rows of B; a micro-kernel takes kInt8RowsOfA rows of A against kInt8RowsOfB rows of B
// over the whole of K (both operands are K-contiguous, so a dot product per
// output, reduced across lanes at the end). The A rows stay in L1 while the
// tile's B rows come from L2.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/float_types.h"
#include "common/kernel_helpers.h"
#include "formats.h"
#include "int8/int8.h"

namespace bnb::cpu::BNB_CPU_ISA {

// ---- row-wise quantization (int8_vectorwise_quant) ----------------------------------

// Sets the flag of each column whose lane bit is set in `lanes` (lane k:
// flags[k]). Threads may mark the same column; each only ever stores a 1.
inline void mark_outlier_columns(uint8_t* flags, uint32_t lanes) {
    for (; lanes != 0; lanes &= lanes - 1) __atomic_store_n(flags + __builtin_ctz(lanes), uint8_t{1}, __ATOMIC_RELAXED);
}

// One row: the absmax of the flushed magnitudes below the threshold (a NaN
// wins, so that its row's output is NaN rather than finite and wrong; upstream's
// fmaxf drops it), __fdividef(127, absmax) as 127 * rcp.approx.ftz, codes
// rounded half to even (NaN -> 0). With outliers, elements at or above the threshold are
// written as 0 and their columns marked.
template <bool kOutliers, typename T>
BNB_CPU_KERNEL void quantize_row(const T* in, int64_t cols, Vec limit, int8_t* out, float* row_stat,
                                 uint8_t* outlier_flags) {
    Vec absmax = zero();
    for_each_step(cols, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
        const Vec x = load(in + i, lanes);
        Vec included = flushed_magnitude(x);
        if constexpr (kOutliers) {
            const Vec mag = magnitude(x);
            included = zero_at_or_above(mag, limit, included);
            const uint32_t outliers = lanes_at_or_above(mag, limit);
            if (outliers != 0) mark_outlier_columns(outlier_flags + i, outliers);
        }
        absmax = max_magnitude(included, absmax);
    });
    const float row_absmax = reduce_max_magnitude(absmax);
    *row_stat = row_absmax;
    const Vec scale = broadcast(flush_denormal(formats::kInt8MaxCode * rcp_approx_ftz(row_absmax)));
    for_each_step(cols, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
        const Vec x = load(in + i, lanes);
        Vec scaled = mul(flush(x), scale);
        if constexpr (kOutliers) scaled = zero_at_or_above(magnitude(x), limit, scaled);
        store_codes(out + i, round_to_codes(scaled), lanes);
    });
}

template <typename T>
BNB_CPU_KERNEL void quantize_rows_of(const Int8QuantizeArgs& args, uint8_t* outlier_flags, int64_t first,
                                     int64_t last) {
    // Locals: the code stores may alias `args`.
    const T* const A = static_cast<const T*>(args.A);
    const int64_t cols = args.cols;
    int8_t* const out = args.out_row;
    float* const row_stats = args.row_stats;
    const bool outliers = args.outliers();
    const Vec limit = broadcast(args.threshold);
    for (int64_t r = first; r < last; ++r) {
        if (outliers) quantize_row<true>(A + r * cols, cols, limit, out + r * cols, row_stats + r, outlier_flags);
        else quantize_row<false>(A + r * cols, cols, limit, out + r * cols, row_stats + r, outlier_flags);
    }
}

// ---- column-wise part of int8_double_quant ------------------------------------------

// The columns [c0, c0 + kInt8ColumnStripe) as upstream computes them in torch:
// col_stats the amax of the exact magnitudes (NaN propagates), outlier elements
// counted as 0; codes round_half_even(T(A' * 127) / col_stats) with an exact
// division. The stripe is read twice, the second time from cache.
template <bool kOutliers, typename T>
BNB_CPU_KERNEL void quantize_stripe(const Int8QuantizeArgs& args, int64_t c0) {
    constexpr int64_t kVectors = kInt8ColumnStripe / kLanes;
    const int64_t rows = args.rows;
    const int64_t cols = args.cols;
    const int64_t width = std::min(kInt8ColumnStripe, cols - c0);
    const T* const in = static_cast<const T*>(args.A) + c0;
    int8_t* const out = args.out_col + c0;
    float* const stats = args.col_stats + c0;
    const Vec limit = broadcast(args.threshold);
    const auto kept = [&](Vec x) BNB_CPU_KERNEL {
        if constexpr (kOutliers) return zero_at_or_above(magnitude(x), limit, x);
        else return x;
    };
    Vec absmax[kVectors];
    for (Vec& lanes_max : absmax) lanes_max = zero();
    for (int64_t r = 0; r < rows; ++r) {
        for_each_step(width, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
            absmax[i / kLanes] = max_magnitude(magnitude(kept(load(in + r * cols + i, lanes))), absmax[i / kLanes]);
        });
    }
    for_each_step(width, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL { store(stats + i, absmax[i / kLanes], lanes); });
    const Vec max_code = broadcast(formats::kInt8MaxCode);
    for (int64_t r = 0; r < rows; ++r) {
        for_each_step(width, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
            const Vec scaled = rounded_to<T>(mul(kept(load(in + r * cols + i, lanes)), max_code));
            store_codes(out + r * cols + i, round_to_codes(div(scaled, absmax[i / kLanes])), lanes);
        });
    }
}

template <typename T>
BNB_CPU_KERNEL void quantize_stripes_of(const Int8QuantizeArgs& args, int64_t first, int64_t last) {
    for (int64_t stripe = first; stripe < last; ++stripe) {
        if (args.outliers()) quantize_stripe<true, T>(args, stripe * kInt8ColumnStripe);
        else quantize_stripe<false, T>(args, stripe * kInt8ColumnStripe);
    }
}

// ---- dequantization -------------------------------------------------------------------

template <typename T>
BNB_CPU_KERNEL void dequantize_rows_of(const Int8DequantizeArgs& args, int64_t first, int64_t last) {
    T* const out = static_cast<T*>(args.out);
    const int64_t cols = args.cols;
    const Vec inverse = broadcast(formats::kInt8InverseMaxCode);
    for (int64_t r = first; r < last; ++r) {
        const Vec stat = broadcast(args.stats[r]);
        const int8_t* const codes = args.A + r * cols;
        T* const row = out + r * cols;
        for_each_step(cols, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
            store(row + i, canonical_nan(mul(mul(load_as_float(codes + i, lanes), stat), inverse)), lanes);
        });
    }
}

// fma((float(product) * row_stat) * col_stat, 1/127^2, bias) (formats.md 5.3),
// not yet rounded to the output's dtype.
template <typename BiasT, typename Lanes>
BNB_CPU_KERNEL inline Vec rescaled_product(const int32_t* product, Vec row_stat, const float* col_stats,
                                           const BiasT* bias, Lanes lanes) {
    const Vec scaled = mul(mul(load_as_float(product, lanes), row_stat), load(col_stats, lanes));
    return fused_mul_add(scaled, broadcast(formats::kInt8InverseMaxCodeSquared),
                         bias != nullptr ? load(bias, lanes) : zero());
}

template <typename T, typename BiasT>
BNB_CPU_KERNEL void mm_dequant_rows_of(const Int8MmDequantArgs& args, const BiasT* bias, int64_t first,
                                       int64_t last) {
    T* const out = static_cast<T*>(args.out);
    const int64_t cols = args.cols;
    for (int64_t r = first; r < last; ++r) {
        const Vec row_stat = broadcast(args.row_stats[r]);
        const int32_t* const products = args.A + r * cols;
        T* const row = out + r * cols;
        for_each_step(cols, kLanes, [&](int64_t c, auto lanes) BNB_CPU_KERNEL {
            const Vec value =
                rescaled_product(products + c, row_stat, args.col_stats + c, bias != nullptr ? bias + c : bias, lanes);
            store(row + c, canonical_nan(value), lanes);
        });
    }
}

// ---- int8 products ----------------------------------------------------------------

static_assert(kInt8RowsOfB % 4 == 0 && kInt8TileColumns % kInt8RowsOfB == 0,
              "sums are reduced 4 at a time, and tiles hold whole micro-kernels of B rows");

// sums[m][j] += a[m] . b[j] over the `steps` whole steps at offset k0
// (`lanes` Full), or over one partial step there (`lanes` Partial). One loop
// body per function: with a second (the tail) in the same function GCC keeps
// the accumulators in registers but also stores them on every step.
template <class Dot, int R, typename Lanes>
BNB_CPU_KERNEL void dot_tile_steps(const int8_t* const* a, const int8_t* const* b, int64_t k0, int64_t steps,
                                   Lanes lanes, int32_t (*sums)[kInt8RowsOfB]) {
    Ints acc[R][kInt8RowsOfB];
    for (int m = 0; m < R; ++m) {
        for (int j = 0; j < kInt8RowsOfB; ++j) acc[m][j] = zero_ints();
    }
    for (int64_t k = k0; k < k0 + steps * Dot::kStep; k += Dot::kStep) {
        Ints rows[R];
        for (int m = 0; m < R; ++m) rows[m] = Dot::load_a(a[m] + k, lanes);
        for (int j = 0; j < kInt8RowsOfB; ++j) {
            const Ints column = Dot::load_b(b[j] + k, lanes);
            for (int m = 0; m < R; ++m) acc[m][j] = Dot::dot(acc[m][j], rows[m], column);
        }
    }
    for (int m = 0; m < R; ++m) {
        for (int j = 0; j < kInt8RowsOfB; j += 4) {
            add_int_lane_sums4(sums[m] + j, acc[m][j], acc[m][j + 1], acc[m][j + 2], acc[m][j + 3]);
        }
    }
}

// sums[m][j] += a[m] . b[j] over K for m < R, j < kInt8RowsOfB.
template <class Dot, int R>
BNB_CPU_KERNEL void dot_tile(const int8_t* const* a, const int8_t* const* b, int64_t K,
                             int32_t (*sums)[kInt8RowsOfB]) {
    const int64_t steps = K / Dot::kStep;
    dot_tile_steps<Dot, R>(a, b, 0, steps, Full{}, sums);
    if (K % Dot::kStep != 0) dot_tile_steps<Dot, R>(a, b, steps * Dot::kStep, 1, Partial{K % Dot::kStep}, sums);
}

// dot_tile for rows (1 .. R) known only at run time.
template <class Dot, int R>
BNB_CPU_KERNEL void dot_rows(int rows, const int8_t* const* a, const int8_t* const* b, int64_t K,
                             int32_t (*sums)[kInt8RowsOfB]) {
    if constexpr (R > 1) {
        if (rows < R) return dot_rows<Dot, R - 1>(rows, a, b, K, sums);
    }
    dot_tile<Dot, R>(a, b, K, sums);
}

// 128 * sum(a[0, K)) modulo 2^32: what an offset B adds to each dot product.
template <class Dot>
BNB_CPU_KERNEL uint32_t offset_of_row(const int8_t* a, int64_t K) {
    Ints acc = zero_ints();
    for_each_step(K, Dot::kStep, [&](int64_t k, auto lanes) BNB_CPU_KERNEL { acc = Dot::sum_a(acc, Dot::load_a(a + k, lanes)); });
    return 128u * static_cast<uint32_t>(reduce_add(acc));
}

// The Int8TileProducts of the dot product `Dot`. Edge micro-kernels repeat
// their last row of A or B and keep only the valid sums.
template <class Dot>
BNB_CPU_KERNEL void tile_products(const int8_t* A, const int8_t* B, int64_t K, int64_t rows, int64_t columns,
                                  int32_t* out, int64_t ldc) {
    uint32_t offsets[kInt8TileRows] = {};
    if constexpr (Dot::kOffsetsB) {
        for (int64_t m = 0; m < rows; ++m) offsets[m] = offset_of_row<Dot>(A + m * K, K);
    }
    for (int64_t m = 0; m < rows; m += kInt8RowsOfA) {
        const int block_rows = static_cast<int>(std::min<int64_t>(kInt8RowsOfA, rows - m));
        const int8_t* a[kInt8RowsOfA];
        for (int i = 0; i < kInt8RowsOfA; ++i) a[i] = A + (m + std::min(i, block_rows - 1)) * K;
        for (int64_t n = 0; n < columns; n += kInt8RowsOfB) {
            const int block_columns = static_cast<int>(std::min<int64_t>(kInt8RowsOfB, columns - n));
            const int8_t* b[kInt8RowsOfB];
            for (int j = 0; j < kInt8RowsOfB; ++j) b[j] = B + (n + std::min(j, block_columns - 1)) * K;
            int32_t sums[kInt8RowsOfA][kInt8RowsOfB] = {};
            dot_rows<Dot, kInt8RowsOfA>(block_rows, a, b, K, sums);
            for (int i = 0; i < block_rows; ++i) {
                for (int j = 0; j < block_columns; ++j) {
                    out[(m + i) * ldc + n + j] = static_cast<int32_t>(static_cast<uint32_t>(sums[i][j]) - offsets[m + i]);
                }
            }
        }
    }
}

// ---- int8_scaled_mm's epilogue ------------------------------------------------------

// Outlier columns per pass: their weights [j][n] and inputs [m][j] as float32.
inline constexpr int64_t kOutlierChunk = 64;

// values[m][n] += sum_j X[m0 + m, c_j] * T(B[n0 + n, c_j] * col_stats[n0 + n] / 127)
// over the outlier columns c_j in order, one FMA each: the dequantized weight
// is int8_vectorwise_dequant's, rounded to T as upstream's addmm operand.
// Indices outside [0, K) add nothing (they are data the core cannot check).
template <typename T>
BNB_CPU_KERNEL void add_outlier_columns(const Int8ScaledMmArgs& args, int64_t outlier_count, int64_t m0, int64_t rows,
                                        int64_t n0, int64_t columns, float* values) {
    const T* const X = static_cast<const T*>(args.X);
    const int64_t K = args.K;
    const int64_t padded_columns = (columns + kLanes - 1) / kLanes * kLanes;
    alignas(64) float weights[kOutlierChunk * kInt8TileColumns];
    alignas(64) float inputs[kInt8TileRows * kOutlierChunk];
    for (int64_t j0 = 0; j0 < outlier_count; j0 += kOutlierChunk) {
        int64_t used = 0;
        for (int64_t j = j0; j < std::min(outlier_count, j0 + kOutlierChunk); ++j) {
            const int64_t c = args.outlier_cols[j];
            if (c < 0 || c >= K) continue;
            float* const weight_row = weights + used * kInt8TileColumns;
            for (int64_t n = 0; n < columns; ++n) {
                const float dequantized = static_cast<float>(args.B[(n0 + n) * K + c]) * args.col_stats[n0 + n] *
                                          formats::kInt8InverseMaxCode;
                weight_row[n] = to_float(from_float<T>(dequantized));
            }
            std::fill(weight_row + columns, weight_row + padded_columns, 0.0f);
            for (int64_t m = 0; m < rows; ++m) inputs[m * kOutlierChunk + used] = to_float(X[(m0 + m) * K + c]);
            ++used;
        }
        for (int64_t m = 0; m < rows; ++m) {
            const float* const row_inputs = inputs + m * kOutlierChunk;
            float* const row_values = values + m * kInt8TileColumns;
            for_each_step(columns, kLanes, [&](int64_t n, auto) BNB_CPU_KERNEL {
                Vec sum = load(row_values + n, Full{});
                for (int64_t j = 0; j < used; ++j) {
                    sum = fused_mul_add(broadcast(row_inputs[j]), load(weights + j * kInt8TileColumns + n, Full{}), sum);
                }
                store(row_values + n, sum, Full{});
            });
        }
    }
}

template <typename T, typename BiasT>
BNB_CPU_KERNEL void scaled_mm_tile_of(const Int8ScaledMmArgs& args, const BiasT* bias, int64_t outlier_count,
                                      int64_t m0, int64_t rows, int64_t n0, int64_t columns, const int32_t* products) {
    T* const out = static_cast<T*>(args.out) + m0 * args.N + n0;
    const float* const col_stats = args.col_stats + n0;
    const BiasT* const tile_bias = bias != nullptr ? bias + n0 : bias;
    const auto rescaled = [&](int64_t m, int64_t n, auto lanes) BNB_CPU_KERNEL {
        return rescaled_product(products + m * kInt8TileColumns + n, broadcast(args.row_stats[m0 + m]), col_stats + n,
                                tile_bias != nullptr ? tile_bias + n : tile_bias, lanes);
    };
    if (outlier_count == 0) {
        for (int64_t m = 0; m < rows; ++m) {
            for_each_step(columns, kLanes, [&](int64_t n, auto lanes) BNB_CPU_KERNEL {
                store(out + m * args.N + n, canonical_nan(rescaled(m, n, lanes)), lanes);
            });
        }
        return;
    }
    // Whole vectors in the tile: its rows are kInt8TileColumns, a multiple of kLanes, long.
    alignas(64) float values[kInt8TileRows * kInt8TileColumns];
    for (int64_t m = 0; m < rows; ++m) {
        for_each_step(columns, kLanes, [&](int64_t n, auto lanes) BNB_CPU_KERNEL {
            store(values + m * kInt8TileColumns + n, rescaled(m, n, lanes), Full{});
        });
    }
    add_outlier_columns<T>(args, outlier_count, m0, rows, n0, columns, values);
    for (int64_t m = 0; m < rows; ++m) {
        for_each_step(columns, kLanes, [&](int64_t n, auto lanes) BNB_CPU_KERNEL {
            store(out + m * args.N + n, canonical_nan(load(values + m * kInt8TileColumns + n, Full{})), lanes);
        });
    }
}

// ---- the kernel table -------------------------------------------------------------

void quantize_rows_range(const Int8QuantizeArgs& args, uint8_t* outlier_flags, int64_t first, int64_t last) {
    dispatch_float(args.dtype, [&](auto tag) { quantize_rows_of<decltype(tag)>(args, outlier_flags, first, last); });
}

void quantize_columns_range(const Int8QuantizeArgs& args, int64_t first, int64_t last) {
    dispatch_float(args.dtype, [&](auto tag) { quantize_stripes_of<decltype(tag)>(args, first, last); });
}

void dequantize_rows_range(const Int8DequantizeArgs& args, int64_t first, int64_t last) {
    dispatch_float(args.dtype, [&](auto tag) { dequantize_rows_of<decltype(tag)>(args, first, last); });
}

void mm_dequant_rows_range(const Int8MmDequantArgs& args, int64_t first, int64_t last) {
    dispatch_float(args.dtype, [&](auto tag) {
        dispatch_optional_float(args.bias_dtype, args.bias, [&](const auto* bias) {
            mm_dequant_rows_of<decltype(tag)>(args, bias, first, last);
        });
    });
}

void scaled_mm_tile(const Int8ScaledMmArgs& args, int64_t outlier_count, int64_t m0, int64_t rows, int64_t n0,
                    int64_t columns, const int32_t* products) {
    dispatch_float(args.dtype, [&](auto tag) {
        dispatch_optional_float(args.bias_dtype, args.bias, [&](const auto* bias) {
            scaled_mm_tile_of<decltype(tag)>(args, bias, outlier_count, m0, rows, n0, columns, products);
        });
    });
}

void plain_products(const int8_t* A, const int8_t* B, int64_t K, int64_t rows, int64_t columns, int32_t* out,
                    int64_t ldc) {
    tile_products<Int8Dot>(A, B, K, rows, columns, out, ldc);
}

#if defined(BNB_CPU_KERNEL_VNNI)
// Flattened into a function that carries the VNNI target, so that the VNNI
// dot product inlines into the kernel's templates (as gemm_4bit's bf16 tiles).
BNB_CPU_KERNEL_VNNI __attribute__((flatten)) void vnni_products(const int8_t* A, const int8_t* B, int64_t K,
                                                                int64_t rows, int64_t columns, int32_t* out,
                                                                int64_t ldc) {
    tile_products<Int8DotVnni>(A, B, K, rows, columns, out, ldc);
}
#else
constexpr Int8TileProducts vnni_products = nullptr;
#endif

const Int8Kernels kInt8Kernels = {quantize_rows_range, quantize_columns_range, dequantize_rows_range,
                                  mm_dequant_rows_range, plain_products,         vnni_products,
                                  scaled_mm_tile};

}  // namespace bnb::cpu::BNB_CPU_ISA
