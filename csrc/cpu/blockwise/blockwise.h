// Blockwise 8-bit quantize / dequantize on the CPU: the backend slots
// (entry.cpp) and the kernels each instruction set compiles (kernels.h).
#pragma once

#include <cstdint>

#include "backend.h"
#include "common/code_search.h"
#include "common/isa_dispatch.h"

namespace bnb::cpu {

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args);
bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args);

// The kernels quantize or dequantize the blocks [first_block, last_block) of one call.
struct BlockwiseKernels {
    void (*quantize)(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables, int64_t first_block,
                     int64_t last_block);
    void (*dequantize)(const DequantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block);
};

BNB_CPU_DECLARE_ISA_KERNELS(BlockwiseKernels, kBlockwiseKernels)

}  // namespace bnb::cpu
