// The int8 product slots (int8_linear_matmul, int8_scaled_mm and its workspace
// query) and the choice of kernel for each call:
//   stream    M <= kStreamMaxRows, K % 16 == 0, 16-byte aligned A and B, sm_80+:
//             B read once near copy bandwidth, the epilogue fused (one launch)
//   cuBLASLt  larger M with K % 4 == 0: its int8 GEMM into int32 (out itself for
//             int8_linear_matmul, the workspace for int8_scaled_mm, then the
//             epilogue kernel with the outlier columns: two launches)
//   stream    larger M where cuBLASLt cannot serve (or too little workspace)
//   generic   anything else: odd K, unaligned operands, HIP, GPUs before sm_80
// AUTO follows tuning_sm90.h on every GPU (the only architecture measured).
#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "../cublaslt.h"
#include "../cuda_ops.h"
#include "gemm_kernels.cuh"

namespace bnb::cuda {
namespace {

namespace tune = int8_tuning;

int64_t aligned_size(int64_t bytes) { return ceil_div(bytes, BNB_WORKSPACE_ALIGNMENT) * BNB_WORKSPACE_ALIGNMENT; }

struct Product {
    int device;
    cudaStream_t stream;
    const int8_t* A;
    const int8_t* B;
    int64_t M;
    int64_t N;
    int64_t K;
};

bool stream_usable(const Product& p, int compute_capability) {
    return BNB_GPU_HAS_MMA_SYNC && compute_capability >= 80 && p.K % 16 == 0 && is_aligned(p.A, 16) &&
           is_aligned(p.B, 16);
}

bool cublaslt_shape(int64_t K) {
#if BNB_GPU_HAS_CUBLASLT
    // cuBLASLt's int8 kernels need leading dimensions that are multiples of 4.
    return K % 4 == 0 && cublaslt() != nullptr;
#else
    (void)K;
    return false;
#endif
}

bool wants_cublaslt(int64_t M, int64_t K) { return M > tune::kStreamMaxRows && cublaslt_shape(K); }

// Where int8_scaled_mm's cuBLASLt path keeps the int32 product, cuBLASLt's own
// workspace and, with outliers, the gather kernel's dense copies (float32 x_dense
// [M, kOutlierChunk], w_dense [kOutlierChunk, N]). A workspace without room for
// the dense copies still serves (the epilogue then gathers by itself).
struct ScaledWorkspace {
    int64_t product_bytes;
    int64_t gemm_bytes;
    int64_t x_dense_bytes;
    int64_t w_dense_bytes;
    int64_t required() const { return product_bytes + gemm_bytes; }
    int64_t total() const { return required() + x_dense_bytes + w_dense_bytes; }
};

ScaledWorkspace scaled_workspace(int64_t M, int64_t N, bool outliers, int compute_capability) {
    const int64_t chunk = outliers ? tune::kOutlierChunk : 0;
    return {aligned_size(M * N * 4), tune::cublaslt_workspace_bytes(compute_capability), aligned_size(M * chunk * 4),
            aligned_size(chunk * N * 4)};
}

template <typename Out>
void launch_stream(const Product& p, const ScaledEpilogue& epilogue, Out* out) {
#if BNB_GPU_HAS_MMA_SYNC
    const auto launch = [&](auto kernel, int tiles) {
        const dim3 grid(static_cast<unsigned>(ceil_div(p.N, 16)), static_cast<unsigned>(ceil_div(p.M, 8 * tiles)));
        kernel<<<grid, tune::kStreamWarps * kWarpSize, 0, p.stream>>>(p.A, p.B, p.M, p.N, p.K, epilogue, out);
    };
    if (p.M <= 8) {
        launch(int8_stream_kernel<1, Out>, 1);
    } else if (p.M <= 16) {
        launch(int8_stream_kernel<2, Out>, 2);
    } else if (p.M <= 32) {
        launch(int8_stream_kernel<4, Out>, 4);
    } else {
        launch(int8_stream_kernel<tune::kStreamMaxTiles, Out>, tune::kStreamMaxTiles);
    }
#else
    (void)p, (void)epilogue, (void)out;
#endif
}

template <typename Out>
void launch_generic(const Product& p, const ScaledEpilogue& epilogue, Out* out) {
    const dim3 grid(static_cast<unsigned>(ceil_div(p.N, tune::kGenericThreads)),
                    static_cast<unsigned>(std::min<int64_t>(p.M, 65535)));
    int8_generic_kernel<Out><<<grid, tune::kGenericThreads, 0, p.stream>>>(p.A, p.B, p.M, p.N, p.K, epilogue, out);
}

// Stream where it applies (any M: beyond kStreamMaxRows it re-reads B per 64 rows
// of A), else generic.
template <typename Out>
void launch_own(const Product& p, const ScaledEpilogue& epilogue, Out* out, int compute_capability) {
    if (stream_usable(p, compute_capability) && ceil_div(p.M, 8 * tune::kStreamMaxTiles) <= 65535) {
        launch_stream(p, epilogue, out);
    } else {
        launch_generic(p, epilogue, out);
    }
}

#if BNB_GPU_HAS_CUBLASLT
// Algorithms found by cuBLASLt's heuristic, per device, shape and alignment: the
// query costs more host time than a small GEMM runs.
using AlgoKey = std::tuple<int, int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t, int64_t>;

uint32_t alignment_of(const void* pointer) {
    uint32_t alignment = 256;
    while (alignment > 1 && !is_aligned(pointer, alignment)) alignment /= 2;
    return alignment;
}

struct LtObjects {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t b = nullptr;
    cublasLtMatrixLayout_t a = nullptr;
    cublasLtMatrixLayout_t d = nullptr;
    cublasLtMatmulPreference_t preference = nullptr;
    ~LtObjects() {
        const CublasLt& lt = *cublaslt();
        if (preference != nullptr) lt.preference_destroy(preference);
        if (d != nullptr) lt.layout_destroy(d);
        if (a != nullptr) lt.layout_destroy(a);
        if (b != nullptr) lt.layout_destroy(b);
        if (desc != nullptr) lt.desc_destroy(desc);
    }
};

template <typename Value>
bool set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const Value& value) {
    return cublaslt()->desc_set_attribute(desc, attribute, &value, sizeof value) == CUBLAS_STATUS_SUCCESS;
}

template <typename Value>
bool set_preference(cublasLtMatmulPreference_t preference, cublasLtMatmulPreferenceAttributes_t attribute,
                    const Value& value) {
    return cublaslt()->preference_set_attribute(preference, attribute, &value, sizeof value) == CUBLAS_STATUS_SUCCESS;
}

struct LtOutcome {
    bool served;  // false: nothing launched, no error set
    bnb_status status;
};

// out [M, N] row-major int32 = D [N, M] column-major = B^T A with B read as the
// column-major [K, N] matrix it is (the TN form cuBLASLt's int8 kernels take).
LtOutcome cublaslt_int8(const Product& p, int32_t* out, void* gemm_workspace, int64_t gemm_bytes, const char* op) {
    const CublasLt& lt = *cublaslt();
    bnb_status status = BNB_STATUS_SUCCESS;
    const cublasLtHandle_t handle = cublaslt_handle(p.device, op, &status);
    if (handle == nullptr) return {true, status};
    LtObjects objects;
    if (lt.desc_create(&objects.desc, CUBLAS_COMPUTE_32I, CUDA_R_32I) != CUBLAS_STATUS_SUCCESS ||
        !set_desc(objects.desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T) ||
        !set_desc(objects.desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N) ||
        lt.layout_create(&objects.b, CUDA_R_8I, static_cast<uint64_t>(p.K), static_cast<uint64_t>(p.N), p.K) !=
            CUBLAS_STATUS_SUCCESS ||
        lt.layout_create(&objects.a, CUDA_R_8I, static_cast<uint64_t>(p.K), static_cast<uint64_t>(p.M), p.K) !=
            CUBLAS_STATUS_SUCCESS ||
        lt.layout_create(&objects.d, CUDA_R_32I, static_cast<uint64_t>(p.N), static_cast<uint64_t>(p.M), p.N) !=
            CUBLAS_STATUS_SUCCESS) {
        return {false, BNB_STATUS_SUCCESS};
    }
    const AlgoKey key{p.device, p.M, p.N, p.K, alignment_of(p.A), alignment_of(p.B), alignment_of(out), gemm_bytes};
    static std::mutex mutex;
    static std::map<AlgoKey, cublasLtMatmulAlgo_t> found_algos;
    cublasLtMatmulAlgo_t algo{};
    bool known = false;
    {
        const std::lock_guard<std::mutex> lock(mutex);
        const auto it = found_algos.find(key);
        if (it != found_algos.end()) {
            algo = it->second;
            known = true;
        }
    }
    if (!known) {
        cublasLtMatmulHeuristicResult_t result{};
        int found = 0;
        if (lt.preference_create(&objects.preference) != CUBLAS_STATUS_SUCCESS ||
            !set_preference(objects.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, static_cast<uint64_t>(gemm_bytes)) ||
            !set_preference(objects.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(p.B)) ||
            !set_preference(objects.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(p.A)) ||
            !set_preference(objects.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(out)) ||
            !set_preference(objects.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(out)) ||
            lt.algo_get_heuristic(handle, objects.desc, objects.b, objects.a, objects.d, objects.d,
                                  objects.preference, 1, &result, &found) != CUBLAS_STATUS_SUCCESS ||
            found == 0) {
            return {false, BNB_STATUS_SUCCESS};
        }
        algo = result.algo;
        const std::lock_guard<std::mutex> lock(mutex);
        found_algos.emplace(key, algo);
    }
    const int32_t alpha = 1;
    const int32_t beta = 0;
    const cublasStatus_t multiplied =
        lt.matmul(handle, objects.desc, &alpha, p.B, objects.b, p.A, objects.a, &beta, out, objects.d, out, objects.d,
                  &algo, gemm_workspace, static_cast<size_t>(gemm_bytes), p.stream);
    // Some shapes pass the heuristic and are refused at the call: the own kernels serve them.
    if (multiplied == CUBLAS_STATUS_NOT_SUPPORTED) return {false, BNB_STATUS_SUCCESS};
    if (multiplied != CUBLAS_STATUS_SUCCESS) {
        return {true, fail(BNB_STATUS_BACKEND_ERROR,
                           std::string(op) + ": cublasLtMatmul failed: " + lt.status_string(multiplied))};
    }
    return {true, BNB_STATUS_SUCCESS};
}
#endif

}  // namespace

