// Dequantize + cuBLASLt (see dequantize_gemm.h). W is dequantized by the backend's
// dequantize_4bit, so its values are those bnb_dequantize_4bit returns; nested
// statistics are de-nested first by denested_scale, as in the fused kernels.
#include "dequantize_gemm.h"

#include "../cublaslt.h"
#include "../cuda_ops.h"
#include "common.cuh"

#if BNB_GPU_HAS_CUBLASLT
#include <algorithm>
#include <memory>
#include <string>
#endif

namespace bnb::cuda {
namespace {

int64_t aligned_size(int64_t bytes) {
    return ceil_div(bytes, kWorkspaceAlignment) * kWorkspaceAlignment;
}

}  // namespace

DenseGemmWorkspace dense_gemm_workspace(bnb_dtype dtype, int64_t N, int64_t K, int64_t blocksize, bool nested,
                                        int compute_capability) {
    DenseGemmWorkspace layout{};
    layout.weight = 0;
    layout.scales = aligned_size(N * K * dtype_size(dtype));
    layout.gemm = layout.scales + (nested ? aligned_size(ceil_div(N * K, blocksize) * 4) : 0);
    layout.gemm_bytes = tuning::dense_gemm_workspace_bytes(compute_capability);
    layout.total = layout.gemm + layout.gemm_bytes;
    return layout;
}

#if BNB_GPU_HAS_CUBLASLT
namespace {

// The loaded API; only called once dequantize_and_gemm has checked that it loaded.
const CublasLt& lt() { return *cublaslt(); }

constexpr int kDenestThreads = 256;

// scales[j] of nested statistics, one block per thread.
__global__ void __launch_bounds__(kDenestThreads)
    denest_scales_kernel(const float* __restrict__ group_absmax, const uint8_t* __restrict__ codes,
                         const float* __restrict__ code_values, const float* __restrict__ offset, int64_t blocks,
                         float* __restrict__ scales) {
    const float shift = __ldg(offset);
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < blocks; j += stride) {
        scales[j] = denested_scale(__ldg(code_values + codes[j]), __ldg(group_absmax + j / formats::kNestedBlocksize),
                                   shift);
    }
}

cudaDataType_t cuda_data_type(bnb_dtype dtype) {
    switch (dtype) {
        case BNB_DTYPE_FLOAT16: return CUDA_R_16F;
        case BNB_DTYPE_BFLOAT16: return CUDA_R_16BF;
        default: return CUDA_R_32F;
    }
}

// The largest power of two up to 256 that divides the address (cuBLASLt's
// heuristics otherwise assume 256-byte aligned operands).
uint32_t alignment_of(const void* pointer) {
    uint32_t alignment = 256;
    while (alignment > 1 && !is_aligned(pointer, alignment)) alignment /= 2;
    return alignment;
}

struct MatmulDescDeleter {
    void operator()(cublasLtMatmulDescOpaque_t* desc) const { lt().desc_destroy(desc); }
};
struct LayoutDeleter {
    void operator()(cublasLtMatrixLayoutOpaque_t* layout) const { lt().layout_destroy(layout); }
};
struct PreferenceDeleter {
    void operator()(cublasLtMatmulPreferenceOpaque_t* preference) const { lt().preference_destroy(preference); }
};
using MatmulDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, MatmulDescDeleter>;
using Layout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LayoutDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, PreferenceDeleter>;

Layout column_major(cudaDataType_t type, int64_t rows, int64_t cols) {
    cublasLtMatrixLayout_t layout = nullptr;
    if (lt().layout_create(&layout, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), rows) !=
        CUBLAS_STATUS_SUCCESS) {
        return nullptr;
    }
    return Layout(layout);
}

template <typename Value>
bool set(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const Value& value) {
    return lt().desc_set_attribute(desc, attribute, &value, sizeof value) == CUBLAS_STATUS_SUCCESS;
}

template <typename Value>
bool set(cublasLtMatmulPreference_t preference, cublasLtMatmulPreferenceAttributes_t attribute, const Value& value) {
    return lt().preference_set_attribute(preference, attribute, &value, sizeof value) == CUBLAS_STATUS_SUCCESS;
}

// out [M, N] row-major is D [N, M] column-major: D = op(W) * A' with W read as the
// column-major [K, N] matrix it is, transposed, and A as column-major [K, M].
// float32 accumulation; float32 inputs stay float32 (no TF32), as torch's default.
struct Matmul {
    MatmulDesc desc;
    Layout weight;
    Layout activations;
    Layout output;
    cublasLtMatmulAlgo_t algo;
};

