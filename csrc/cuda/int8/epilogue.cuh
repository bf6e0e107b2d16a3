// The arithmetic every int8 product path ends with (formats.md 5.3, c_abi.md
// "LLM.int8()"): the rescale of the int32 product by row and column statistics
// with the bias in one fused multiply-add, and the outlier columns' product.
#pragma once

#include <algorithm>

#include "../cuda_common.cuh"

namespace bnb::cuda {

// float32(1/127) and float32(1/127^2), the constants upstream's CUDA kernels use.
constexpr float kInv127 = 7.874015718698502e-3f;
constexpr float kInv127Squared = 6.200012e-05f;

// bias[i] (or any float vector of runtime dtype) as float32.
__device__ __forceinline__ float load_as_float(const void* values, bnb_dtype dtype, int64_t i) {
    switch (dtype) {
        case BNB_DTYPE_FLOAT16: return __half2float(static_cast<const fp16*>(values)[i]);
        case BNB_DTYPE_BFLOAT16: return __bfloat162float(static_cast<const bf16*>(values)[i]);
        default: return static_cast<const float*>(values)[i];
    }
}

// What the scaled paths read beside the product.
struct ScaledEpilogue {
    const float* row_stats;       // [M]
    const float* col_stats;       // [N]
    const void* bias;             // [N] or null
    bnb_dtype bias_dtype;
    const void* X;                // [M, K] in the output dtype (outliers only)
    const int64_t* outlier_cols;  // null: no outlier columns
    const int64_t* outlier_count;
};

// fma((C * row) * col, 1/127^2, bias): upstream's int8_mm_dequant bit for bit.
__device__ __forceinline__ float rescale(int32_t product, float row_stat, float col_stat, float bias) {
    return __fmaf_rn(__fmul_rn(__fmul_rn(static_cast<float>(product), row_stat), col_stat), kInv127Squared, bias);
}

__device__ __forceinline__ float bias_of(const ScaledEpilogue& e, int64_t n) {
    return e.bias != nullptr ? load_as_float(e.bias, e.bias_dtype, n) : 0.0f;
}

// The outlier list's used length, clamped to [0, K].
__device__ __forceinline__ int64_t outlier_count(const ScaledEpilogue& e, int64_t K) {
    if (e.outlier_cols == nullptr) return 0;
    return std::min<int64_t>(std::max<int64_t>(*e.outlier_count, 0), K);
}

// A clamped outlier column index (a caller's list is trusted to be < K; clamping
// keeps a wrong one inside the matrices).
__device__ __forceinline__ int64_t outlier_column(const ScaledEpilogue& e, int64_t j, int64_t K) {
    return std::min<int64_t>(std::max<int64_t>(e.outlier_cols[j], 0), K - 1);
}

// The outlier weight as the op defines it: dtype(B * col_stat / 127).
template <typename T>
__device__ __forceinline__ float outlier_weight(int8_t code, float col_stat) {
    return Element<T>::to_float(Element<T>::from_float(__fmul_rn(__fmul_rn(static_cast<float>(code), col_stat), kInv127)));
}

// sum_j X[m, c_j] * dtype(B[n, c_j] * col_stats[n] / 127), float32 accumulation.
template <typename T>
__device__ __forceinline__ float outlier_sum(const ScaledEpilogue& e, const int8_t* B, int64_t m, int64_t n,
                                             int64_t K, int64_t count) {
    const T* X = static_cast<const T*>(e.X);
    const float col_stat = e.col_stats[n];
    float sum = 0.0f;
    for (int64_t j = 0; j < count; ++j) {
        const int64_t c = outlier_column(e, j, K);
        sum = __fmaf_rn(Element<T>::to_float(X[m * K + c]), outlier_weight<T>(B[n * K + c], col_stat), sum);
    }
    return sum;
}

}  // namespace bnb::cuda
