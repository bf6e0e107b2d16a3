// Torch glue of the LLM.int8() ops (ops.md section 1): tensor checks, output
// allocation, one C ABI call. Tensors with more than two dimensions are viewed as
// [rows, A.shape[-1]], as the pure-torch kernels (backends/torch/int8.py) view them.
//
// Outlier columns come back from the library in device memory, as a capacity-`cols`
// list and a count; upstream's quantization ops return the used prefix, so there the
// host waits for the count. int8_linear (this package's op) hands the list and count
// straight on to bnb_int8_scaled_mm, the path Linear8bitLt's inference forward takes,
// and so never waits. int8_mixed_scaled_mm is the same fused call for a given list.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "../glue.h"

namespace bnb::glue {
namespace {

int64_t rows_of(const at::Tensor& A) {
    int64_t rows = 1;
    for (int64_t d = 0; d + 1 < A.dim(); ++d) rows *= A.size(d);
    return rows;
}

std::vector<int64_t> product_shape(const at::Tensor& A, int64_t N) {
    std::vector<int64_t> shape(A.sizes().begin(), A.sizes().end() - 1);
    shape.push_back(N);
    return shape;
}

void check_float_input(const at::Tensor& A, const char* op) {
    BNB_CHECK_VALUE(is_float_dtype(A.scalar_type()), op, ": A must be float16, bfloat16 or float32, got ",
                    A.scalar_type());
    BNB_CHECK_VALUE(A.dim() >= 1, op, ": A must have at least one dimension, got a 0-dim tensor");
}

void check_threshold(double threshold) {
    BNB_CHECK_VALUE(threshold >= 0.0, "threshold must be non-negative, got ", threshold);
}

at::Tensor float32_stats(const at::Tensor& stats, int64_t entries, const c10::Device& device, const char* name) {
    BNB_CHECK_VALUE(stats.scalar_type() == at::kFloat, name, " must be float32, got ", stats.scalar_type());
    BNB_CHECK_VALUE(stats.numel() == entries, name, " must have ", entries, " entries, got ", stats.numel());
    check_same_device(stats, device, name);
    return stats.contiguous();
}

std::optional<at::Tensor> checked_bias(const std::optional<at::Tensor>& bias, int64_t N, const c10::Device& device) {
    if (!bias.has_value()) return std::nullopt;
    BNB_CHECK_VALUE(is_float_dtype(bias->scalar_type()), "bias must be float16, bfloat16 or float32, got ",
                    bias->scalar_type());
    BNB_CHECK_VALUE(bias->numel() == N, "bias must have ", N, " entries, got ", bias->numel());
    check_same_device(*bias, device, "bias");
    return bias->contiguous();
}

at::ScalarType output_dtype(const std::optional<at::ScalarType>& dtype) {
    const at::ScalarType chosen = dtype.value_or(at::kHalf);
    BNB_CHECK_VALUE(is_float_dtype(chosen), "dtype must be float16, bfloat16 or float32, got ", chosen);
    return chosen;
}

void check_int8_operands(const at::Tensor& A, const at::Tensor& B) {
    BNB_CHECK_VALUE(A.scalar_type() == at::kChar, "A must be int8, got ", A.scalar_type());
    BNB_CHECK_VALUE(B.scalar_type() == at::kChar, "B must be int8, got ", B.scalar_type());
    BNB_CHECK_VALUE(B.dim() == 2, "Only two dimensional matrices are supported for argument B, got shape ",
                    B.sizes());
    BNB_CHECK_VALUE(A.dim() >= 1, "A must have at least one dimension, got a 0-dim tensor");
    BNB_CHECK_VALUE(A.size(-1) == B.size(-1),
                    "int8_linear_matmul only supports B^T @ A. Inner dimensions do not match: B @ A = ", B.sizes(),
                    " @ ", A.sizes());
    check_same_device(B, A.device(), "B");
}

// The outlier columns of an LLM.int8() product in one int64 buffer on the device: a
// list of capacity K (A's columns), then its count, as bnb_int8_vectorwise_quant writes
// them and bnb_int8_scaled_mm reads them. Nothing is zeroed: both backends write the
// count whenever A has an element, and an empty A writes nothing and has no outliers.
class OutlierList {
  public:
    OutlierList(int64_t capacity, const at::TensorOptions& options)
        : storage_(at::empty({capacity + 1}, options.dtype(at::kLong))), capacity_(capacity) {}

