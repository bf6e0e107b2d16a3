// The CUDA backend's table. Kernels register their slots here as they land.
#include <cuda_runtime.h>

#include "backend.h"

namespace bnb::cuda {
namespace {

bool available() {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

const BackendOps kCudaOps = {
    "cuda",
    available,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace
}  // namespace bnb::cuda

BNB_REGISTER_BACKEND(BNB_DEVICE_CUDA, bnb::cuda::kCudaOps);
