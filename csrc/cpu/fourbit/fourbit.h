// 4-bit NF4 / FP4 quantize / dequantize on the CPU: the backend slots
// (entry.cpp) and the kernels each instruction set compiles (kernels.h).
#pragma once

#include <cstdint>

#include "backend.h"
#include "common/isa_dispatch.h"

namespace bnb::cpu {

bnb_status quantize_4bit(const Quantize4bitArgs& args);
bnb_status dequantize_4bit(const Dequantize4bitArgs& args);

// The kernels quantize or dequantize the blocks [first_block, last_block) of one call.
struct FourbitKernels {
    void (*quantize)(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block);
    void (*dequantize)(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block);
};

BNB_CPU_DECLARE_ISA_KERNELS(FourbitKernels, kFourbitKernels)

}  // namespace bnb::cpu
