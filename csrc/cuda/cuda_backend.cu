// The CUDA backend's table (the HIP backend's when hipcc builds this file) and
// the device queries its kernels share.
#include <mutex>
#include <vector>

#include "cuda_common.cuh"
#include "cuda_ops.h"

namespace bnb::cuda {
namespace {

int device_count() {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

const BackendOps kCudaOps = {
    BNB_GPU_BACKEND_NAME,
    device_count,
    quantize_blockwise,
    dequantize_blockwise,
    quantize_4bit,
    dequantize_4bit,
    gemm_4bit,
    gemm_4bit_fused_max_rows,
};

}  // namespace

DeviceInfo device_info(int index) {
    static std::once_flag once;
    static std::vector<DeviceInfo> devices;
    std::call_once(once, [] {
        int count = 0;
        if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
        for (int device = 0; device < count; ++device) {
            cudaDeviceProp properties{};
            if (cudaGetDeviceProperties(&properties, device) != cudaSuccess) properties = cudaDeviceProp{};
            devices.push_back({properties.multiProcessorCount > 0 ? properties.multiProcessorCount : 1,
                               properties.major * 10 + properties.minor});
        }
    });
    if (index < 0 || index >= static_cast<int>(devices.size())) return {1, 0};
    return devices[static_cast<size_t>(index)];
}

}  // namespace bnb::cuda

BNB_REGISTER_BACKEND(BNB_GPU_DEVICE_TYPE, bnb::cuda::kCudaOps);
