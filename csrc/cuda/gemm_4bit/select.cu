// The 4-bit matmul's slots (gemm_4bit, gemv_4bit and the queries) and the choice
// of kernel for each call:
//   SIMT         few rows of A (decode)                          simt.cuh
//   tensor core  fp16/bf16 up to 64 rows, sm_80+                 mma_sm80.cuh
//   generic      any shape or alignment (correct, slow)          generic.cuh
//   dequantize   many rows: W dequantized into the caller's      dequantize_gemm.cu
//                workspace, then cuBLASLt
// AUTO follows tuning_sm90.h, the only architecture measured, on every GPU. The
// fused kernels serve any M, so AUTO stays fused when the caller gives less
// workspace than bnb_gemm_4bit_workspace_size reports.
#include <algorithm>
#include <string>
#include <type_traits>

#include "../cuda_ops.h"
#include "dequantize_gemm.h"
#include "generic.cuh"
#include "mma_sm80.cuh"
#include "simt.cuh"

namespace bnb::cuda {
namespace {

template <bool V>
using Bool = std::integral_constant<bool, V>;

template <typename F>
auto with_nested(bool nested, F&& body) {
    return nested ? body(Bool<true>{}) : body(Bool<false>{});
}

const char* algo_name(bnb_gemm_4bit_algo algo) {
    switch (algo) {
        case BNB_GEMM_4BIT_GENERIC: return "BNB_GEMM_4BIT_GENERIC";
        case BNB_GEMM_4BIT_SIMT: return "BNB_GEMM_4BIT_SIMT";
        case BNB_GEMM_4BIT_TENSOR_CORE: return "BNB_GEMM_4BIT_TENSOR_CORE";
        case BNB_GEMM_4BIT_DEQUANTIZE: return "BNB_GEMM_4BIT_DEQUANTIZE";
        default: return "BNB_GEMM_4BIT_AUTO";
    }
}

bool tensor_cores_usable(bnb_dtype dtype, int compute_capability) {
    return BNB_GPU_HAS_MMA_SYNC && dtype != BNB_DTYPE_FLOAT32 && compute_capability >= 80;
}

// Whether the call is one for dequantize + cuBLASLt (given enough workspace): an
// explicit DEQUANTIZE, or AUTO above the fused kernels' row limit. gemv_4bit (a
// codebook instead of a quant type) has no workspace.
bool wants_dense_gemm(bnb_gemm_4bit_algo algo, bool has_code, bnb_dtype dtype, int64_t M, int64_t N, int64_t K,
                      const DeviceInfo& info) {
    if (has_code || K == 0 || !dense_gemm_available()) return false;
    if (algo == BNB_GEMM_4BIT_DEQUANTIZE) return true;
    return algo == BNB_GEMM_4BIT_AUTO &&
           M > tuning::fused_max_rows(tensor_cores_usable(dtype, info.compute_capability), N, K, info.sm_count);
}

// The fused kernels: `algo` as given, AUTO resolved by the tuning table.
bnb_status run_fused(const Gemm4bitArgs& args, const DeviceInfo& info) {
    const GemmParams params{args.A,
                            args.B,
                            args.absmax,
                            args.absmax_8bit,
                            args.absmax_code,
                            args.absmax_offset,
                            args.bias,
                            args.out,
                            args.code,
                            args.M,
                            args.N,
                            args.K,
                            log2_exact(args.blocksize),
                            codebook16(args.quant_type)};
    // The fused kernels read W and A in aligned 32-element chunks.
    const bool chunked = args.K % kChunk == 0 && args.K > 0 && is_aligned(args.A, 16) && is_aligned(args.B, 16);
    const bool simt_fits = chunked && args.M <= tuning::kSimtMaxRows;
    const bool tensor_cores = tensor_cores_usable(args.dtype, info.compute_capability);
    const bool mma_fits = chunked && args.M <= tuning::kMmaMaxRows && tensor_cores;
    bnb_gemm_4bit_algo algo = args.algo;
    if (algo == BNB_GEMM_4BIT_AUTO) {
        if (simt_fits && (tuning::prefer_simt(tensor_cores) || !mma_fits)) {
            algo = BNB_GEMM_4BIT_SIMT;
        } else if (mma_fits) {
            algo = BNB_GEMM_4BIT_TENSOR_CORE;
        } else {
            algo = BNB_GEMM_4BIT_GENERIC;
        }
    }
    if ((algo == BNB_GEMM_4BIT_SIMT && !simt_fits) || (algo == BNB_GEMM_4BIT_TENSOR_CORE && !mma_fits)) {
        return fail(BNB_STATUS_UNSUPPORTED,
                    std::string("algo: ") + algo_name(algo) + " needs K % 32 == 0, 16-byte aligned A and B, M <= " +
                        std::to_string(algo == BNB_GEMM_4BIT_SIMT ? tuning::kSimtMaxRows : tuning::kMmaMaxRows) +
                        (algo == BNB_GEMM_4BIT_TENSOR_CORE ? ", fp16/bf16 and compute capability 8.0+" : "") +
                        "; got M=" + std::to_string(args.M) + ", K=" + std::to_string(args.K));
    }
    const cudaStream_t stream = to_stream(args.stream);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        with_nested(args.absmax_8bit != nullptr, [&](auto nested) {
            constexpr bool kNested = decltype(nested)::value;
            if (algo == BNB_GEMM_4BIT_SIMT) {
                launch_simt<T, kNested>(params, stream);
            } else if (algo == BNB_GEMM_4BIT_TENSOR_CORE) {
                if constexpr (!std::is_same_v<T, float>) launch_mma<T, kNested>(params, stream, info.sm_count);
            } else {
                launch_generic<T, kNested>(params, stream, info.sm_count);
            }
            return 0;
        });
        return check_launch("gemm_4bit");
    });
}

}  // namespace