bnb_status int8_linear_matmul(const Int8MatmulArgs& args) {
    const DeviceGuard guard(args.device.index);
    const int compute_capability = device_info(args.device.index).compute_capability;
    const Product p{args.device.index, to_stream(args.stream), args.A, args.B, args.M, args.N, args.K};
    const ScaledEpilogue none{};
#if BNB_GPU_HAS_CUBLASLT
    // Without a workspace, cuBLASLt picks kernels that need none.
    if (wants_cublaslt(args.M, args.K) && args.K > 0) {
        const LtOutcome outcome = cublaslt_int8(p, args.out, nullptr, 0, "int8_linear_matmul");
        if (outcome.served) return outcome.status;
    }
#endif
    launch_own(p, none, args.out, compute_capability);
    return check_launch("int8_linear_matmul");
}

bnb_status int8_scaled_mm(const Int8ScaledMmArgs& args) {
    const DeviceGuard guard(args.device.index);
    const int compute_capability = device_info(args.device.index).compute_capability;
    const Product p{args.device.index, to_stream(args.stream), args.A, args.B, args.M, args.N, args.K};
    const ScaledEpilogue epilogue{args.row_stats, args.col_stats,    args.bias,         args.bias_dtype,
                                  args.X,         args.outlier_cols, args.outlier_count};
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* out = static_cast<T*>(args.out);
#if BNB_GPU_HAS_CUBLASLT
        const ScaledWorkspace layout = scaled_workspace(args.M, args.N, args.outliers(), compute_capability);
        if (wants_cublaslt(args.M, args.K) && args.K > 0 && args.workspace_bytes >= layout.required()) {
            auto* product = static_cast<int32_t*>(args.workspace);
            void* gemm_workspace = static_cast<char*>(args.workspace) + layout.product_bytes;
            const LtOutcome outcome = cublaslt_int8(p, product, gemm_workspace, layout.gemm_bytes, "int8_scaled_mm");
            if (outcome.served && outcome.status != BNB_STATUS_SUCCESS) return outcome.status;
            if (outcome.served) {
                const int64_t strips = ceil_div(args.N, tune::kEpilogueCols);
                const int64_t row_tiles = ceil_div(args.M, tune::kEpilogueRows);
                const int64_t tiles_per_block =
                    args.outliers() ? tune::epilogue_row_tiles_per_block(strips * row_tiles, device_info(args.device.index).sm_count)
                                    : 1;
                const dim3 grid(static_cast<unsigned>(strips),
                                static_cast<unsigned>(std::min<int64_t>(ceil_div(row_tiles, tiles_per_block), 65535)));
                const bool vector_ok = args.N % 4 == 0;  // the workspace is 256-byte aligned
                if (args.outliers()) {
                    float* x_dense = nullptr;
                    float* w_dense = nullptr;
                    if (args.workspace_bytes >= layout.total()) {
                        x_dense = reinterpret_cast<float*>(static_cast<char*>(gemm_workspace) + layout.gemm_bytes);
                        w_dense = reinterpret_cast<float*>(reinterpret_cast<char*>(x_dense) + layout.x_dense_bytes);
                        const int64_t elements = (args.M + args.N) * tune::kOutlierChunk;
                        const auto blocks = static_cast<unsigned>(std::min<int64_t>(
                            ceil_div(elements, tune::kEpilogueThreads), int64_t{device_info(args.device.index).sm_count} * 8));
                        int8_gather_outliers_kernel<T><<<blocks, tune::kEpilogueThreads, 0, p.stream>>>(
                            args.B, args.M, args.N, args.K, epilogue, x_dense, w_dense);
                    }
                    int8_epilogue_kernel<T, true><<<grid, tune::kEpilogueThreads, 0, p.stream>>>(
                        product, args.B, args.M, args.N, args.K, epilogue, vector_ok, x_dense, w_dense, out);
                } else {
                    int8_epilogue_kernel<T, false><<<grid, tune::kEpilogueThreads, 0, p.stream>>>(
                        product, args.B, args.M, args.N, args.K, epilogue, vector_ok, nullptr, nullptr, out);
                }
                return check_launch("int8_scaled_mm");
            }
        }
#endif
        launch_own(p, epilogue, out, compute_capability);
        return check_launch("int8_scaled_mm");
    });
}

bnb_status int8_scaled_mm_workspace_size(const Int8ScaledMmShape& shape, int64_t* bytes) {
    const int compute_capability = device_info(shape.device.index).compute_capability;
    *bytes = wants_cublaslt(shape.M, shape.K) && shape.K > 0 ? scaled_workspace(shape.M, shape.N, shape.outliers, compute_capability).total()
                                                              : 0;
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cuda
