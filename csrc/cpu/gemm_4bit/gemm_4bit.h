// The CPU 4-bit matmul: the backend slots (entry.cpp) and the kernels each
// instruction set compiles (kernels.h).
#pragma once

#include <cstdint>

#include "backend.h"
#include "common/isa_dispatch.h"

namespace bnb::cpu {

// Both the gemm_4bit and the gemv_4bit slot.
bnb_status gemm_4bit(const Gemm4bitArgs& args);
bnb_status gemm_4bit_fused_max_rows(const Gemm4bitShape& shape, int64_t* max_rows);
bnb_status gemm_4bit_workspace_size(const Gemm4bitShape& shape, int64_t* bytes);

// Columns of the micro-kernel: W rows per dot-product block (a tile holds a
// multiple of them, padded with zero rows).
inline constexpr int64_t kGemm4bitMicroColumns = 4;
// Tile row counts are a multiple of every set's kLanes (the output is written a
// vector at a time), tile column counts one of every tile's step (32 bf16).
inline constexpr int64_t kGemm4bitTileRowMultiple = 16;
inline constexpr int64_t kGemm4bitTileColumnMultiple = 32;

constexpr int64_t round_up_to_multiple(int64_t value, int64_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

struct Gemm4bitTilePlan {
    int64_t tile_rows;  // multiple of kGemm4bitTileRowMultiple
    int64_t k_chunk;    // multiple of kGemm4bitTileColumnMultiple
    int64_t m_block;
};

// One call, resolved by entry.cpp: the codebook chosen and flushed, nested
// statistics' constants read.
struct Gemm4bitProblem {
    bnb_dtype dtype;
    const void* A;
    const uint8_t* B;
    const float* code;  // 16 entries, subnormals flushed to zero
    const float* absmax;
    const uint8_t* absmax_8bit;  // null: plain absmax
    const float* absmax_code;
    float absmax_offset;
    int64_t nested_blocksize;
    const void* bias;
    void* out;
    int64_t M;
    int64_t N;
    int64_t K;
    int64_t blocksize;
    Gemm4bitTilePlan plan;
    int64_t m_blocks;  // items are (W tile, A block) pairs, A block fastest
};

// Computes the items [first_item, last_item) with `scratch` (64-byte aligned)
// holding plan.tile_rows * plan.k_chunk weights of the tile, then
// plan.m_block * plan.tile_rows float32 sums.
using Gemm4bitRunItems = void (*)(const Gemm4bitProblem& problem, int64_t first_item, int64_t last_item,
                                  void* scratch);

struct Gemm4bitKernels {
    // float32 weights (GENERIC's rounding), every dtype.
    Gemm4bitRunItems float_tiles;
    // bnb_dequantize_4bit's bf16 weights, the weights of dequantize + a dense
    // GEMM, multiplied in pairs; bf16 A and bias only. Null where the set has no
    // bf16 dot product; AVX-512's needs cpu_has_avx512_bf16().
    Gemm4bitRunItems bf16_tiles;
};

BNB_CPU_DECLARE_ISA_KERNELS(Gemm4bitKernels, kGemm4bitKernels)

}  // namespace bnb::cpu
