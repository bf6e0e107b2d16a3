// The CPU backend's table. Always built and always available.
#include "cpu_kernels.h"

namespace bnb::cpu {
namespace {

bool available() { return true; }

const BackendOps kCpuOps = {
    "cpu",
    available,
    quantize_blockwise,
    dequantize_blockwise,
    quantize_4bit,
    dequantize_4bit,
    nullptr,  // gemm_4bit: the torch glue dequantizes and calls at::linear on the CPU
    nullptr,  // gemm_4bit_fused_max_rows
};

}  // namespace
}  // namespace bnb::cpu

BNB_REGISTER_BACKEND(BNB_DEVICE_CPU, bnb::cpu::kCpuOps);