bnb_status gemm_4bit(const Gemm4bitArgs& args) {
    const DeviceGuard guard(args.device.index);
    const DeviceInfo info = device_info(args.device.index);
    const bool dense = wants_dense_gemm(args.algo, args.code != nullptr, args.dtype, args.M, args.N, args.K, info);
    if (args.algo == BNB_GEMM_4BIT_DEQUANTIZE && !dense) {
        return fail(BNB_STATUS_UNSUPPORTED,
                    dense_gemm_available()
                        ? "algo: BNB_GEMM_4BIT_DEQUANTIZE needs K > 0, got K=" + std::to_string(args.K)
                        : std::string("algo: BNB_GEMM_4BIT_DEQUANTIZE needs cuBLASLt, which the ") +
                              BNB_GPU_BACKEND_NAME + " backend cannot use here (not built in, or not loadable)");
    }
    if constexpr (BNB_GPU_HAS_CUBLASLT) {
        if (dense) {
            const DenseGemmWorkspace layout =
                dense_gemm_workspace(args.dtype, args.N, args.K, args.blocksize, args.nested(), info.compute_capability);
            const bool explicit_algo = args.algo == BNB_GEMM_4BIT_DEQUANTIZE;
            if (args.workspace_bytes >= layout.total) {
                const DenseGemmOutcome outcome = dequantize_and_gemm(args, layout);
                if (outcome.served) return outcome.status;
                if (explicit_algo) {
                    return fail(BNB_STATUS_UNSUPPORTED, std::string("algo: BNB_GEMM_4BIT_DEQUANTIZE: ") + outcome.why_not);
                }
            } else if (explicit_algo) {
                return fail(BNB_STATUS_INVALID_ARGUMENT,
                            "workspace_bytes must be >= " + std::to_string(layout.total) +
                                " for BNB_GEMM_4BIT_DEQUANTIZE (bnb_gemm_4bit_workspace_size), got " +
                                std::to_string(args.workspace_bytes));
            }
        }
    }
    return run_fused(args, info);
}

bnb_status gemm_4bit_fused_max_rows(const Gemm4bitShape& shape, int64_t* max_rows) {
    const DeviceInfo info = device_info(shape.device.index);
    *max_rows = tuning::fused_max_rows(tensor_cores_usable(shape.dtype, info.compute_capability), shape.N, shape.K,
                                       info.sm_count);
    return BNB_STATUS_SUCCESS;
}

bnb_status gemm_4bit_workspace_size(const Gemm4bitShape& shape, int64_t* bytes) {
    const DeviceInfo info = device_info(shape.device.index);
    *bytes = 0;
    if (wants_dense_gemm(shape.algo, false, shape.dtype, shape.M, shape.N, shape.K, info)) {
        *bytes = dense_gemm_workspace(shape.dtype, shape.N, shape.K, shape.blocksize, shape.nested,
                                      info.compute_capability)
                     .total;
    }
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cuda
