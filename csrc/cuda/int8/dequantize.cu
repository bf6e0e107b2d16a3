// int8_vectorwise_dequant and int8_mm_dequant (formats.md 5.1, 5.3).
#include <algorithm>

#include "../cuda_ops.h"
#include "gemm_kernels.cuh"

namespace bnb::cuda {
namespace {

constexpr int kDequantizeThreads = 256;

// out = dtype(float32(A) * stats[row] * float32(1/127)), two float32 roundings.
template <typename T>
__global__ void __launch_bounds__(kDequantizeThreads)
    vectorwise_dequant_kernel(const int8_t* __restrict__ A, const float* __restrict__ stats, int64_t rows,
                              int64_t cols, T* __restrict__ out) {
    const int64_t n = rows * cols;
    const int64_t stride = int64_t{gridDim.x} * blockDim.x;
    for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = Element<T>::from_float(__fmul_rn(__fmul_rn(static_cast<float>(A[i]), stats[i / cols]), kInv127));
    }
}

}  // namespace

bnb_status int8_vectorwise_dequant(const Int8DequantizeArgs& args) {
    const DeviceGuard guard(args.device.index);
    const int64_t n = args.rows * args.cols;
    const int64_t blocks =
        std::min<int64_t>(ceil_div(n, kDequantizeThreads), int64_t{device_info(args.device.index).sm_count} * 32);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        vectorwise_dequant_kernel<T><<<static_cast<unsigned>(blocks), kDequantizeThreads, 0, to_stream(args.stream)>>>(
            args.A, args.stats, args.rows, args.cols, static_cast<T*>(args.out));
        return check_launch("int8_vectorwise_dequant");
    });
}

bnb_status int8_mm_dequant(const Int8MmDequantArgs& args) {
    const DeviceGuard guard(args.device.index);
    const ScaledEpilogue epilogue{args.row_stats, args.col_stats, args.bias, args.bias_dtype, nullptr, nullptr, nullptr};
    const dim3 grid(static_cast<unsigned>(ceil_div(args.cols, int8_tuning::kEpilogueCols)),
                    static_cast<unsigned>(std::min<int64_t>(ceil_div(args.rows, int8_tuning::kEpilogueRows), 65535)));
    const bool vector_ok = is_aligned(args.A, 16) && args.cols % 4 == 0;
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        int8_epilogue_kernel<T, false><<<grid, int8_tuning::kEpilogueThreads, 0, to_stream(args.stream)>>>(
            args.A, nullptr, args.rows, args.cols, 0, epilogue, vector_ok, nullptr, nullptr, static_cast<T*>(args.out));
        return check_launch("int8_mm_dequant");
    });
}

}  // namespace bnb::cuda
