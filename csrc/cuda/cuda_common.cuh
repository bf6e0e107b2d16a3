// What every CUDA kernel file shares: the platform header (CUDA, or HIP through
// vendors/hip.h, so that hipcc builds these files unchanged), the float
// element types, upstream's fast-math arithmetic, and the host-side helpers
// (dtype dispatch, device guard, launch check).
#pragma once

#if defined(__HIPCC__)
#include "vendors/hip.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// The dispatch-table entry these sources fill (vendors/hip.h names the HIP one).
#define BNB_GPU_DEVICE_TYPE BNB_DEVICE_CUDA
#define BNB_GPU_BACKEND_NAME "cuda"
// NVIDIA's warp-level mma.sync and cuBLASLt (vendors/hip.h: neither in the HIP build).
#define BNB_GPU_HAS_MMA_SYNC 1
#define BNB_GPU_HAS_CUBLASLT 1
// Full unrolling of a loop with a constant bound and an early exit (nvcc does it;
// vendors/hip.h: a plain loop).
#define BNB_UNROLL_WITH_EXIT _Pragma("unroll")
#endif

#include <cstdint>
#include <string>

#include "backend.h"
#include "codebooks.h"

namespace bnb::cuda {

using bf16 = __nv_bfloat16;
using fp16 = __half;

constexpr unsigned kFullWarp = 0xffffffffu;
constexpr int kWarpSize = 32;  // kernels group lanes by 32 on every platform

// ---- upstream's arithmetic (formats.md section 0) -------------------------------

#if !defined(__HIPCC__)
// Upstream compiles with --use_fast_math: 1.0f / x is this instruction, and the
// quantizers' scaling multiply flushes subnormals. Written out so that the bytes
// do not depend on compiler flags.
__device__ __forceinline__ float rcp_approx_ftz(float x) {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ float mul_ftz(float a, float b) {
    float r;
    asm("mul.rn.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

#endif

// ---- element types ------------------------------------------------------------------

template <typename T>
struct Element;

template <>
struct Element<float> {
    __device__ __forceinline__ static float to_float(float v) { return v; }
    __device__ __forceinline__ static float from_float(float v) { return v; }
};

template <>
struct Element<fp16> {
    __device__ __forceinline__ static float to_float(fp16 v) { return __half2float(v); }
    __device__ __forceinline__ static fp16 from_float(float v) { return __float2half_rn(v); }
    // Two values rounded to nearest even, `low` in the low 16 bits.
    __device__ __forceinline__ static uint32_t pack2(float low, float high) {
        const __half2 pair = __floats2half2_rn(low, high);
        return *reinterpret_cast<const uint32_t*>(&pair);
    }
    __device__ __forceinline__ static float low_of(uint32_t pair) {
        return __half2float(__ushort_as_half(static_cast<unsigned short>(pair & 0xffffu)));
    }
    __device__ __forceinline__ static float high_of(uint32_t pair) {
        return __half2float(__ushort_as_half(static_cast<unsigned short>(pair >> 16)));
    }
};

template <>
struct Element<bf16> {
    __device__ __forceinline__ static float to_float(bf16 v) { return __bfloat162float(v); }
    __device__ __forceinline__ static bf16 from_float(float v) { return __float2bfloat16_rn(v); }
    __device__ __forceinline__ static uint32_t pack2(float low, float high) {
        const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
        return *reinterpret_cast<const uint32_t*>(&pair);
    }
    // bf16 is the upper half of a float32: widening is a shift.
    __device__ __forceinline__ static float low_of(uint32_t pair) { return __uint_as_float(pair << 16); }
    __device__ __forceinline__ static float high_of(uint32_t pair) { return __uint_as_float(pair & 0xffff0000u); }
};

// 16 codebook values passed by value as a kernel parameter.
struct Codebook16 {
    float values[16];
};

// The values upstream's CUDA dequantizer uses: FP4's sign applies to zero too
// (code 8 is -0.0). Written without codebooks.h's fp4_value, whose host-device
// body nvcc would then compile for the device, where its table is not visible.
inline Codebook16 codebook16(bnb_quant_type quant_type) {
    Codebook16 codebook{};
    for (int code = 0; code < 16; ++code) {
        const float magnitude = kFp4Magnitudes[code & 7];
        codebook.values[code] = quant_type == BNB_QUANT_NF4 ? kNf4Values[code] : (code & 8) ? -magnitude : magnitude;
    }
    return codebook;
}

// A 16-entry table in shared memory with one copy per lane: entry c of lane l is
// word c * 32 + l, always in bank l, so lookups by random codes never conflict.
struct LaneTable {
    float entries[16][kWarpSize];
};

// Fills `table` from `code` (device memory) when given, else from `codebook`.
// Every thread of the block must call it; it ends with a barrier.
__device__ __forceinline__ void fill_lane_table(LaneTable& table, const float* code, const Codebook16& codebook) {
    for (int i = threadIdx.x; i < 16 * kWarpSize; i += blockDim.x) {
        const int entry = i / kWarpSize;
        table.entries[entry][i % kWarpSize] = code != nullptr ? code[entry] : codebook.values[entry];
    }
    __syncthreads();
}

// This lane's column of the table: column[code * kWarpSize] is entry `code`.
__device__ __forceinline__ const float* lane_column(const LaneTable& table) {
    return &table.entries[0][threadIdx.x % kWarpSize];
}

// ---- host side -----------------------------------------------------------------------

template <typename T>
struct TypeTag {
    using type = T;
};

// The one place where the runtime dtype becomes a template argument.
template <typename F>
bnb_status dispatch_float(bnb_dtype dtype, F&& body) {
    switch (dtype) {
        case BNB_DTYPE_FLOAT32: return body(TypeTag<float>{});
        case BNB_DTYPE_FLOAT16: return body(TypeTag<fp16>{});
        case BNB_DTYPE_BFLOAT16: return body(TypeTag<bf16>{});
        default: break;
    }
    return fail(BNB_STATUS_INTERNAL, "cuda backend: unexpected dtype " + std::to_string(static_cast<int>(dtype)));
}

inline cudaStream_t to_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Makes `index` the current device for the scope (kernels launch on the current
// device; torch does not set it for custom ops).
class DeviceGuard {
public:
    explicit DeviceGuard(int index) {
        if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != index) {
            changed_ = cudaSetDevice(index) == cudaSuccess;
        }
    }
    ~DeviceGuard() {
        if (changed_) (void)cudaSetDevice(previous_);
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int previous_ = -1;
    bool changed_ = false;
};

// BNB_STATUS_SUCCESS, or `error` of a CUDA call reported as the failure of `what`.
inline bnb_status check_cuda(cudaError_t error, const std::string& what) {
    if (error == cudaSuccess) return BNB_STATUS_SUCCESS;
    return fail(error == cudaErrorMemoryAllocation ? BNB_STATUS_OUT_OF_MEMORY : BNB_STATUS_BACKEND_ERROR,
                what + ": CUDA error " + cudaGetErrorName(error) + ": " + cudaGetErrorString(error));
}

// BNB_STATUS_SUCCESS, or the launch error of the last kernel named after `op`.
inline bnb_status check_launch(const char* op) { return check_cuda(cudaGetLastError(), op); }

struct DeviceInfo {
    int sm_count;
    int compute_capability;  // major * 10 + minor
};

// Cached per device ordinal (attributes never change while the process runs).
DeviceInfo device_info(int index);

inline bool is_aligned(const void* pointer, uintptr_t bytes) {
    return reinterpret_cast<uintptr_t>(pointer) % bytes == 0;
}

inline int log2_exact(int64_t power_of_two) {
    int log = 0;
    while ((int64_t{1} << log) < power_of_two) ++log;
    return log;
}

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace bnb::cuda