// Fills `matmul`; nullptr, or why cuBLASLt cannot serve the call.
const char* describe(const Gemm4bitArgs& args, const void* weight, cublasLtHandle_t handle, int64_t gemm_bytes,
                     Matmul& matmul) {
    const cudaDataType_t type = cuda_data_type(args.dtype);
    cublasLtMatmulDesc_t desc = nullptr;
    if (lt().desc_create(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) {
        return "cublasLtMatmulDescCreate failed";
    }
    matmul.desc.reset(desc);
    const bool described = set(desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T) &&
                           set(desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N) &&
                           (args.bias == nullptr || (set(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS) &&
                                                     set(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, args.bias)));
    matmul.weight = column_major(type, args.K, args.N);
    matmul.activations = column_major(type, args.K, args.M);
    matmul.output = column_major(type, args.N, args.M);
    if (!described || !matmul.weight || !matmul.activations || !matmul.output) return "cuBLASLt rejected the shape";

    cublasLtMatmulPreference_t preference_handle = nullptr;
    if (lt().preference_create(&preference_handle) != CUBLAS_STATUS_SUCCESS) {
        return "cublasLtMatmulPreferenceCreate failed";
    }
    const Preference preference(preference_handle);
    const uint64_t max_workspace = static_cast<uint64_t>(gemm_bytes);
    const bool preferred =
        set(preference_handle, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, max_workspace) &&
        set(preference_handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(weight)) &&
        set(preference_handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(args.A)) &&
        set(preference_handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(args.out)) &&
        set(preference_handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(args.out));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    if (!preferred ||
        lt().algo_get_heuristic(handle, desc, matmul.weight.get(), matmul.activations.get(),
                                       matmul.output.get(), matmul.output.get(), preference_handle, 1, &result,
                                       &found) != CUBLAS_STATUS_SUCCESS ||
        found == 0) {
        return "cuBLASLt has no algorithm for this shape, dtype and alignment";
    }
    matmul.algo = result.algo;
    return nullptr;
}

}  // namespace

bool dense_gemm_available() { return cublaslt() != nullptr; }

DenseGemmOutcome dequantize_and_gemm(const Gemm4bitArgs& args, const DenseGemmWorkspace& layout) {
    // The BIAS epilogue reads the bias with vector loads.
    if (args.bias != nullptr && !is_aligned(args.bias, 16)) {
        return {false, BNB_STATUS_SUCCESS, "the bias epilogue needs a 16-byte aligned bias"};
    }
    if (!dense_gemm_available()) return {false, BNB_STATUS_SUCCESS, cublaslt_why_not()};
    bnb_status status = BNB_STATUS_SUCCESS;
    const cublasLtHandle_t handle = cublaslt_handle(args.device.index, "gemm_4bit", &status);
    if (handle == nullptr) return {true, status, nullptr};
    char* workspace = static_cast<char*>(args.workspace);
    void* weight = workspace + layout.weight;
    void* gemm_workspace = workspace + layout.gemm;
    Matmul matmul{};
    if (const char* why_not = describe(args, weight, handle, layout.gemm_bytes, matmul)) {
        return {false, BNB_STATUS_SUCCESS, why_not};
    }

    const cudaStream_t stream = to_stream(args.stream);
    const float* scales = args.absmax;
    if (args.nested()) {
        float* denested = reinterpret_cast<float*>(workspace + layout.scales);
        const int64_t blocks = args.blocks();
        const int64_t grid = std::min<int64_t>(ceil_div(blocks, kDenestThreads),
                                               int64_t{device_info(args.device.index).sm_count} * 8);
        denest_scales_kernel<<<grid, kDenestThreads, 0, stream>>>(args.absmax, args.absmax_8bit, args.absmax_code,
                                                                   args.absmax_offset, blocks, denested);
        status = check_launch("gemm_4bit");
        if (status != BNB_STATUS_SUCCESS) return {true, status, nullptr};
        scales = denested;
    }
    status = dequantize_4bit({.device = args.device, .stream = args.stream, .quant_type = args.quant_type,
                              .dtype = args.dtype, .packed = args.B, .absmax = scales, .n = args.N * args.K,
                              .blocksize = args.blocksize, .out = weight});
    if (status != BNB_STATUS_SUCCESS) return {true, status, nullptr};

    const float alpha = 1.0f;
    const float beta = 0.0f;
    const cublasStatus_t multiplied =
        lt().matmul(handle, matmul.desc.get(), &alpha, weight, matmul.weight.get(), args.A,
                       matmul.activations.get(), &beta, args.out, matmul.output.get(), args.out, matmul.output.get(),
                       &matmul.algo, gemm_workspace, static_cast<size_t>(layout.gemm_bytes), stream);
    if (multiplied != CUBLAS_STATUS_SUCCESS) {
        return {true,
                fail(BNB_STATUS_BACKEND_ERROR, std::string("gemm_4bit: cublasLtMatmul failed: ") +
                                                   lt().status_string(multiplied)),
                nullptr};
    }
    return {true, BNB_STATUS_SUCCESS, nullptr};
}
#else
// vendors/hip.h: no cuBLASLt in this build, so the fused kernels serve every M.
bool dense_gemm_available() { return false; }

DenseGemmOutcome dequantize_and_gemm(const Gemm4bitArgs&, const DenseGemmWorkspace&) {
    return {false, BNB_STATUS_SUCCESS, "this build has no cuBLASLt"};
}
#endif

}  // namespace bnb::cuda
