// Torch glue of quantize_blockwise / dequantize_blockwise: tensor checks, output
// allocation, one C ABI call.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../glue.h"

namespace bnb::glue {
namespace {

void check_code(const at::Tensor& code, const c10::Device& device) {
    BNB_CHECK_VALUE(code.scalar_type() == at::kFloat, "code must be float32, got ", code.scalar_type());
    BNB_CHECK_VALUE(code.numel() == 256, "code must have 256 entries, got ", code.numel());
    check_same_device(code, device, "code");
}

std::tuple<at::Tensor, at::Tensor> quantize_blockwise(const at::Tensor& A_in, const at::Tensor& code_in,
                                                      int64_t blocksize) {
    BNB_CHECK_VALUE(is_float_dtype(A_in.scalar_type()),
                      "Blockwise quantization only supports 16/32-bit floats, but got ", A_in.scalar_type());
    BNB_CHECK_VALUE(blocksize > 0, "blocksize must be positive, got ", blocksize);
    check_code(code_in, A_in.device());
    const at::Tensor A = A_in.contiguous();
    const at::Tensor code = code_in.contiguous();
    const int64_t n = A.numel();
    at::Tensor out = at::empty(A.sizes(), A.options().dtype(at::kByte));
    at::Tensor absmax = at::empty({(n + blocksize - 1) / blocksize}, A.options().dtype(at::kFloat));
    check_status(bnb_quantize_blockwise(to_bnb_device(A.device()), current_stream(A.device()),
                                        to_bnb_dtype(A.scalar_type()), A.const_data_ptr(),
                                        code.const_data_ptr<float>(), n, blocksize,
                                        out.mutable_data_ptr<uint8_t>(), absmax.mutable_data_ptr<float>()),
                 "quantize_blockwise");
    return {out, absmax};
}

void dequantize_blockwise_into(const at::Tensor& A_in, const at::Tensor& absmax_in, const at::Tensor& code_in,
                               int64_t blocksize, at::ScalarType dtype, at::Tensor& out) {
    BNB_CHECK_VALUE(A_in.scalar_type() == at::kByte, "A must be uint8, got ", A_in.scalar_type());
    BNB_CHECK_VALUE(is_float_dtype(dtype),
                      "Blockwise dequantization only supports 16/32-bit floats, but got ", dtype);
    BNB_CHECK_VALUE(blocksize > 0, "blocksize must be positive, got ", blocksize);
    check_code(code_in, A_in.device());
    check_same_device(absmax_in, A_in.device(), "absmax");
    BNB_CHECK_VALUE(absmax_in.scalar_type() == at::kFloat, "absmax must be float32, got ",
                      absmax_in.scalar_type());
    const int64_t n = A_in.numel();
    BNB_CHECK_VALUE(absmax_in.numel() >= (n + blocksize - 1) / blocksize, "absmax must have at least ",
                      (n + blocksize - 1) / blocksize, " entries for ", n, " elements, got ", absmax_in.numel());
    const at::Tensor A = A_in.contiguous();
    const at::Tensor absmax = absmax_in.contiguous();
    const at::Tensor code = code_in.contiguous();
    at::Tensor target = out.is_contiguous() ? out : at::empty(out.sizes(), out.options());
    check_status(bnb_dequantize_blockwise(to_bnb_device(A.device()), current_stream(A.device()),
                                          to_bnb_dtype(dtype), A.const_data_ptr<uint8_t>(),
                                          code.const_data_ptr<float>(), absmax.const_data_ptr<float>(), n,
                                          blocksize, target.mutable_data_ptr()),
                 "dequantize_blockwise");
    if (!target.is_same(out)) out.copy_(target);
}

at::Tensor dequantize_blockwise(const at::Tensor& A, const at::Tensor& absmax, const at::Tensor& code,
                                int64_t blocksize, at::ScalarType dtype) {
    at::Tensor out = at::empty(A.sizes(), A.options().dtype(dtype));
    dequantize_blockwise_into(A, absmax, code, blocksize, dtype, out);
    return out;
}

void dequantize_blockwise_out(const at::Tensor& A, const at::Tensor& absmax, const at::Tensor& code,
                              int64_t blocksize, at::ScalarType dtype, at::Tensor out) {
    BNB_CHECK_VALUE(out.scalar_type() == dtype, "out must be ", dtype, ", got ", out.scalar_type());
    BNB_CHECK_VALUE(out.sizes() == A.sizes(), "out must have shape ", A.sizes(), ", got ", out.sizes());
    check_same_device(out, A.device(), "out");
    dequantize_blockwise_into(A, absmax, code, blocksize, dtype, out);
}

}  // namespace

// The same functions serve every device the C ABI has a backend for; the
// device and stream come from the tensors.
#define BNB_REGISTER_BLOCKWISE(key)                                          \
    TORCH_LIBRARY_IMPL(bitsandbytes, key, m) {                               \
        m.impl("quantize_blockwise", &quantize_blockwise);                   \
        m.impl("dequantize_blockwise", &dequantize_blockwise);               \
        m.impl("dequantize_blockwise.out", &dequantize_blockwise_out);       \
    }
BNB_REGISTER_BLOCKWISE(CPU)
BNB_REGISTER_BLOCKWISE(CUDA)

}  // namespace bnb::glue
