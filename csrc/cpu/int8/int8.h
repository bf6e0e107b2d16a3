// LLM.int8() on the CPU: the backend slots (entry.cpp) and the kernels each
// instruction set compiles (kernels.h).
#pragma once

#include <cstdint>

#include "backend.h"
#include "common/isa_dispatch.h"

namespace bnb::cpu {

// Both the int8_vectorwise_quant and the int8_double_quant slot.
bnb_status int8_quantize(const Int8QuantizeArgs& args);
bnb_status int8_vectorwise_dequant(const Int8DequantizeArgs& args);
bnb_status int8_linear_matmul(const Int8MatmulArgs& args);
bnb_status int8_mm_dequant(const Int8MmDequantArgs& args);
bnb_status int8_scaled_mm(const Int8ScaledMmArgs& args);

// A product tile holds up to kInt8TileRows rows of A against kInt8TileColumns
// rows of B (a multiple of every set's kLanes and kInt8RowsOfB).
inline constexpr int64_t kInt8TileRows = 64;
inline constexpr int64_t kInt8TileColumns = 64;
// double_quant's column-wise part takes the columns in stripes of this many.
inline constexpr int64_t kInt8ColumnStripe = 64;

// out[m * ldc + n] = A[m, :] . B[n, :] exactly (modulo 2^32) for m < rows <=
// kInt8TileRows, n < columns; A and B point at the tile's first rows.
using Int8TileProducts = void (*)(const int8_t* A, const int8_t* B, int64_t K, int64_t rows, int64_t columns,
                                  int32_t* out, int64_t ldc);

struct Int8Kernels {
    // Codes and statistics of rows [first, last); with a threshold, sets
    // outlier_flags[c] (relaxed atomic byte stores) for every outlier column.
    void (*quantize_rows)(const Int8QuantizeArgs& args, uint8_t* outlier_flags, int64_t first, int64_t last);
    // double_quant's column statistics and codes of column stripes [first, last).
    void (*quantize_columns)(const Int8QuantizeArgs& args, int64_t first, int64_t last);
    void (*dequantize_rows)(const Int8DequantizeArgs& args, int64_t first, int64_t last);
    void (*mm_dequant_rows)(const Int8MmDequantArgs& args, int64_t first, int64_t last);
    Int8TileProducts products;
    // The same with the set's VNNI instruction; null where the set has none,
    // usable only where cpu_has_int8_vnni(isa) says so.
    Int8TileProducts vnni_products;
    // int8_scaled_mm's output tile [m0, m0 + rows) x [n0, n0 + columns) from its
    // products (row stride kInt8TileColumns): rescale, bias, the first
    // `outlier_count` outlier columns, one rounding.
    void (*scaled_mm_tile)(const Int8ScaledMmArgs& args, int64_t outlier_count, int64_t m0, int64_t rows, int64_t n0,
                           int64_t columns, const int32_t* products);
};

BNB_CPU_DECLARE_ISA_KERNELS(Int8Kernels, kInt8Kernels)

}  // namespace bnb::cpu
