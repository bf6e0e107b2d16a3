// The only place where the HIP build of csrc/cuda differs: the CUDA runtime names
// those files use, mapped to HIP, plus the few device functions HIP lacks (bfloat16
// pairs, the *_sync warp shuffles) and the platform's version of upstream's
// fast-math arithmetic. Included by cuda_common.cuh when __HIPCC__ is defined;
// csrc/hip/compile_check.sh builds the sources with it.
//
// Bit-exactness with upstream's CUDA bytes is not claimed on AMD GPUs: the
// approximate reciprocal differs from NVIDIA's rcp.approx.ftz.f32.
#pragma once

#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

#include <cstdint>
#include <cstring>

// The dispatch-table entry these sources fill when built by hipcc.
#define BNB_GPU_DEVICE_TYPE BNB_DEVICE_HIP
#define BNB_GPU_BACKEND_NAME "hip"
// What the CUDA build has and this one lacks: the tensor-core 4-bit matmul kernel
// is written with NVIDIA's mma.sync, and the dequantize + dense GEMM path calls
// cuBLASLt (hipBLASLt is not part of this build). AUTO serves every shape with the
// other fused kernels instead.
#define BNB_GPU_HAS_MMA_SYNC 0
#define BNB_GPU_HAS_CUBLASLT 0
// clang cannot fully unroll a loop that may leave early, which nvcc does (and an
// unmet unroll request is an error under -Werror): a plain loop here.
#define BNB_UNROLL_WITH_EXIT

// ---- runtime API -------------------------------------------------------------------------
using cudaStream_t = hipStream_t;
using cudaError_t = hipError_t;
using cudaDeviceProp = hipDeviceProp_t;
#define cudaSuccess hipSuccess
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaGetLastError hipGetLastError
#define cudaGetErrorName hipGetErrorName
#define cudaGetErrorString hipGetErrorString
#define cudaGetDevice hipGetDevice
#define cudaSetDevice hipSetDevice
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaOccupancyMaxActiveBlocksPerMultiprocessor hipOccupancyMaxActiveBlocksPerMultiprocessor
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrConcurrentManagedAccess hipDeviceAttributeConcurrentManagedAccess
#define cudaMemGetInfo hipMemGetInfo
#define cudaMallocManaged hipMallocManaged
#define cudaMemAttachGlobal hipMemAttachGlobal
#define cudaMemset hipMemset
#define cudaMemsetAsync hipMemsetAsync
#define cudaFree hipFree

// CUDA 13's prefetch destination; the HIP call takes a device ordinal, the host
// being hipCpuDeviceId.
enum cudaMemLocationType { cudaMemLocationTypeDevice = 1, cudaMemLocationTypeHost = 2 };
struct cudaMemLocation {
    cudaMemLocationType type;
    int id;
};
inline hipError_t cudaMemPrefetchAsync(const void* ptr, size_t count, cudaMemLocation location, unsigned int flags,
                                       hipStream_t stream) {
    (void)flags;
    return hipMemPrefetchAsync(ptr, count, location.type == cudaMemLocationTypeDevice ? location.id : hipCpuDeviceId,
                               stream);
}

// Kernel parameters are read in place on every platform HIP targets.
#define __grid_constant__

// ---- warp shuffles ------------------------------------------------------------------------
// The kernels group lanes by 32 on every platform (wave64 GPUs run two groups per
// wavefront), so the width is 32 and the CUDA mask is implied.
template <typename T>
__device__ __forceinline__ T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    (void)mask;
    return __shfl_xor(value, lane_mask, width);
}

template <typename T>
__device__ __forceinline__ T __shfl_up_sync(unsigned mask, T value, unsigned int delta, int width = 32) {
    (void)mask;
    return __shfl_up(value, delta, width);
}

// ---- bfloat16 -----------------------------------------------------------------------------
// Storage-only types with CUDA's names; conversions round to nearest even like
// __float2bfloat16_rn (NaN stays a quiet NaN).
struct __nv_bfloat16 {
    unsigned short bits;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x;
    __nv_bfloat16 y;
};

__host__ __device__ inline unsigned int bnb_float_bits(float value) {
    unsigned int bits;
    std::memcpy(&bits, &value, sizeof(bits));
    return bits;
}

__host__ __device__ inline float bnb_bits_float(unsigned int bits) {
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

__host__ __device__ inline __nv_bfloat16 __float2bfloat16_rn(float value) {
    const unsigned int bits = bnb_float_bits(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return {static_cast<unsigned short>((bits >> 16) | 0x40u)};
    const unsigned int rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
    return {static_cast<unsigned short>(rounded >> 16)};
}

__host__ __device__ inline float __bfloat162float(__nv_bfloat16 value) {
    return bnb_bits_float(static_cast<unsigned int>(value.bits) << 16);
}

__host__ __device__ inline __nv_bfloat162 __floats2bfloat162_rn(float low, float high) {
    return {__float2bfloat16_rn(low), __float2bfloat16_rn(high)};
}

// ---- upstream's fast-math arithmetic ------------------------------------------------------
__device__ __forceinline__ float bnb_hip_rcp_approx(float x) { return __builtin_amdgcn_rcpf(x); }

namespace bnb::cuda {
__device__ __forceinline__ float rcp_approx_ftz(float x) { return bnb_hip_rcp_approx(x); }
__device__ __forceinline__ float mul_ftz(float a, float b) { return a * b; }
}  // namespace bnb::cuda
