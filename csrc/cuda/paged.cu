// Paged memory (bnb_paged_*): CUDA managed memory, which the driver migrates
// between host and device on demand, for optimizer states (formats.md 8.4).
#include <string>

#include "cuda_common.cuh"
#include "cuda_ops.h"

namespace bnb::cuda {

bnb_status paged_alloc(bnb_device device, int64_t bytes, void** out) {
    const DeviceGuard guard(device.index);
    // Managed memory beyond what the card can back can hang the GPU when the
    // kernels touch it: refuse what the device does not have free now.
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    bnb_status status = check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "paged_alloc: cudaMemGetInfo");
    if (status != BNB_STATUS_SUCCESS) return status;
    if (static_cast<uint64_t>(bytes) > free_bytes) {
        return fail(BNB_STATUS_OUT_OF_MEMORY, "paged_alloc: " + std::to_string(bytes) + " bytes requested but device " +
                                                  std::to_string(device.index) + " has only " +
                                                  std::to_string(free_bytes) + " bytes free");
    }
    void* memory = nullptr;
    status = check_cuda(cudaMallocManaged(&memory, static_cast<size_t>(bytes), cudaMemAttachGlobal),
                        "paged_alloc: cudaMallocManaged");
    if (status != BNB_STATUS_SUCCESS) return status;
    // Zeroed on the device and finished before the pointer is handed out: the
    // caller may touch it from any stream or from the host.
    cudaError_t error = cudaMemset(memory, 0, static_cast<size_t>(bytes));
    if (error == cudaSuccess) error = cudaDeviceSynchronize();
    if (error != cudaSuccess) {
        (void)cudaFree(memory);
        return check_cuda(error, "paged_alloc: zero-fill");
    }
    *out = memory;
    return BNB_STATUS_SUCCESS;
}

bnb_status paged_free(bnb_device device, void* ptr) {
    const DeviceGuard guard(device.index);
    return check_cuda(cudaFree(ptr), "paged_free: cudaFree");
}

bnb_status paged_prefetch(bnb_device device, void* stream, const void* ptr, int64_t bytes, bool to_device) {
    const DeviceGuard guard(device.index);
    // Prefetching needs concurrent managed access (otherwise the driver migrates
    // on its own); upstream then does nothing, and so does this.
    int concurrent = 0;
    const bnb_status status =
        check_cuda(cudaDeviceGetAttribute(&concurrent, cudaDevAttrConcurrentManagedAccess, device.index),
                   "paged_prefetch: cudaDeviceGetAttribute");
    if (status != BNB_STATUS_SUCCESS || concurrent == 0) return status;
    cudaMemLocation location{};
    location.type = to_device ? cudaMemLocationTypeDevice : cudaMemLocationTypeHost;
    location.id = to_device ? device.index : 0;  // ignored for the host
    return check_cuda(cudaMemPrefetchAsync(ptr, static_cast<size_t>(bytes), location, 0, to_stream(stream)),
                      "paged_prefetch: cudaMemPrefetchAsync");
}

}  // namespace bnb::cuda
