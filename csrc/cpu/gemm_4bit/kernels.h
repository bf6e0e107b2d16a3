// The CPU 4-bit matmul, out = A @ W.T (+ bias), written once over the vector
// layer and compiled by scalar.cpp, avx2.cpp and avx512.cpp
// (common/isa_dispatch.h); entry.cpp splits the work among threads and picks
// the tile kind.
//
// Work item: `tile_rows` rows of W times `m_block` rows of A. Its W rows are
// dequantized `k_chunk` columns at a time into a tile that stays in L1 (the
// packed weight is read once per item, so once per call when M fits one block:
// memory-bound for small M), and a register-blocked micro-kernel takes every A
// row's dot products against the tile (compute-bound for large M). Per-chunk
// sums go to a float32 partial [m_block, tile_rows]; the output is rounded to
// its dtype once, after the last chunk.
//
// A float32 tile holds the value bnb_dequantize_4bit computes before rounding
// to its dtype: code[nibble] * scale with subnormal operands and results
// flushed; a bf16 tile (AVX-512 with AVX512-BF16 only) holds that value rounded
// to bf16, as dequantize writes it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/float_types.h"
#include "common/kernel_helpers.h"
#include "gemm_4bit/gemm_4bit.h"

namespace bnb::cpu::BNB_CPU_ISA {

static_assert(kGemm4bitMicroColumns == 4, "the micro-kernel reduces its columns with add_lane_sums4");

// What the kernel needs of a tile kind: its weight type, the columns per
// micro-kernel step, a block's 16 weights (Table), and the step's loads and
// multiply-add.
struct FloatTile {
    using Weight = float;
    using Table = CodeTable16;
    static constexpr int64_t kStep = kLanes;

    BNB_CPU_KERNEL static Table table(const float* code, float flushed_scale) {
        return load_code_table16(code, flushed_scale);
    }
    // A widened to float32.
    template <typename T, typename Lanes>
    BNB_CPU_KERNEL static Vec load_a(const T* p, Lanes lanes) { return load(p, lanes); }
    BNB_CPU_KERNEL static Vec load_w(const float* p) { return load(p, Full{}); }
    BNB_CPU_KERNEL static Vec multiply_add(Vec a, Vec w, Vec acc) { return mul_add(a, w, acc); }
};

#if defined(BNB_CPU_KERNEL_BF16)
// A and the tile enter the multiply as raw bf16 pairs.
struct Bf16Tile {
    using Weight = BFloat16;
    using Table = Bf16CodeTable16;
    static constexpr int64_t kStep = 2 * kLanes;

