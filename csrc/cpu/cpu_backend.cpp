// The CPU backend's table. Always built and always available.
#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>

#include "blockwise/blockwise.h"
#include "common/cpu_isa.h"
#include "fourbit/fourbit.h"
#include "gemm_4bit/gemm_4bit.h"
#include "int8/int8.h"
#include "optimizer/optimizer.h"

namespace bnb::cpu {
namespace {

// The host is one device (torch's CPU tensors are all on device 0).
int device_count() { return 1; }

// The host's physical memory in bytes (0 if unknown).
int64_t host_memory_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_bytes = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page_bytes <= 0) return 0;
    return static_cast<int64_t>(pages) * page_bytes;
}

// Paged memory on the host is ordinary memory: nothing to page, nothing to prefetch.
bnb_status paged_alloc(bnb_device, int64_t bytes, void** out) {
    // As the CUDA backend refuses more than the device has free: a size beyond the
    // host's memory can only fail, or succeed lazily and be killed when zero-filled.
    static const int64_t host_bytes = host_memory_bytes();
    if (host_bytes > 0 && bytes > host_bytes) {
        return fail(BNB_STATUS_OUT_OF_MEMORY, "paged_alloc: " + std::to_string(bytes) +
                                                  " bytes requested but the host has " + std::to_string(host_bytes));
    }
    constexpr int64_t kAlignment = 64;
    const int64_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* memory = std::aligned_alloc(kAlignment, static_cast<size_t>(rounded));
    if (memory == nullptr) {
        return fail(BNB_STATUS_OUT_OF_MEMORY, "paged_alloc: cannot allocate " + std::to_string(bytes) + " bytes");
    }
    std::memset(memory, 0, static_cast<size_t>(rounded));
    *out = memory;
    return BNB_STATUS_SUCCESS;
}

bnb_status paged_free(bnb_device, void* ptr) {
    std::free(ptr);
    return BNB_STATUS_SUCCESS;
}

bnb_status paged_prefetch(bnb_device, void*, const void*, int64_t, bool) { return BNB_STATUS_SUCCESS; }

const BackendOps kCpuOps = {
    .name = "cpu",
    .device_count = device_count,
    .blocks_of_any_length = true,
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
    .optimizer_update_32bit = optimizer_update_32bit,
    .optimizer_update_8bit_blockwise = optimizer_update_8bit_blockwise,
    .gemm_4bit_fused_max_rows = gemm_4bit_fused_max_rows,
    .gemm_4bit_workspace_size = gemm_4bit_workspace_size,
    // int8_scaled_mm keeps its tiles on each thread's stack: no workspace query.
    .paged_alloc = paged_alloc,
    .paged_free = paged_free,
    .paged_prefetch = paged_prefetch,
    .variant = active_variant,
    .variant_supported = variant_supported,
    .select_variant = select_variant,
};

}  // namespace
}  // namespace bnb::cpu

BNB_REGISTER_BACKEND(BNB_DEVICE_CPU, bnb::cpu::kCpuOps);
