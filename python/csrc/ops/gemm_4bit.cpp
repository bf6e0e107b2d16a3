// Torch glue of gemv_4bit / gemm_4bit (and bitsandbytes_internal::gemm_4bit_algo):
// tensor checks, output allocation, the workspace that bnb_gemm_4bit_workspace_size
// asks for (from torch's caching allocator, so it follows the current stream and
// CUDA-graph capture) and one C ABI call. Which kernel serves a shape, de-nesting
// included, is the library's decision.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "../glue.h"

namespace bnb::glue {
namespace {

void check_operands(const at::Tensor& A, const at::Tensor& B, int64_t blocksize) {
    check_op_blocksize("gemm_4bit", blocksize);
    BNB_CHECK_RUNTIME(is_float_dtype(A.scalar_type()), "A must be float16, bfloat16, or float32, got ", A.scalar_type());
    const auto storage = B.scalar_type();
    BNB_CHECK_RUNTIME(storage == at::kByte || is_float_dtype(storage),
                "B must be backed by storage of type uint8, bfloat16, float16, or float32, got ", storage);
    check_same_device(B, A.device(), "B");
}

struct WeightShape {
    int64_t N;
    int64_t K;
    int64_t blocksize;
    int64_t blocks() const { return (N * K + blocksize - 1) / blocksize; }
};

WeightShape check_shape(c10::IntArrayRef shapeB, const at::Tensor& A, int64_t blocksize) {
    BNB_CHECK_RUNTIME(shapeB.size() == 2, "shapeB must be 2D [N, K], got ", shapeB);
    BNB_CHECK_RUNTIME(shapeB[0] >= 0 && shapeB[1] >= 0, "shapeB must not contain negative sizes, got ", shapeB);
    BNB_CHECK_RUNTIME(A.dim() >= 1 && A.size(-1) == shapeB[1], "A inner dim (", A.dim() >= 1 ? A.size(-1) : 0,
                ") must match shapeB (", shapeB[1], ")");
    return {shapeB[0], shapeB[1], blocksize};
}

// The packed weight as its bytes (any storage dtype is the same byte buffer).
at::Tensor packed_bytes(const at::Tensor& B, const WeightShape& shape) {
    at::Tensor bytes = B.contiguous().reshape({-1}).view(at::kByte);
    const int64_t needed = (shape.N * shape.K + 1) / 2;
    BNB_CHECK_RUNTIME(bytes.numel() >= needed, "B holds ", bytes.numel(), " bytes, but shapeB [", shape.N, ", ", shape.K,
                "] needs ", needed);
    return bytes;
}

at::Tensor float32_vector(const at::Tensor& tensor, int64_t entries, const c10::Device& device, const char* name) {
    BNB_CHECK_RUNTIME(tensor.scalar_type() == at::kFloat, name, " must be float32, got ", tensor.scalar_type());
    check_same_device(tensor, device, name);
    BNB_CHECK_RUNTIME(tensor.numel() >= entries, name, " must have at least ", entries, " entries, got ", tensor.numel());
    return tensor.contiguous();
}

std::vector<int64_t> output_shape(const at::Tensor& A, int64_t N) {
    std::vector<int64_t> shape(A.sizes().begin(), A.sizes().end() - 1);
    shape.push_back(N);
    return shape;
}

// Nested statistics of gemm_4bit, checked and in the form the C ABI takes.
struct Nested {
    at::Tensor codes;   // uint8 per block
    at::Tensor code;    // 256 float32
    at::Tensor offset;  // 1 float32
};

std::optional<Nested> check_nested(const std::optional<at::Tensor>& absmax_8bit,
                                   const std::optional<at::Tensor>& absmax_code,
                                   const std::optional<at::Tensor>& absmax_offset, const WeightShape& shape,
                                   const c10::Device& device) {
    if (!absmax_8bit.has_value()) return std::nullopt;
    BNB_CHECK_RUNTIME(absmax_8bit->dim() == 1, "absmax_8bit must be 1D, got ", absmax_8bit->dim(), "D");
    BNB_CHECK_RUNTIME(absmax_8bit->scalar_type() == at::kByte, "absmax_8bit must be uint8, got ", absmax_8bit->scalar_type());
    BNB_CHECK_RUNTIME(absmax_8bit->numel() >= shape.blocks(), "absmax_8bit must have at least ", shape.blocks(),
                " entries, got ", absmax_8bit->numel());
    check_same_device(*absmax_8bit, device, "absmax_8bit");
    BNB_CHECK_RUNTIME(absmax_code.has_value(), "absmax_code required when absmax_8bit is provided");
    BNB_CHECK_RUNTIME(absmax_code->dim() == 1, "absmax_code must be 1D, got ", absmax_code->dim(), "D");
    BNB_CHECK_RUNTIME(absmax_code->numel() == 256, "absmax_code must have 256 entries, got ", absmax_code->numel());
    BNB_CHECK_RUNTIME(absmax_offset.has_value(), "absmax_offset required when absmax_8bit is provided");
    BNB_CHECK_RUNTIME(absmax_offset->dim() == 0, "absmax_offset must be a scalar (0-dim), got ", absmax_offset->dim(), "D");
    // The eager op accepts a 16-bit offset and converts it (upstream, ops.md 3.4).
    BNB_CHECK_RUNTIME(is_float_dtype(absmax_offset->scalar_type()), "absmax_offset must be float32, got ",
                absmax_offset->scalar_type());
    check_same_device(*absmax_offset, device, "absmax_offset");
    return Nested{absmax_8bit->contiguous(), float32_vector(*absmax_code, 256, device, "absmax_code"),
                  absmax_offset->to(at::kFloat).reshape({1}).contiguous()};
}

std::optional<at::Tensor> check_bias(const std::optional<at::Tensor>& bias, const at::Tensor& A, int64_t N) {
    if (!bias.has_value()) return std::nullopt;
    BNB_CHECK_RUNTIME(bias->dim() == 1, "bias must be 1D, got ", bias->dim(), "D");
    BNB_CHECK_RUNTIME(bias->size(0) == N, "bias length (", bias->size(0), ") must match N (", N, ")");
    BNB_CHECK_RUNTIME(bias->scalar_type() == A.scalar_type(), "bias dtype (", bias->scalar_type(), ") must match A dtype (",
                A.scalar_type(), ")");
    check_same_device(*bias, A.device(), "bias");
    return bias->contiguous();
}

// Rows of A: every dimension but the last (A is [..., K]).
int64_t rows_of(const at::Tensor& A) {
    int64_t rows = 1;
    for (int64_t d = 0; d + 1 < A.dim(); ++d) rows *= A.size(d);
    return rows;
}

// gemm_4bit with the kernel chosen by `algo`, a bnb_gemm_4bit_algo (AUTO: the library's choice).
at::Tensor gemm_4bit_with(const at::Tensor& A_in, const at::Tensor& B, c10::IntArrayRef shapeB,
                          const at::Tensor& absmax_in, int64_t blocksize, c10::string_view quant_type,
                          const std::optional<at::Tensor>& bias_in, const std::optional<at::Tensor>& absmax_8bit,
                          const std::optional<at::Tensor>& absmax_code, const std::optional<at::Tensor>& absmax_offset,
                          int64_t algo) {
    const WeightShape shape = check_shape(shapeB, A_in, blocksize);
    check_operands(A_in, B, blocksize);
    BNB_CHECK_RUNTIME(algo >= BNB_GEMM_4BIT_AUTO && algo <= BNB_GEMM_4BIT_DEQUANTIZE,
                      "algo must be a bnb_gemm_4bit_algo (0 to 4), got ", algo);
    const bnb_quant_type type = parse_quant_type(quant_type);
    const c10::Device device = A_in.device();
    const std::optional<Nested> nested = check_nested(absmax_8bit, absmax_code, absmax_offset, shape, device);
    const int64_t nested_blocksize = bnb_nested_blocksize();
    const int64_t absmax_entries = nested.has_value() ? (shape.blocks() + nested_blocksize - 1) / nested_blocksize
                                                      : shape.blocks();
    const at::Tensor absmax = float32_vector(absmax_in, absmax_entries, device, "absmax");
    const std::optional<at::Tensor> bias = check_bias(bias_in, A_in, shape.N);
    const at::Tensor bytes = packed_bytes(B, shape);
    at::Tensor out = at::empty(output_shape(A_in, shape.N), A_in.options());
    if (out.numel() == 0) return out;
    const at::Tensor A = A_in.contiguous();
    const int64_t M = rows_of(A);
    const bnb_device where = to_bnb_device(device);
    const bnb_dtype dtype = to_bnb_dtype(A.scalar_type());
    const auto chosen = static_cast<bnb_gemm_4bit_algo>(algo);
    int64_t workspace_bytes = 0;
    check_status(bnb_gemm_4bit_workspace_size(where, dtype, M, shape.N, shape.K, blocksize, nested.has_value() ? 1 : 0,
                                              chosen, &workspace_bytes),
                 "gemm_4bit");
    const Workspace workspace = allocate_workspace(workspace_bytes, A.options());
    check_status(
        bnb_gemm_4bit(where, current_stream(device), dtype, type, A.const_data_ptr(), M, shape.K,
                      bytes.const_data_ptr<uint8_t>(), shape.N, blocksize, absmax.const_data_ptr<float>(),
                      nested.has_value() ? nested->codes.const_data_ptr<uint8_t>() : nullptr,
                      nested.has_value() ? nested->code.const_data_ptr<float>() : nullptr,
                      nested.has_value() ? nested->offset.const_data_ptr<float>() : nullptr,
                      bias.has_value() ? bias->const_data_ptr() : nullptr, chosen,
                      workspace.start, workspace.bytes,
                      out.mutable_data_ptr()),
        "gemm_4bit");
    return out;
}

at::Tensor gemm_4bit(const at::Tensor& A, const at::Tensor& B, c10::IntArrayRef shapeB, const at::Tensor& absmax,
                     int64_t blocksize, c10::string_view quant_type, const std::optional<at::Tensor>& bias,
                     const std::optional<at::Tensor>& absmax_8bit, const std::optional<at::Tensor>& absmax_code,
                     const std::optional<at::Tensor>& absmax_offset) {
    return gemm_4bit_with(A, B, shapeB, absmax, blocksize, quant_type, bias, absmax_8bit, absmax_code, absmax_offset,
                          BNB_GEMM_4BIT_AUTO);
}

void gemv_4bit_into(const at::Tensor& A_in, const at::Tensor& B, c10::IntArrayRef shapeB, const at::Tensor& absmax_in,
                    const at::Tensor& code_in, int64_t blocksize, at::Tensor& out) {
    const c10::Device device = A_in.device();
    const at::Tensor code = float32_vector(code_in, 16, device, "code");
    const WeightShape shape{shapeB[0], shapeB[1], blocksize};
    const at::Tensor absmax = float32_vector(absmax_in, shape.blocks(), device, "absmax");
    const at::Tensor bytes = packed_bytes(B, shape);
    if (out.numel() == 0) return;
    const at::Tensor A = A_in.contiguous();
    const int64_t M = rows_of(A);
    at::Tensor target = out.is_contiguous() ? out : at::empty(out.sizes(), out.options());
    check_status(bnb_gemv_4bit(to_bnb_device(device), current_stream(device), to_bnb_dtype(A.scalar_type()),
                               A.const_data_ptr(), M, shape.K, bytes.const_data_ptr<uint8_t>(), shape.N,
                               code.const_data_ptr<float>(), absmax.const_data_ptr<float>(), blocksize,
                               target.mutable_data_ptr()),
                 "gemv_4bit");
    if (!target.is_same(out)) out.copy_(target);
}

at::Tensor gemv_4bit(const at::Tensor& A, const at::Tensor& B, c10::IntArrayRef shapeB, const at::Tensor& absmax,
                     const at::Tensor& code, int64_t blocksize) {
    check_shape(shapeB, A, blocksize);
    check_operands(A, B, blocksize);
    at::Tensor out = at::empty(output_shape(A, shapeB[0]), A.options());
    gemv_4bit_into(A, B, shapeB, absmax, code, blocksize, out);
    return out;
}

void gemv_4bit_out(const at::Tensor& A, const at::Tensor& B, c10::IntArrayRef shapeB, const at::Tensor& absmax,
                   const at::Tensor& code, int64_t blocksize, at::Tensor out) {
    check_shape(shapeB, A, blocksize);
    check_operands(A, B, blocksize);
    const std::vector<int64_t> expected = output_shape(A, shapeB[0]);
    BNB_CHECK_VALUE(out.sizes() == c10::IntArrayRef(expected), "out must have shape ", c10::IntArrayRef(expected),
                      ", got ", out.sizes());
    BNB_CHECK_VALUE(out.scalar_type() == A.scalar_type(), "out must be ", A.scalar_type(), ", got ",
                      out.scalar_type());
    check_same_device(out, A.device(), "out");
    gemv_4bit_into(A, B, shapeB, absmax, code, blocksize, out);
}

}  // namespace

// Not part of upstream's surface: the same product with the kernel forced, for the
// tests and benchmarks that pin each one (algo: a bnb_gemm_4bit_algo, 0 auto,
// 1 generic, 2 SIMT, 3 tensor cores, 4 dequantize + dense GEMM).
TORCH_LIBRARY(bitsandbytes_internal, m) {
    m.def("gemm_4bit_algo(Tensor A, Tensor B, int[] shapeB, Tensor absmax, int blocksize, str quant_type, "
          "Tensor? bias=None, Tensor? absmax_8bit=None, Tensor? absmax_code=None, Tensor? absmax_offset=None, "
          "int algo=0) -> Tensor");
}

TORCH_LIBRARY_IMPL(bitsandbytes_internal, CUDA, m) { m.impl("gemm_4bit_algo", &gemm_4bit_with); }

TORCH_LIBRARY_IMPL(bitsandbytes, CUDA, m) {
    m.impl("gemv_4bit", &gemv_4bit);
    m.impl("gemv_4bit.out", &gemv_4bit_out);
    m.impl("gemm_4bit", &gemm_4bit);
}

// The CPU gets these kernels once its backend fills the slots: asked when the
// extension loads (the library's backends are registered by then), so that until
// the CPU backend has them the CPU keeps the pure-torch default kernels
// (bitsandbytes/backends/torch_matmul_4bit.py) instead of raising NotImplementedError.
TORCH_LIBRARY_IMPL(bitsandbytes_internal, CPU, m) {
    if (bnb_backend_supports(BNB_DEVICE_CPU, "gemm_4bit")) m.impl("gemm_4bit_algo", &gemm_4bit_with);
}

TORCH_LIBRARY_IMPL(bitsandbytes, CPU, m) {
    if (bnb_backend_supports(BNB_DEVICE_CPU, "gemv_4bit")) {
        m.impl("gemv_4bit", &gemv_4bit);
        m.impl("gemv_4bit.out", &gemv_4bit_out);
    }
    if (bnb_backend_supports(BNB_DEVICE_CPU, "gemm_4bit")) m.impl("gemm_4bit", &gemm_4bit);
}

}  // namespace bnb::glue