    int64_t* cols() const { return storage_.mutable_data_ptr<int64_t>(); }
    int64_t* count() const { return cols() + capacity_; }

    // The columns a quantization of A reported, sized: the host waits for the count.
    at::Tensor reported_for(const at::Tensor& A) const {
        return storage_.narrow(0, 0, A.numel() == 0 ? 0 : storage_.select(0, capacity_).item<int64_t>());
    }

    // Lists the columns `outlier_cols` (1-D int64 on the device, at most capacity).
    void assign(const at::Tensor& outlier_cols) {
        storage_.narrow(0, 0, outlier_cols.numel()).copy_(outlier_cols);
        storage_.narrow(0, capacity_, 1).fill_(outlier_cols.numel());
    }

  private:
    at::Tensor storage_;
    int64_t capacity_;
};

using QuantizeResult = std::tuple<at::Tensor, at::Tensor, std::optional<at::Tensor>>;

// Statistics of A's rows or columns. The C ABI writes nothing for an empty A,
// so there the statistics of its (empty) rows or columns are zeros here.
at::Tensor stats_of(const at::Tensor& A, int64_t count) {
    const auto options = A.options().dtype(at::kFloat);
    return A.numel() == 0 ? at::zeros({count}, options) : at::empty({count}, options);
}

// bnb_int8_vectorwise_quant of a checked, contiguous A: the codes, the row statistics
// and, with a threshold, the outlier list as the device wrote it.
struct RowQuantization {
    at::Tensor codes;
    at::Tensor row_stats;
    std::optional<OutlierList> outliers;
};

RowQuantization quantize_rows(const at::Tensor& A, double threshold, const char* op) {
    const int64_t rows = rows_of(A);
    const int64_t cols = A.size(-1);
    RowQuantization result{at::empty(A.sizes(), A.options().dtype(at::kChar)), stats_of(A, rows), std::nullopt};
    if (threshold > 0.0) result.outliers.emplace(cols, A.options());
    const std::optional<OutlierList>& outliers = result.outliers;
    check_status(bnb_int8_vectorwise_quant(to_bnb_device(A.device()), current_stream(A.device()),
                                           to_bnb_dtype(A.scalar_type()), A.const_data_ptr(), rows, cols,
                                           static_cast<float>(threshold), result.codes.mutable_data_ptr<int8_t>(),
                                           result.row_stats.mutable_data_ptr<float>(),
                                           outliers ? outliers->cols() : nullptr,
                                           outliers ? outliers->count() : nullptr),
                 op);
    return result;
}

QuantizeResult int8_vectorwise_quant(const at::Tensor& A_in, double threshold) {
    check_float_input(A_in, "int8_vectorwise_quant");
    check_threshold(threshold);
    const at::Tensor A = A_in.contiguous();
    RowQuantization quantized = quantize_rows(A, threshold, "int8_vectorwise_quant");
    if (!quantized.outliers) return {quantized.codes, quantized.row_stats, std::nullopt};
    return {quantized.codes, quantized.row_stats, quantized.outliers->reported_for(A)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, std::optional<at::Tensor>> int8_double_quant(
    const at::Tensor& A_in, double threshold) {
    check_float_input(A_in, "int8_double_quant");
    check_threshold(threshold);
    const at::Tensor A = A_in.contiguous();
    const int64_t rows = rows_of(A);
    const int64_t cols = A.size(-1);
    at::Tensor out_row = at::empty(A.sizes(), A.options().dtype(at::kChar));
    at::Tensor out_col = at::empty(A.sizes(), A.options().dtype(at::kChar));
    at::Tensor row_stats = stats_of(A, rows);
    at::Tensor col_stats = stats_of(A, cols);
    std::optional<OutlierList> outliers;
    if (threshold > 0.0) outliers.emplace(cols, A.options());
    check_status(bnb_int8_double_quant(to_bnb_device(A.device()), current_stream(A.device()),
                                       to_bnb_dtype(A.scalar_type()), A.const_data_ptr(), rows, cols,
                                       static_cast<float>(threshold), out_row.mutable_data_ptr<int8_t>(),
                                       out_col.mutable_data_ptr<int8_t>(), row_stats.mutable_data_ptr<float>(),
                                       col_stats.mutable_data_ptr<float>(),
                                       outliers ? outliers->cols() : nullptr, outliers ? outliers->count() : nullptr),
                 "int8_double_quant");
    if (!outliers) return {out_row, out_col, row_stats, col_stats, std::nullopt};
    return {out_row, out_col, row_stats, col_stats, outliers->reported_for(A)};
}

at::Tensor int8_vectorwise_dequant(const at::Tensor& A_in, const at::Tensor& stats_in) {
    BNB_CHECK_VALUE(A_in.scalar_type() == at::kChar, "A must be int8, got ", A_in.scalar_type());
    BNB_CHECK_VALUE(A_in.dim() >= 1, "A must have at least one dimension, got a 0-dim tensor");
    const at::Tensor A = A_in.contiguous();
    const int64_t rows = rows_of(A);
    const int64_t cols = A.size(-1);
    const at::Tensor stats = float32_stats(stats_in, rows, A.device(), "stats");
    at::Tensor out = at::empty(A.sizes(), A.options().dtype(at::kFloat));
    check_status(bnb_int8_vectorwise_dequant(to_bnb_device(A.device()), current_stream(A.device()),
                                             BNB_DTYPE_FLOAT32, A.const_data_ptr<int8_t>(),
                                             stats.const_data_ptr<float>(), rows, cols, out.mutable_data_ptr()),
                 "int8_vectorwise_dequant");
    return out;
}

void int8_linear_matmul_into(const at::Tensor& A_in, const at::Tensor& B_in, at::Tensor& out) {
    const at::Tensor A = A_in.contiguous();
    const at::Tensor B = B_in.contiguous();
    at::Tensor target = out.is_contiguous() ? out : at::empty(out.sizes(), out.options());
    check_status(bnb_int8_linear_matmul(to_bnb_device(A.device()), current_stream(A.device()),
                                        A.const_data_ptr<int8_t>(), rows_of(A), A.size(-1),
                                        B.const_data_ptr<int8_t>(), B.size(0), target.mutable_data_ptr<int32_t>()),
                 "int8_linear_matmul");
    if (!target.is_same(out)) out.copy_(target);
}

at::Tensor int8_linear_matmul(const at::Tensor& A, const at::Tensor& B) {
    check_int8_operands(A, B);
    at::Tensor out = at::empty(product_shape(A, B.size(0)), A.options().dtype(at::kInt));
    int8_linear_matmul_into(A, B, out);
    return out;
}

void int8_linear_matmul_out(const at::Tensor& A, const at::Tensor& B, at::Tensor out) {
    check_int8_operands(A, B);
    const std::vector<int64_t> expected = product_shape(A, B.size(0));
    BNB_CHECK_VALUE(out.scalar_type() == at::kInt, "out must be int32, got ", out.scalar_type());
    BNB_CHECK_VALUE(out.sizes() == c10::IntArrayRef(expected), "out must have shape ", c10::IntArrayRef(expected),
                    ", got ", out.sizes());
    check_same_device(out, A.device(), "out");
    int8_linear_matmul_into(A, B, out);
}

at::Tensor int8_mm_dequant(const at::Tensor& A_in, const at::Tensor& row_stats_in, const at::Tensor& col_stats_in,
                           std::optional<at::ScalarType> dtype, const std::optional<at::Tensor>& bias_in) {
    BNB_CHECK_VALUE(A_in.scalar_type() == at::kInt, "A must be int32, got ", A_in.scalar_type());
    BNB_CHECK_VALUE(A_in.dim() >= 1, "A must have at least one dimension, got a 0-dim tensor");
    const at::Tensor A = A_in.contiguous();
    const int64_t rows = rows_of(A);
    const int64_t cols = A.size(-1);
    const c10::Device device = A.device();
    const at::Tensor row_stats = float32_stats(row_stats_in, rows, device, "row_stats");
    const at::Tensor col_stats = float32_stats(col_stats_in, cols, device, "col_stats");
    const std::optional<at::Tensor> bias = checked_bias(bias_in, cols, device);
    const at::ScalarType out_dtype = output_dtype(dtype);
    at::Tensor out = at::empty(A.sizes(), A.options().dtype(out_dtype));
    check_status(bnb_int8_mm_dequant(to_bnb_device(device), current_stream(device), A.const_data_ptr<int32_t>(),
                                     rows, cols, row_stats.const_data_ptr<float>(), col_stats.const_data_ptr<float>(),
                                     bias ? to_bnb_dtype(bias->scalar_type()) : BNB_DTYPE_FLOAT32,
                                     bias ? bias->const_data_ptr() : nullptr, to_bnb_dtype(out_dtype),
                                     out.mutable_data_ptr()),
                 "int8_mm_dequant");
    return out;
}

// The outlier correction of one bnb_int8_scaled_mm call: the activations (contiguous,
// in the output dtype) and an outlier list.
struct OutlierCorrection {
    at::Tensor activations;
    const OutlierList& outliers;
};

// bnb_int8_scaled_mm of checked operands: A int8 [..., K] and B int8 [N, K] contiguous,
// the statistics float32 [rows of A] and [N], the bias [N] or none.
at::Tensor checked_scaled_mm(const at::Tensor& A, const at::Tensor& B, const at::Tensor& row_stats,
                             const at::Tensor& col_stats, const std::optional<at::Tensor>& bias, at::ScalarType dtype,
                             const std::optional<OutlierCorrection>& correction) {
    const int64_t M = rows_of(A);
    const int64_t K = A.size(-1);
    const int64_t N = B.size(0);
    const c10::Device device = A.device();
    at::Tensor out = at::empty(product_shape(A, N), A.options().dtype(dtype));
    if (out.numel() == 0) return out;
    const bnb_device where = to_bnb_device(device);
    const bnb_dtype out_dtype = to_bnb_dtype(dtype);
    int64_t workspace_bytes = 0;
    check_status(bnb_int8_scaled_mm_workspace_size(where, out_dtype, M, N, K, correction ? 1 : 0, &workspace_bytes),
                 "int8_scaled_mm");
    const Workspace workspace = allocate_workspace(workspace_bytes, A.options());
    check_status(bnb_int8_scaled_mm(where, current_stream(device), out_dtype, A.const_data_ptr<int8_t>(), M, K,
                                    B.const_data_ptr<int8_t>(), N, row_stats.const_data_ptr<float>(),
                                    col_stats.const_data_ptr<float>(),
                                    bias ? to_bnb_dtype(bias->scalar_type()) : BNB_DTYPE_FLOAT32,
                                    bias ? bias->const_data_ptr() : nullptr,
                                    correction ? correction->activations.const_data_ptr() : nullptr,
                                    correction ? correction->outliers.cols() : nullptr,
                                    correction ? correction->outliers.count() : nullptr, workspace.start,
                                    workspace.bytes, out.mutable_data_ptr()),
                 "int8_scaled_mm");
    return out;
}

at::Tensor scaled_mm(const at::Tensor& A_in, const at::Tensor& B_in, const at::Tensor& row_stats_in,
                     const at::Tensor& col_stats_in, const std::optional<at::Tensor>& bias_in, at::ScalarType dtype,
                     const std::optional<OutlierCorrection>& correction) {
    check_int8_operands(A_in, B_in);
    const at::Tensor A = A_in.contiguous();
    const c10::Device device = A.device();
    const int64_t N = B_in.size(0);
    return checked_scaled_mm(A, B_in.contiguous(), float32_stats(row_stats_in, rows_of(A), device, "row_stats"),
                             float32_stats(col_stats_in, N, device, "col_stats"), checked_bias(bias_in, N, device),
                             dtype, correction);
}

at::Tensor int8_scaled_mm(const at::Tensor& A, const at::Tensor& B, const at::Tensor& row_stats,
                          const at::Tensor& col_stats, const std::optional<at::Tensor>& bias,
                          std::optional<at::ScalarType> dtype) {
    return scaled_mm(A, B, row_stats, col_stats, bias, output_dtype(dtype), std::nullopt);
}

std::tuple<at::Tensor, std::optional<at::Tensor>> int8_mixed_scaled_mm(
    const at::Tensor& A, const at::Tensor& CA, const at::Tensor& CB, const at::Tensor& SCA, const at::Tensor& SCB,
    const std::optional<at::Tensor>& outlier_cols, const std::optional<at::Tensor>& bias) {
    check_float_input(A, "int8_mixed_scaled_mm");
    BNB_CHECK_VALUE(A.dim() == 2, "int8_mixed_scaled_mm: A must be 2-D [rows, K], got shape ", A.sizes());
    BNB_CHECK_VALUE(CA.sizes() == A.sizes(), "CA must have A's shape ", A.sizes(), ", got ", CA.sizes());
    const bool has_outliers = outlier_cols.has_value() && outlier_cols->numel() > 0;
    if (!has_outliers) {
        return {scaled_mm(CA, CB, SCA, SCB, bias, A.scalar_type(), std::nullopt), at::empty({0}, A.options())};
    }
    BNB_CHECK_VALUE(outlier_cols->scalar_type() == at::kLong, "outlier_cols must be int64, got ",
                    outlier_cols->scalar_type());
    BNB_CHECK_VALUE(outlier_cols->dim() == 1, "outlier_cols must be 1-D, got shape ", outlier_cols->sizes());
    check_same_device(*outlier_cols, A.device(), "outlier_cols");
    const int64_t K = A.size(1);
    const int64_t count = outlier_cols->numel();
    BNB_CHECK_VALUE(count <= K, "outlier_cols holds ", count, " indices, more than A's ", K, " columns");
    OutlierList outliers(K, outlier_cols->options());
    outliers.assign(*outlier_cols);
    at::Tensor out = scaled_mm(CA, CB, SCA, SCB, bias, A.scalar_type(), OutlierCorrection{A.contiguous(), outliers});
    return {out, A.index_select(1, *outlier_cols)};
}

// int8_linear (schemas.cpp): A @ dequant(CB, SCB).T + bias in A's dtype. A's rows are
// quantized from its float16 rounding, as upstream's Linear8bitLt casts them (so the
// codes and statistics equal that path's), and with a threshold the outlier list goes
// from the quantization straight to the product, its count never read here.
at::Tensor int8_linear(const at::Tensor& A_in, const at::Tensor& CB_in, const at::Tensor& SCB_in,
                       const std::optional<at::Tensor>& bias_in, double threshold) {
    check_float_input(A_in, "int8_linear");
    check_threshold(threshold);
    BNB_CHECK_VALUE(CB_in.scalar_type() == at::kChar, "int8_linear: CB must be int8, got ", CB_in.scalar_type());
    BNB_CHECK_VALUE(CB_in.dim() == 2, "int8_linear: CB must be 2-D [N, K], got shape ", CB_in.sizes());
    BNB_CHECK_VALUE(CB_in.size(1) == A_in.size(-1), "int8_linear: CB must have K = ", A_in.size(-1),
                    " columns like A, got shape ", CB_in.sizes());
    const c10::Device device = A_in.device();
    check_same_device(CB_in, device, "CB");
    const int64_t N = CB_in.size(0);
    const at::Tensor SCB = float32_stats(SCB_in, N, device, "SCB");
    const std::optional<at::Tensor> bias = checked_bias(bias_in, N, device);
    const at::Tensor A = A_in.contiguous();
    const RowQuantization quantized = quantize_rows(A.to(at::kHalf), threshold, "int8_linear");
    // An empty A reported nothing (no outliers, no count).
    std::optional<OutlierCorrection> correction;
    if (quantized.outliers && A.numel() > 0) correction.emplace(OutlierCorrection{A, *quantized.outliers});
    return checked_scaled_mm(quantized.codes, CB_in.contiguous(), quantized.row_stats, SCB, bias, A.scalar_type(),
                             correction);
}

// Only the ops the device's backend implements: the others keep the pure-torch
// default kernels (backends/torch/int8.py) instead of raising NotImplementedError.
void register_int8(torch::Library& m, bnb_device_type backend) {
    const auto supports = [backend](const char* op) { return bnb_backend_supports(backend, op) != 0; };
    if (supports("int8_vectorwise_quant")) m.impl("int8_vectorwise_quant", &int8_vectorwise_quant);
    if (supports("int8_double_quant")) m.impl("int8_double_quant", &int8_double_quant);
    if (supports("int8_vectorwise_dequant")) m.impl("int8_vectorwise_dequant", &int8_vectorwise_dequant);
    if (supports("int8_linear_matmul")) {
        m.impl("int8_linear_matmul", &int8_linear_matmul);
        m.impl("int8_linear_matmul.out", &int8_linear_matmul_out);
    }
    if (supports("int8_mm_dequant")) m.impl("int8_mm_dequant", &int8_mm_dequant);
    if (supports("int8_scaled_mm")) {
        m.impl("int8_scaled_mm", &int8_scaled_mm);
        m.impl("int8_mixed_scaled_mm", &int8_mixed_scaled_mm);
        if (supports("int8_vectorwise_quant")) m.impl("int8_linear", &int8_linear);
    }
}

}  // namespace

// Asked when the extension loads: the library's backends are registered by then.
TORCH_LIBRARY_IMPL(bitsandbytes, CPU, m) { register_int8(m, BNB_DEVICE_CPU); }
TORCH_LIBRARY_IMPL(bitsandbytes, CUDA, m) { register_int8(m, cuda_backend_type()); }

}  // namespace bnb::glue
