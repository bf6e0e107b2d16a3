// The CUDA backend's table (the HIP backend's when hipcc builds this file) and
// the device queries its kernels share.
#include <vector>

#include "cuda_common.cuh"
#include "cuda_ops.h"

namespace bnb::cuda {
namespace {

// The devices and their properties, queried once: every op call checks its device
// index against this list, and launches read the SM count and compute capability.
const std::vector<DeviceInfo>& devices() {
    static const std::vector<DeviceInfo> found = [] {
        std::vector<DeviceInfo> list;
        int count = 0;
        if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
        for (int device = 0; device < count; ++device) {
            cudaDeviceProp properties{};
            if (cudaGetDeviceProperties(&properties, device) != cudaSuccess) properties = cudaDeviceProp{};
            list.push_back({properties.multiProcessorCount > 0 ? properties.multiProcessorCount : 1,
                            properties.major * 10 + properties.minor});
        }
        return list;
    }();
    return found;
}

int device_count() { return static_cast<int>(devices().size()); }

const BackendOps kCudaOps = {
    .name = BNB_GPU_BACKEND_NAME,
    .device_count = device_count,
    // absmax is indexed by a shift of the element index (powers of two only).
    .blocks_of_any_length = false,
    .quantize_blockwise = quantize_blockwise,
    .dequantize_blockwise = dequantize_blockwise,
    .quantize_4bit = quantize_4bit,
    .dequantize_4bit = dequantize_4bit,
    .gemm_4bit = gemm_4bit,
    .gemv_4bit = gemm_4bit,
    .int8_vectorwise_quant = int8_vectorwise_quant,
    .int8_double_quant = int8_double_quant,
    .int8_vectorwise_dequant = int8_vectorwise_dequant,
    .int8_linear_matmul = int8_linear_matmul,
    .int8_mm_dequant = int8_mm_dequant,
    .int8_scaled_mm = int8_scaled_mm,
    .optimizer_update_32bit = optimizer_update_32bit,
    .optimizer_update_8bit_blockwise = optimizer_update_8bit_blockwise,
    .gemm_4bit_fused_max_rows = gemm_4bit_fused_max_rows,
    .gemm_4bit_workspace_size = gemm_4bit_workspace_size,
    .int8_scaled_mm_workspace_size = int8_scaled_mm_workspace_size,
    .paged_alloc = paged_alloc,
    .paged_free = paged_free,
    .paged_prefetch = paged_prefetch,
    .variant = nullptr,
    .variant_supported = nullptr,
    .select_variant = nullptr,
};

}  // namespace

DeviceInfo device_info(int index) {
    if (index < 0 || index >= device_count()) return {1, 0};
    return devices()[static_cast<size_t>(index)];
}

}  // namespace bnb::cuda

BNB_REGISTER_BACKEND(BNB_GPU_DEVICE_TYPE, bnb::cuda::kCudaOps);
