// The CPU backend's table. Always built and always available.
#include "cpu_kernels.h"

namespace bnb::cpu {
namespace {

// The host is one device (torch's CPU tensors are all on device 0).
int device_count() { return 1; }

const BackendOps kCpuOps = {
    "cpu",
    device_count,
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
