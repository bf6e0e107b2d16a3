// What the 4-bit matmul kernels share: their parameters, the block scales
// (plain or nested statistics) and the warp reduction. De-nesting is
// denested_scale, the one definition that every path uses (the fused kernels, and
// the statistics the dequantize + dense GEMM path writes before dequantizing W).
#pragma once

#include "../quantize_common.cuh"
#include "formats.h"
#include "tuning_sm90.h"

namespace bnb::cuda {

constexpr int kChunk = 32;  // consecutive k of one 16-byte load of W

// Scale of a block of nested statistics (formats.md 3.3): its 8-bit code's value
// times the float32 absmax of its group of 256 blocks, plus the offset, with the
// same two roundings as dequantize_blockwise followed by the offset's addition.
__device__ __forceinline__ float denested_scale(float code_value, float group_absmax, float offset) {
    return __fadd_rn(mul_ftz(code_value, group_absmax), offset);
}

struct GemmParams {
    const void* A;
    const uint8_t* B;
    const float* absmax;
    const uint8_t* absmax_8bit;
    const float* absmax_code;
    const float* absmax_offset;
    const void* bias;
    void* out;
    const float* code;  // or null: codebook
    int64_t M;
    int64_t N;
    int64_t K;
    int log2_blocksize;
    Codebook16 codebook;
};

// The statistics of one quantization block as loaded: its absmax, or (nested) the
// 8-bit code and the float32 absmax of its group of 256 blocks.
struct RawScale {
    float absmax;
    uint32_t code;
};

// Scale of quantization block j. load() only issues independent global loads, so
// that a prefetch never waits; scale() de-nests with denested_scale.
template <bool NESTED>
struct Scales {
    const float* absmax;
    const uint8_t* absmax_8bit;
    const float* nested_code;  // shared memory
    float offset;

    __device__ __forceinline__ RawScale load(int64_t block) const {
        if constexpr (NESTED) {
            return {__ldg(absmax + block / formats::kNestedBlocksize), __ldg(absmax_8bit + block)};
        } else {
            return {__ldg(absmax + block), 0u};
        }
    }

    __device__ __forceinline__ float scale(const RawScale& raw) const {
        if constexpr (NESTED) {
            return denested_scale(nested_code[raw.code], raw.absmax, offset);
        } else {
            return raw.absmax;
        }
    }

    __device__ __forceinline__ float operator()(int64_t block) const { return scale(load(block)); }
};

template <bool NESTED>
__device__ __forceinline__ Scales<NESTED> load_scales(const GemmParams& p, float* nested_code) {
    if constexpr (NESTED) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) nested_code[i] = p.absmax_code[i];
        return {p.absmax, p.absmax_8bit, nested_code, __ldg(p.absmax_offset)};
    } else {
        return {p.absmax, nullptr, nullptr, 0.0f};
    }
}

template <typename T>
__device__ __forceinline__ float bias_of(const GemmParams& p, int64_t n) {
    return p.bias != nullptr ? Element<T>::to_float(static_cast<const T*>(p.bias)[n]) : 0.0f;
}

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullWarp, value, offset);
    return value;
}

}  // namespace bnb::cuda
