// Device memory for the CUDA tests of the C ABI: a status check of CUDA runtime
// calls and one cudaMalloc'd buffer per object, freed on scope exit.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "support/golden.h"

namespace bnb_test {

inline ::testing::AssertionResult cuda_ok(cudaError_t error) {
    if (error == cudaSuccess) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << cudaGetErrorName(error) << ": " << cudaGetErrorString(error);
}

// One cudaMalloc'd buffer, freed on scope exit.
class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { EXPECT_TRUE(cuda_ok(cudaMalloc(&data_, bytes ? bytes : 1))); }
    DeviceBuffer(const void* host, size_t bytes) : DeviceBuffer(bytes) {
        EXPECT_TRUE(cuda_ok(cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice)));
    }
    explicit DeviceBuffer(const TensorView& tensor) : DeviceBuffer(tensor.data, tensor.bytes) {}
    ~DeviceBuffer() { cudaFree(data_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    template <typename T = void>
    T* get() const { return static_cast<T*>(data_); }
    // The first `bytes` bytes (all by default): a caller reads only what the call under test wrote,
    // so that compute-sanitizer's initcheck reports no copy of never-written memory.
    std::vector<uint8_t> download(size_t bytes = SIZE_MAX) const {
        std::vector<uint8_t> host(std::min(bytes, bytes_));
        EXPECT_TRUE(cuda_ok(cudaMemcpy(host.data(), data_, host.size(), cudaMemcpyDeviceToHost)));
        return host;
    }

private:
    void* data_ = nullptr;
    size_t bytes_;
};

}  // namespace bnb_test
