// The op list of src/ops.def as C++: an enum, names, and a static_assert that
// pins the count, so that an op added to the list without its slot, checks and
// tests fails to compile where they are generated.
#pragma once

#include "ops/blockwise.h"
#include "ops/fourbit.h"
#include "ops/gemm_4bit.h"
#include "ops/int8.h"
#include "ops/optimizer.h"

namespace bnb {

enum class Op : int {
#define BNB_OP(family, name, Args) name,
#include "ops.def"
#undef BNB_OP
};

inline constexpr const char* kOpNames[] = {
#define BNB_OP(family, name, Args) #name,
#include "ops.def"
#undef BNB_OP
};

inline constexpr int kOpCount = static_cast<int>(sizeof(kOpNames) / sizeof(kOpNames[0]));
static_assert(kOpCount == 14, "src/ops.def changed: update this count, docs/c_abi.md and the op tests");

constexpr const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

// The op named `name`; false for an unknown (or null) name.
bool find_op(const char* name, Op* op);

// The blocksizes an op accepts (its checks use the same rule).
constexpr formats::BlocksizeRule accepted_blocksizes(Op op) {
    switch (op) {
        case Op::quantize_blockwise: return formats::kQuantizeBlockwiseRule;
        case Op::dequantize_blockwise: return formats::kDequantizeBlockwiseRule;
        case Op::quantize_4bit:
        case Op::dequantize_4bit:
        case Op::gemm_4bit:
        case Op::gemv_4bit: return formats::kFourBitRule;
        case Op::int8_vectorwise_quant:
        case Op::int8_double_quant:
        case Op::int8_vectorwise_dequant:
        case Op::int8_linear_matmul:
        case Op::int8_mm_dequant:
        case Op::int8_scaled_mm: return formats::kNoBlocksizes;  // row- and column-wise: no blocks
        case Op::optimizer_update_32bit:
        case Op::optimizer_update_8bit_blockwise: return formats::kNoBlocksizes;  // blocks of 256, not an argument
    }
    return formats::kNoBlocksizes;
}

}  // namespace bnb
