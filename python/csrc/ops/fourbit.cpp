// Torch glue of quantize_4bit / dequantize_4bit: tensor checks, output
// allocation, one C ABI call.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../glue.h"

namespace bnb::glue {
namespace {

std::tuple<at::Tensor, at::Tensor> quantize_4bit(const at::Tensor& A_in, int64_t blocksize,
                                                 c10::string_view quant_type, at::ScalarType quant_storage) {
    const bnb_quant_type type = parse_quant_type(quant_type);
    BNB_CHECK_VALUE(is_float_dtype(A_in.scalar_type()),
                      "Blockwise 4bit quantization only supports 16/32-bit floats, but got ", A_in.scalar_type());
    BNB_CHECK_VALUE(blocksize > 0, "blocksize must be positive, got ", blocksize);
    const at::Tensor A = A_in.contiguous();
    const int64_t n = A.numel();
    const int64_t packed_bytes = (n + 1) / 2;
    const int64_t itemsize = static_cast<int64_t>(c10::elementSize(quant_storage));
    // Rounded up where upstream would write past the end of its allocation.
    const int64_t storage_elements = (packed_bytes + itemsize - 1) / itemsize;
    at::Tensor packed = at::empty({storage_elements, 1}, A.options().dtype(quant_storage));
    at::Tensor packed_bytes_view = packed.view(at::kByte);
    if (storage_elements * itemsize != packed_bytes) packed_bytes_view.zero_();
    at::Tensor absmax = at::empty({(n + blocksize - 1) / blocksize}, A.options().dtype(at::kFloat));
    check_status(bnb_quantize_4bit(to_bnb_device(A.device()), current_stream(A.device()), type,
                                   to_bnb_dtype(A.scalar_type()), A.const_data_ptr(), n, blocksize,
                                   packed_bytes_view.mutable_data_ptr<uint8_t>(), absmax.mutable_data_ptr<float>()),
                 "quantize_4bit");
    return {packed, absmax};
}

void dequantize_4bit_into(const at::Tensor& A_in, const at::Tensor& absmax_in, int64_t blocksize,
                          c10::string_view quant_type, c10::IntArrayRef shape, at::ScalarType dtype,
                          at::Tensor& out) {
    const bnb_quant_type type = parse_quant_type(quant_type);
    BNB_CHECK_VALUE(is_float_dtype(dtype),
                      "Blockwise 4bit dequantization only supports 16/32-bit floats, but got ", dtype);
    BNB_CHECK_VALUE(blocksize > 0, "blocksize must be positive, got ", blocksize);
    BNB_CHECK_VALUE(absmax_in.scalar_type() == at::kFloat, "absmax must be float32, got ",
                      absmax_in.scalar_type());
    check_same_device(absmax_in, A_in.device(), "absmax");
    const int64_t n = checked_numel(shape, "shape");
    // Packed storage of any dtype is read as its bytes.
    const at::Tensor packed = A_in.contiguous().reshape({-1}).view(at::kByte);
    BNB_CHECK_VALUE(packed.numel() >= (n + 1) / 2, "A holds ", packed.numel(), " bytes, but shape ", shape,
                      " needs ", (n + 1) / 2);
    BNB_CHECK_VALUE(absmax_in.numel() >= (n + blocksize - 1) / blocksize, "absmax must have at least ",
                      (n + blocksize - 1) / blocksize, " entries for ", n, " elements, got ", absmax_in.numel());
    const at::Tensor absmax = absmax_in.contiguous();
    at::Tensor target = out.is_contiguous() ? out : at::empty(out.sizes(), out.options());
    check_status(bnb_dequantize_4bit(to_bnb_device(packed.device()), current_stream(packed.device()), type,
                                     to_bnb_dtype(dtype), packed.const_data_ptr<uint8_t>(),
                                     absmax.const_data_ptr<float>(), n, blocksize, target.mutable_data_ptr()),
                 "dequantize_4bit");
    if (!target.is_same(out)) out.copy_(target);
}

at::Tensor dequantize_4bit(const at::Tensor& A, const at::Tensor& absmax, int64_t blocksize,
                           c10::string_view quant_type, c10::IntArrayRef shape, at::ScalarType dtype) {
    checked_numel(shape, "shape");
    at::Tensor out = at::empty(shape, A.options().dtype(dtype));
    dequantize_4bit_into(A, absmax, blocksize, quant_type, shape, dtype, out);
    return out;
}

void dequantize_4bit_out(const at::Tensor& A, const at::Tensor& absmax, int64_t blocksize,
                         c10::string_view quant_type, c10::IntArrayRef shape, at::ScalarType dtype,
                         at::Tensor out) {
    BNB_CHECK_VALUE(out.scalar_type() == dtype, "out must be ", dtype, ", got ", out.scalar_type());
    BNB_CHECK_VALUE(out.sizes() == shape, "out must have shape ", shape, ", got ", out.sizes());
    check_same_device(out, A.device(), "out");
    dequantize_4bit_into(A, absmax, blocksize, quant_type, shape, dtype, out);
}

}  // namespace

#define BNB_REGISTER_FOURBIT(key)                                   \
    TORCH_LIBRARY_IMPL(bitsandbytes, key, m) {                      \
        m.impl("quantize_4bit", &quantize_4bit);                    \
        m.impl("dequantize_4bit", &dequantize_4bit);                \
        m.impl("dequantize_4bit.out", &dequantize_4bit_out);        \
    }
BNB_REGISTER_FOURBIT(CPU)
BNB_REGISTER_FOURBIT(CUDA)

}  // namespace bnb::glue
