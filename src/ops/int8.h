// LLM.int8() (formats.md section 5): the arguments of the int8 ops, their
// buffers and their checks, and the shape that the backend's workspace query takes.
//
// Outlier columns are reported as ascending int64 indices plus their count, both
// in the device's memory, so that a GPU caller can hand them on to
// int8_scaled_mm without waiting for the count on the host.
#pragma once

#include <cstdint>

#include "../buffers.h"

namespace bnb {

// int8_vectorwise_quant and int8_double_quant: row-wise (and, for double_quant,
// column-wise) absmax quantization of A [rows, cols].
struct Int8QuantizeArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;          // of A: fp32, fp16 or bf16
    const void* A;            // [rows, cols]
    int64_t rows;
    int64_t cols;
    float threshold;          // 0: no outlier handling
    int8_t* out_row;          // [rows, cols]
    float* row_stats;         // [rows]
    int8_t* out_col;          // [rows, cols]: double_quant only, else null
    float* col_stats;         // [cols]: double_quant only, else null
    int64_t* outlier_cols;    // [cols] capacity when threshold > 0, else may be null
    int64_t* outlier_count;   // 1 entry when threshold > 0, else may be null
    bool column_wise;         // double_quant: out_col and col_stats are written

    bool outliers() const { return threshold > 0.0f; }
};

struct Int8DequantizeArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;          // of out
    const int8_t* A;          // [rows, cols]
    const float* stats;       // [rows]
    int64_t rows;
    int64_t cols;
    void* out;                // [rows, cols]
};

// out[M, N] = A[M, K] @ B[N, K]^T exactly, in int32.
struct Int8MatmulArgs {
    bnb_device device;
    void* stream;
    const int8_t* A;
    const int8_t* B;
    int64_t M;
    int64_t N;
    int64_t K;
    int32_t* out;
};

// out[r, c] = A[r, c] * row_stats[r] * col_stats[c] / 127^2 (+ bias[c]) in `dtype`.
struct Int8MmDequantArgs {
    bnb_device device;
    void* stream;
    const int32_t* A;         // [rows, cols]
    const float* row_stats;   // [rows]
    const float* col_stats;   // [cols]
    bnb_dtype bias_dtype;     // of bias (ignored when bias is null)
    const void* bias;         // [cols] or null
    int64_t rows;
    int64_t cols;
    bnb_dtype dtype;          // of out
    void* out;                // [rows, cols]
};

// The LLM.int8() linear: int8_mm_dequant(A @ B^T) with bias, plus, when
// outlier_cols is given, the outlier columns' product in 16/32-bit:
//   out += X[:, cols] @ dtype(B[:, cols] * col_stats / 127)^T
struct Int8ScaledMmArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;                // of out and X
    const int8_t* A;                // [M, K], outlier columns zeroed
    const int8_t* B;                // [N, K]
    const float* row_stats;         // [M]
    const float* col_stats;         // [N]
    bnb_dtype bias_dtype;
    const void* bias;               // [N] or null
    const void* X;                  // [M, K] original activations, or null (no outliers)
    const int64_t* outlier_cols;    // [K] capacity, or null
    const int64_t* outlier_count;   // 1 entry (the used prefix of outlier_cols), or null
    int64_t M;
    int64_t N;
    int64_t K;
    void* workspace;
    int64_t workspace_bytes;
    void* out;                      // [M, N]

    bool outliers() const { return outlier_cols != nullptr; }
};

// What the backend's workspace query needs to know of an int8_scaled_mm call.
struct Int8ScaledMmShape {
    bnb_device device;
    bnb_dtype dtype;
    int64_t M;
    int64_t N;
    int64_t K;
    bool outliers;
};

