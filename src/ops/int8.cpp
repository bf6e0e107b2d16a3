// bnb_int8_* (LLM.int8(), formats.md section 5) and the backend's int8_scaled_mm
// workspace query.
#include "int8.h"

#include <cmath>
#include <string>

#include "../entry.h"

namespace bnb {
namespace {

bnb_status check_bias(const void* bias, bnb_dtype bias_dtype) {
    return bias == nullptr ? BNB_STATUS_SUCCESS : check_float_dtype(bias_dtype, "bias_dtype");
}

}  // namespace

bnb_status check_arguments(const Int8QuantizeArgs& args, Op) {
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_matrix_shape(args.rows, args.cols));
    // NaN fails both comparisons; an infinite threshold would mark nothing and is
    // as well expressed by 0.
    if (!(args.threshold >= 0.0f) || std::isinf(args.threshold)) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    "threshold must be non-negative and finite, got " + std::to_string(args.threshold));
    }
    return BNB_STATUS_SUCCESS;
}

bnb_status check_arguments(const Int8DequantizeArgs& args, Op) {
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    return check_matrix_shape(args.rows, args.cols);
}

bnb_status check_arguments(const Int8MatmulArgs& args, Op) { return check_matmul_shape(args.M, args.N, args.K); }

bnb_status check_arguments(const Int8MmDequantArgs& args, Op) {
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_bias(args.bias, args.bias_dtype));
    return check_matrix_shape(args.rows, args.cols);
}

bnb_status check_arguments(const Int8ScaledMmArgs& args, Op) {
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_bias(args.bias, args.bias_dtype));
    BNB_CHECK(check_matmul_shape(args.M, args.N, args.K));
    BNB_CHECK(check_count(args.workspace_bytes, "workspace_bytes"));
    if ((args.outlier_cols == nullptr) != (args.outlier_count == nullptr)) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    std::string(args.outlier_cols == nullptr ? "outlier_cols" : "outlier_count") +
                        " must not be NULL when " +
                        (args.outlier_cols == nullptr ? "outlier_count" : "outlier_cols") + " is given");
    }
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb

using namespace bnb;

extern "C" BNB_API bnb_status bnb_int8_vectorwise_quant(bnb_device device, void* stream, bnb_dtype dtype,
                                                        const void* A, int64_t rows, int64_t cols, float threshold,
                                                        int8_t* out, float* row_stats, int64_t* outlier_cols,
                                                        int64_t* outlier_count) {
    return run_op<Op::int8_vectorwise_quant>({.device = device, .stream = stream, .dtype = dtype, .A = A,
                                              .rows = rows, .cols = cols, .threshold = threshold, .out_row = out,
                                              .row_stats = row_stats, .out_col = nullptr, .col_stats = nullptr,
                                              .outlier_cols = outlier_cols, .outlier_count = outlier_count,
                                              .column_wise = false});
}

extern "C" BNB_API bnb_status bnb_int8_double_quant(bnb_device device, void* stream, bnb_dtype dtype, const void* A,
                                                    int64_t rows, int64_t cols, float threshold, int8_t* out_row,
                                                    int8_t* out_col, float* row_stats, float* col_stats,
                                                    int64_t* outlier_cols, int64_t* outlier_count) {
    return run_op<Op::int8_double_quant>({.device = device, .stream = stream, .dtype = dtype, .A = A, .rows = rows,
                                          .cols = cols, .threshold = threshold, .out_row = out_row,
                                          .row_stats = row_stats, .out_col = out_col, .col_stats = col_stats,
                                          .outlier_cols = outlier_cols, .outlier_count = outlier_count,
                                          .column_wise = true});
}

extern "C" BNB_API bnb_status bnb_int8_vectorwise_dequant(bnb_device device, void* stream, bnb_dtype dtype,
                                                          const int8_t* A, const float* stats, int64_t rows,
                                                          int64_t cols, void* out) {
    return run_op<Op::int8_vectorwise_dequant>({.device = device, .stream = stream, .dtype = dtype, .A = A,
                                                .stats = stats, .rows = rows, .cols = cols, .out = out});
}

extern "C" BNB_API bnb_status bnb_int8_linear_matmul(bnb_device device, void* stream, const int8_t* A, int64_t M,
                                                     int64_t K, const int8_t* B, int64_t N, int32_t* out) {
    return run_op<Op::int8_linear_matmul>(
        {.device = device, .stream = stream, .A = A, .B = B, .M = M, .N = N, .K = K, .out = out});
}

extern "C" BNB_API bnb_status bnb_int8_mm_dequant(bnb_device device, void* stream, const int32_t* A, int64_t rows,
                                                  int64_t cols, const float* row_stats, const float* col_stats,
                                                  bnb_dtype bias_dtype, const void* bias, bnb_dtype dtype,
                                                  void* out) {
    return run_op<Op::int8_mm_dequant>({.device = device, .stream = stream, .A = A, .row_stats = row_stats,
                                        .col_stats = col_stats, .bias_dtype = bias_dtype, .bias = bias,
                                        .rows = rows, .cols = cols, .dtype = dtype, .out = out});
}

extern "C" BNB_API bnb_status bnb_int8_scaled_mm(bnb_device device, void* stream, bnb_dtype dtype, const int8_t* A,
                                                 int64_t M, int64_t K, const int8_t* B, int64_t N,
                                                 const float* row_stats, const float* col_stats,
                                                 bnb_dtype bias_dtype, const void* bias, const void* X,
                                                 const int64_t* outlier_cols, const int64_t* outlier_count,
                                                 void* workspace, int64_t workspace_bytes, void* out) {
    return run_op<Op::int8_scaled_mm>({.device = device, .stream = stream, .dtype = dtype, .A = A, .B = B,
                                       .row_stats = row_stats, .col_stats = col_stats, .bias_dtype = bias_dtype,
                                       .bias = bias, .X = X, .outlier_cols = outlier_cols,
                                       .outlier_count = outlier_count, .M = M, .N = N, .K = K,
                                       .workspace = workspace, .workspace_bytes = workspace_bytes, .out = out});
}

extern "C" BNB_API bnb_status bnb_int8_scaled_mm_workspace_size(bnb_device device, bnb_dtype dtype, int64_t M,
                                                                int64_t N, int64_t K, int outliers,
                                                                int64_t* bytes) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(device, &ops));
    BNB_CHECK(check_op_slot(ops, ops->int8_scaled_mm != nullptr, "int8_scaled_mm_workspace_size"));
    BNB_CHECK(check_float_dtype(dtype, "dtype"));
    BNB_CHECK(check_matmul_shape(M, N, K));
    if (bytes == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "bytes must not be NULL");
    // A backend whose kernels need no scratch memory has no query.
    if (ops->int8_scaled_mm_workspace_size == nullptr) {
        *bytes = 0;
        return BNB_STATUS_SUCCESS;
    }
    return ops->int8_scaled_mm_workspace_size(
        {.device = device, .dtype = dtype, .M = M, .N = N, .K = K, .outliers = outliers != 0}, bytes);
}
