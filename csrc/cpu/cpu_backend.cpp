// The CPU backend's table. Always built and always available.
#include "blockwise/blockwise.h"
#include "common/cpu_isa.h"
#include "fourbit/fourbit.h"
#include "gemm_4bit/gemm_4bit.h"
#include "int8/int8.h"

namespace bnb::cpu {
namespace {

// The host is one device (torch's CPU tensors are all on device 0).
int device_count() { return 1; }

const BackendOps kCpuOps = {
    .name = "cpu",
    .device_count = device_count,
    .quantize_blockwise = quantize_blockwise,
    .dequantize_blockwise = dequantize_blockwise,
    .quantize_4bit = quantize_4bit,
    .dequantize_4bit = dequantize_4bit,
    .gemm_4bit = gemm_4bit,
    .gemv_4bit = gemm_4bit,
    .int8_vectorwise_quant = int8_quantize,
    .int8_double_quant = int8_quantize,
    .int8_vectorwise_dequant = int8_vectorwise_dequant,
    .int8_linear_matmul = int8_linear_matmul,
    .int8_mm_dequant = int8_mm_dequant,
    .int8_scaled_mm = int8_scaled_mm,
    .gemm_4bit_fused_max_rows = gemm_4bit_fused_max_rows,
    .gemm_4bit_workspace_size = gemm_4bit_workspace_size,
    // int8_scaled_mm keeps its tiles on each thread's stack: no workspace query.
    .variant = active_variant,
    .variant_supported = variant_supported,
    .select_variant = select_variant,
};

}  // namespace
}  // namespace bnb::cpu

BNB_REGISTER_BACKEND(BNB_DEVICE_CPU, bnb::cpu::kCpuOps);