inline Buffers buffers(const Int8QuantizeArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    const int64_t elements = a.rows * a.cols;
    return {
        {"A", a.A, elements * element, element, Access::kRead},
        {"out_row", a.out_row, elements, 1, Access::kWrite},
        {"row_stats", a.row_stats, a.rows * 4, 4, Access::kWrite},
        {"out_col", a.out_col, a.column_wise ? elements : 0, 1, Access::kWrite},
        {"col_stats", a.col_stats, a.column_wise ? a.cols * 4 : 0, 4, Access::kWrite},
        {"outlier_cols", a.outlier_cols, a.outliers() ? a.cols * 8 : 0, 8, Access::kWrite},
        {"outlier_count", a.outlier_count, a.outliers() ? 8 : 0, 8, Access::kWrite},
    };
}

inline Buffers buffers(const Int8DequantizeArgs& a) {
    const int64_t elements = a.rows * a.cols;
    const int64_t element = dtype_size(a.dtype);
    return {
        {"A", a.A, elements, 1, Access::kRead},
        {"stats", a.stats, a.rows * 4, 4, Access::kRead},
        {"out", a.out, elements * element, element, Access::kWrite},
    };
}

inline Buffers buffers(const Int8MatmulArgs& a) {
    return {
        {"A", a.A, a.M * a.K, 1, Access::kRead},
        {"B", a.B, a.N * a.K, 1, Access::kRead},
        {"out", a.out, a.M * a.N * 4, 4, Access::kWrite},
    };
}

inline Buffers buffers(const Int8MmDequantArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    const int64_t bias_element = dtype_size(a.bias_dtype);
    return {
        {"A", a.A, a.rows * a.cols * 4, 4, Access::kRead},
        {"row_stats", a.row_stats, a.rows * 4, 4, Access::kRead},
        {"col_stats", a.col_stats, a.cols * 4, 4, Access::kRead},
        {"bias", a.bias, a.bias != nullptr ? a.cols * bias_element : 0, bias_element, Access::kRead},
        {"out", a.out, a.rows * a.cols * element, element, Access::kWrite},
    };
}

inline constexpr int64_t kInt8WorkspaceAlignment = BNB_WORKSPACE_ALIGNMENT;

inline Buffers buffers(const Int8ScaledMmArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    const int64_t bias_element = dtype_size(a.bias_dtype);
    return {
        {"A", a.A, a.M * a.K, 1, Access::kRead},
        {"B", a.B, a.N * a.K, 1, Access::kRead},
        {"row_stats", a.row_stats, a.M * 4, 4, Access::kRead},
        {"col_stats", a.col_stats, a.N * 4, 4, Access::kRead},
        {"bias", a.bias, a.bias != nullptr ? a.N * bias_element : 0, bias_element, Access::kRead},
        {"X", a.X, a.outliers() ? a.M * a.K * element : 0, element, Access::kRead},
        {"outlier_cols", a.outlier_cols, a.outliers() ? a.K * 8 : 0, 8, Access::kRead},
        {"outlier_count", a.outlier_count, a.outliers() ? 8 : 0, 8, Access::kRead},
        {"workspace", a.workspace, a.workspace_bytes, kInt8WorkspaceAlignment, Access::kWrite},
        {"out", a.out, a.M * a.N * element, element, Access::kWrite},
    };
}

inline bool is_empty(const Int8QuantizeArgs& a) { return a.rows == 0 || a.cols == 0; }
inline bool is_empty(const Int8DequantizeArgs& a) { return a.rows == 0 || a.cols == 0; }
inline bool is_empty(const Int8MatmulArgs& a) { return a.M == 0 || a.N == 0; }
inline bool is_empty(const Int8MmDequantArgs& a) { return a.rows == 0 || a.cols == 0; }
inline bool is_empty(const Int8ScaledMmArgs& a) { return a.M == 0 || a.N == 0; }

bnb_status check_arguments(const Int8QuantizeArgs& args, Op op);
bnb_status check_arguments(const Int8DequantizeArgs& args, Op op);
bnb_status check_arguments(const Int8MatmulArgs& args, Op op);
bnb_status check_arguments(const Int8MmDequantArgs& args, Op op);
bnb_status check_arguments(const Int8ScaledMmArgs& args, Op op);

}  // namespace bnb