    BNB_CPU_KERNEL_BF16 static Table table(const float* code, float flushed_scale) {
        return load_bf16_code_table16(code, flushed_scale);
    }
    template <typename Lanes>
    BNB_CPU_KERNEL static Vec load_a(const BFloat16* p, Lanes lanes) { return load_bf16_pairs(p, lanes); }
    BNB_CPU_KERNEL static Vec load_w(const BFloat16* p) { return load_bf16_pairs(p, Full{}); }
    BNB_CPU_KERNEL_BF16 static Vec multiply_add(Vec a, Vec w, Vec acc) { return dot_bf16_pairs(a, w, acc); }
};
#endif

// The block's scale as dequantize_4bit's multiply sees it: plain absmax, or
// dequantize_blockwise's product plus the offset (two roundings), flushed.
inline float gemm_block_scale(const Gemm4bitProblem& p, int64_t block) {
    if (p.absmax_8bit == nullptr) return flush_denormal(p.absmax[block]);
    const float nested_absmax = flush_denormal(p.absmax[block / p.nested_blocksize]);
    const float denested = flush_denormal(flush_denormal(p.absmax_code[p.absmax_8bit[block]]) * nested_absmax);
    return flush_denormal(denested + p.absmax_offset);
}

template <typename Weight>
inline Weight gemm_weight(const Gemm4bitProblem& p, int64_t index, float scale) {
    const uint8_t byte = p.B[index >> 1];
    const uint8_t nibble = (index & 1) ? (byte & 0x0f) : (byte >> 4);
    return from_float<Weight>(flush_denormal(p.code[nibble] * scale));
}

// Weights [first, first + count) of the flat N * K index into out[0, count).
// Table steps need 16 weights of one block starting on a byte; the odd first
// weight and each block's tail go one by one.
template <class Tile>
BNB_CPU_KERNEL void dequantize_span(const Gemm4bitProblem& p, int64_t first, int64_t count,
                                    typename Tile::Weight* out) {
    using Weight = typename Tile::Weight;
    int64_t index = first;
    const int64_t end = first + count;
    // One division per span: an integer division costs as much as dequantizing a block.
    for (int64_t block = first / p.blocksize; index < end; ++block) {
        const int64_t segment_end = std::min(end, (block + 1) * p.blocksize);
        const float scale = gemm_block_scale(p, block);
        if (index & 1) *out++ = gemm_weight<Weight>(p, index++, scale);
        if (index + 16 <= segment_end) {
            const typename Tile::Table table = Tile::table(p.code, scale);
            for (; index + 16 <= segment_end; index += 16, out += 16) dequantize16(p.B + index / 2, table, out);
        }
        for (; index < segment_end; ++index) *out++ = gemm_weight<Weight>(p, index, scale);
    }
}

// sums[m * sums_stride + j] += sum_k a[m * lda + k] * w[j * ldw + k] for
// m < R, j < kGemm4bitMicroColumns, k < kc; w is zero-padded up to a multiple
// of the tile's step.
template <int R, class Tile, typename T>
BNB_CPU_KERNEL void dot_block(const T* a, int64_t lda, const typename Tile::Weight* w, int64_t ldw, int64_t kc,
                              float* sums, int64_t sums_stride) {
    Vec acc[R][kGemm4bitMicroColumns];
    for (int m = 0; m < R; ++m) {
        for (int j = 0; j < kGemm4bitMicroColumns; ++j) acc[m][j] = zero();
    }
    for_each_step(kc, Tile::kStep, [&](int64_t k, auto lanes) BNB_CPU_KERNEL {
        Vec rows[R];
        for (int m = 0; m < R; ++m) rows[m] = Tile::load_a(a + m * lda + k, lanes);
        for (int j = 0; j < kGemm4bitMicroColumns; ++j) {
            const Vec weights = Tile::load_w(w + j * ldw + k);
            for (int m = 0; m < R; ++m) acc[m][j] = Tile::multiply_add(rows[m], weights, acc[m][j]);
        }
    });
    for (int m = 0; m < R; ++m) add_lane_sums4(sums + m * sums_stride, acc[m][0], acc[m][1], acc[m][2], acc[m][3]);
}

// dot_block for rows (1 .. R) known only at run time.
template <int R, class Tile, typename T>
BNB_CPU_KERNEL void dot_rows(int rows, const T* a, int64_t lda, const typename Tile::Weight* w, int64_t ldw,
                             int64_t kc, float* sums, int64_t sums_stride) {
    if constexpr (R > 1) {
        if (rows < R) return dot_rows<R - 1, Tile>(rows, a, lda, w, ldw, kc, sums, sums_stride);
    }
    dot_block<R, Tile>(a, lda, w, ldw, kc, sums, sums_stride);
}

template <class Tile, typename T>
BNB_CPU_KERNEL void run_item(const Gemm4bitProblem& p, int64_t n_tile, int64_t m_block, void* scratch) {
    using Weight = typename Tile::Weight;
    const Gemm4bitTilePlan& plan = p.plan;
    const int64_t n0 = n_tile * plan.tile_rows;
    const int64_t rows = std::min(plan.tile_rows, p.N - n0);
    const int64_t padded_rows = round_up_to_multiple(rows, kGemm4bitMicroColumns);
    const int64_t m0 = m_block * plan.m_block;
    const int64_t a_rows = std::min(plan.m_block, p.M - m0);
    Weight* const tile = static_cast<Weight*>(scratch);
    float* const partial = reinterpret_cast<float*>(tile + plan.tile_rows * plan.k_chunk);
    std::fill(partial, partial + a_rows * plan.tile_rows, 0.0f);

    const T* const A = static_cast<const T*>(p.A) + m0 * p.K;
    for (int64_t k0 = 0; k0 < p.K; k0 += plan.k_chunk) {
        const int64_t kc = std::min(plan.k_chunk, p.K - k0);
        const int64_t ldw = round_up_to_multiple(kc, Tile::kStep);
        for (int64_t r = 0; r < padded_rows; ++r) {
            Weight* const row = tile + r * ldw;
            const int64_t filled = r < rows ? kc : 0;
            if (r < rows) dequantize_span<Tile>(p, (n0 + r) * p.K + k0, kc, row);
            std::fill(row + filled, row + ldw, Weight{});
        }
        for (int64_t m = 0; m < a_rows; m += kMatmulRowsOfA) {
            const int block_rows = static_cast<int>(std::min<int64_t>(kMatmulRowsOfA, a_rows - m));
            for (int64_t j = 0; j < padded_rows; j += kGemm4bitMicroColumns) {
                dot_rows<kMatmulRowsOfA, Tile>(block_rows, A + m * p.K + k0, p.K, tile + j * ldw, ldw, kc,
                                               partial + m * plan.tile_rows + j, plan.tile_rows);
            }
        }
    }

    const T* const bias = p.bias != nullptr ? static_cast<const T*>(p.bias) + n0 : nullptr;
    T* const out = static_cast<T*>(p.out) + m0 * p.N + n0;
    for (int64_t m = 0; m < a_rows; ++m) {
        const float* const sums = partial + m * plan.tile_rows;
        T* const out_row = out + m * p.N;
        for_each_step(rows, kLanes, [&](int64_t r, auto lanes) BNB_CPU_KERNEL {
            // A whole vector of sums: the partial's rows are tile_rows, a multiple of kLanes, long.
            Vec value = load(sums + r, Full{});
            if (bias != nullptr) value = add(value, load(bias + r, lanes));
            store(out_row + r, canonical_nan(value), lanes);
        });
    }
}

template <class Tile, typename T>
BNB_CPU_KERNEL void run_items(const Gemm4bitProblem& p, int64_t first_item, int64_t last_item, void* scratch) {
    for (int64_t item = first_item; item < last_item; ++item) {
        run_item<Tile, T>(p, item / p.m_blocks, item % p.m_blocks, scratch);
    }
}

void run_float_tiles(const Gemm4bitProblem& p, int64_t first_item, int64_t last_item, void* scratch) {
    dispatch_float(p.dtype, [&](auto tag) { run_items<FloatTile, decltype(tag)>(p, first_item, last_item, scratch); });
}

#if defined(BNB_CPU_KERNEL_BF16)
// The kernel's templates carry the AVX-512 path's mark, so the bf16 tile's
// AVX512-BF16 operations cannot be inlined into them; flattened into this
// function, which carries AVX512-BF16, they are.
BNB_CPU_KERNEL_BF16 __attribute__((flatten)) void run_bf16_tiles(const Gemm4bitProblem& p, int64_t first_item,
                                                                 int64_t last_item, void* scratch) {
    run_items<Bf16Tile, BFloat16>(p, first_item, last_item, scratch);
}

const Gemm4bitKernels kGemm4bitKernels = {run_float_tiles, run_bf16_tiles};
#else
const Gemm4bitKernels kGemm4bitKernels = {run_float_tiles, nullptr};
#endif

}  // namespace bnb::cpu::BNB_CPU_ISA
