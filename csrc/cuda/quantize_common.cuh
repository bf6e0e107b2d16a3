// Pieces shared by the quantizers (blockwise 8-bit and 4-bit) and dequantizers:
// the 8-element loads, the per-block absmax reduction, the 4-bit encoders and
// the 16-byte stores.
#pragma once

#include <type_traits>

#include "cuda_common.cuh"
#include "tuning.h"

namespace bnb::cuda {

// ---- loads and stores ----------------------------------------------------------------

// v[j] = A[first + j] as float32 for j < 8; elements at or past n read as 0.
// `vector_ok`: A is 16-byte aligned, so full groups load with 16-byte accesses.
template <typename T>
__device__ __forceinline__ void load8(const T* __restrict__ A, int64_t first, int64_t n, bool vector_ok,
                                      float (&v)[8]) {
    if (vector_ok && first + 8 <= n) {
        if constexpr (sizeof(T) == 4) {
            const float4 low = __ldg(reinterpret_cast<const float4*>(A + first));
            const float4 high = __ldg(reinterpret_cast<const float4*>(A + first + 4));
            v[0] = low.x; v[1] = low.y; v[2] = low.z; v[3] = low.w;
            v[4] = high.x; v[5] = high.y; v[6] = high.z; v[7] = high.w;
        } else {
            const uint4 raw = __ldg(reinterpret_cast<const uint4*>(A + first));
            const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
            for (int w = 0; w < 4; ++w) {
                v[2 * w] = Element<T>::low_of(words[w]);
                v[2 * w + 1] = Element<T>::high_of(words[w]);
            }
        }
    } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = first + j < n ? Element<T>::to_float(A[first + j]) : 0.0f;
    }
}

// Elements of T in one 16-byte vector.
template <typename T>
constexpr int kPerVector = 16 / static_cast<int>(sizeof(T));

// Rounds values to T and stores them as one 16-byte vector at dst (16-byte aligned).
template <typename T>
__device__ __forceinline__ void store_vector(T* dst, const float (&values)[kPerVector<T>]) {
    if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float4*>(dst) = make_float4(values[0], values[1], values[2], values[3]);
    } else {
        uint4 packed;
        packed.x = Element<T>::pack2(values[0], values[1]);
        packed.y = Element<T>::pack2(values[2], values[3]);
        packed.z = Element<T>::pack2(values[4], values[5]);
        packed.w = Element<T>::pack2(values[6], values[7]);
        *reinterpret_cast<uint4*>(dst) = packed;
    }
}

// ---- absmax of a quantization block -----------------------------------------------------

// Max of `value` over the `group` consecutive threads (a power of two, 4 to 512,
// dividing blockDim.x) that hold one quantization block. fmaxf drops NaN, as
// upstream's reduction does. Every thread of the block must call it.
__device__ __forceinline__ float group_max(float value, int group, float* warp_scratch) {
    const int lanes = group < kWarpSize ? group : kWarpSize;
    for (int offset = 1; offset < lanes; offset <<= 1) {
        value = fmaxf(value, __shfl_xor_sync(kFullWarp, value, offset));
    }
    if (group <= kWarpSize) return value;
    const int warp = threadIdx.x / kWarpSize;
    if (threadIdx.x % kWarpSize == 0) warp_scratch[warp] = value;
    __syncthreads();
    const int warps = group / kWarpSize;
    const int first = warp / warps * warps;
    float result = warp_scratch[first];
    for (int w = 1; w < warps; ++w) result = fmaxf(result, warp_scratch[first + w]);
    return result;
}

// |v| reduced into `local` (subnormals flush to 0 under fast math, as upstream).
__device__ __forceinline__ float absmax8(const float (&v)[8]) {
    float local = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) local = fmaxf(local, fabsf(v[j]));
    return local;
}

// ---- 4-bit encoders (formats.md section 3.1) -----------------------------------------------

// NF4: the number of thresholds that s exceeds (strict >), found by a binary
// descent over the 15 increasing thresholds; NaN compares false and gives 0.
__host__ __device__ __forceinline__ uint32_t encode_nf4(float s) {
    constexpr float t0 = kNf4Thresholds[0], t1 = kNf4Thresholds[1], t2 = kNf4Thresholds[2];
    constexpr float t3 = kNf4Thresholds[3], t4 = kNf4Thresholds[4], t5 = kNf4Thresholds[5];
    constexpr float t6 = kNf4Thresholds[6], t7 = kNf4Thresholds[7], t8 = kNf4Thresholds[8];
    constexpr float t9 = kNf4Thresholds[9], t10 = kNf4Thresholds[10], t11 = kNf4Thresholds[11];
    constexpr float t12 = kNf4Thresholds[12], t13 = kNf4Thresholds[13], t14 = kNf4Thresholds[14];
    uint32_t code = s > t7 ? 8u : 0u;
    code += s > (code & 8u ? t11 : t3) ? 4u : 0u;
    const float third = code & 8u ? (code & 4u ? t13 : t9) : (code & 4u ? t5 : t1);
    code += s > third ? 2u : 0u;
    const float last = code & 8u ? (code & 4u ? (code & 2u ? t14 : t12) : (code & 2u ? t10 : t8))
                                 : (code & 4u ? (code & 2u ? t6 : t4) : (code & 2u ? t2 : t0));
    code += s > last ? 1u : 0u;
    return code;
}

// kFp4MagnitudeIndexAbove as nibbles indexed by rank (rank 0 -> index 0).
constexpr uint32_t fp4_rank_to_index() {
    uint32_t packed = 0;
    for (int rank = 1; rank <= 7; ++rank) packed |= uint32_t{kFp4MagnitudeIndexAbove[rank - 1]} << (4 * rank);
    return packed;
}

// FP4: sign bit 8 for s < 0 (so -0, NaN and flushed negatives are positive), then
// the magnitude index of the rank of |s| among the 7 increasing thresholds.
__host__ __device__ __forceinline__ uint32_t encode_fp4(float s) {
    constexpr float m0 = kFp4MagnitudeThresholds[0], m1 = kFp4MagnitudeThresholds[1];
    constexpr float m2 = kFp4MagnitudeThresholds[2], m3 = kFp4MagnitudeThresholds[3];
    constexpr float m4 = kFp4MagnitudeThresholds[4], m5 = kFp4MagnitudeThresholds[5];
    constexpr float m6 = kFp4MagnitudeThresholds[6];
    constexpr uint32_t kRankToIndex = fp4_rank_to_index();
    const uint32_t sign = s < 0.0f ? 8u : 0u;
    const float a = fabsf(s);
    uint32_t rank = a > m3 ? 4u : 0u;
    rank += a > (rank != 0u ? m5 : m1) ? 2u : 0u;
    const float last = rank == 0u ? m0 : rank == 2u ? m2 : rank == 4u ? m4 : m6;
    rank += a > last ? 1u : 0u;
    return ((kRankToIndex >> (4u * rank)) & 7u) | sign;
}

template <bnb_quant_type Q>
__host__ __device__ __forceinline__ uint32_t encode_4bit(float s) {
    return Q == BNB_QUANT_NF4 ? encode_nf4(s) : encode_fp4(s);
}

}  // namespace bnb::cuda
