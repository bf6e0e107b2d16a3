// Entry points of the CPU backend's kernels (filled into its BackendOps table).
#pragma once

#include <cstdint>

#include "backend.h"

namespace bnb::cpu {

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args);
bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args);
bnb_status quantize_4bit(const Quantize4bitArgs& args);
bnb_status dequantize_4bit(const Dequantize4bitArgs& args);

// The scalar reference of the quantizers: fmaxf-style absmax (NaN ignored,
// subnormals flushed) and upstream's code search. Every vector path must give
// the same bytes.
float block_absmax(const float* values, int64_t count);
uint8_t search_code(const float* code, float s);

}  // namespace bnb::cpu
