// Every op of the `bitsandbytes` torch library, declared once, with upstream's
// exact schema strings (shared/contract/ops.md). Implementations are registered
// per dispatch key by the files in ops/, fake kernels by bitsandbytes/_ops.py.
#include <torch/library.h>

namespace {

constexpr const char* kSchemas[] = {
    "int8_linear_matmul(Tensor A, Tensor B) -> Tensor",
    "int8_linear_matmul.out(Tensor A, Tensor B, Tensor! out) -> ()",
    "int8_vectorwise_quant(Tensor A, float threshold=0.0) -> (Tensor, Tensor, Tensor?)",
    "int8_vectorwise_dequant(Tensor A, Tensor stats) -> Tensor",
    "int8_mm_dequant(Tensor A, Tensor row_stats, Tensor col_stats, ScalarType? dtype=None, Tensor? bias=None) -> Tensor",
    "int8_scaled_mm(Tensor A, Tensor B, Tensor row_stats, Tensor col_stats, Tensor? bias=None, ScalarType? dtype=None) -> Tensor",
    "int8_mixed_scaled_mm(Tensor A, Tensor CA, Tensor CB, Tensor SCA, Tensor SCB, Tensor? outlier_cols=None, Tensor? bias=None) -> (Tensor, Tensor?)",
    "int8_double_quant(Tensor A, float threshold=0.0) -> (Tensor, Tensor, Tensor, Tensor, Tensor?)",
    "quantize_blockwise(Tensor A, Tensor code, int blocksize) -> (Tensor, Tensor)",
    "dequantize_blockwise(Tensor A, Tensor absmax, Tensor code, int blocksize, ScalarType dtype) -> Tensor",
    "dequantize_blockwise.out(Tensor A, Tensor absmax, Tensor code, int blocksize, ScalarType dtype, Tensor! out) -> ()",
    "quantize_4bit(Tensor A, int blocksize, str quant_type, ScalarType quant_storage) -> (Tensor, Tensor)",
    "dequantize_4bit(Tensor A, Tensor absmax, int blocksize, str quant_type, int[] shape, ScalarType dtype) -> Tensor",
    "dequantize_4bit.out(Tensor A, Tensor absmax, int blocksize, str quant_type, int[] shape, ScalarType dtype, Tensor! out) -> ()",
    "gemv_4bit(Tensor A, Tensor B, int[] shapeB, Tensor absmax, Tensor code, int blocksize) -> Tensor",
    "gemv_4bit.out(Tensor A, Tensor B, int[] shapeB, Tensor absmax, Tensor code, int blocksize, Tensor! out) -> ()",
    "gemm_4bit(Tensor A, Tensor B, int[] shapeB, Tensor absmax, int blocksize, str quant_type, Tensor? bias=None, Tensor? absmax_8bit=None, Tensor? absmax_code=None, Tensor? absmax_offset=None) -> Tensor",
    "optimizer_update_32bit(str optimizer_name, Tensor(a0!) g, Tensor(a1!) p, Tensor(a2!) state1, Tensor(a3!)? state2, Tensor(a4!)? unorm_vec, float max_unorm, float param_norm, float beta1, float beta2, float beta3, float alpha, float eps, float weight_decay, int step, float lr, float gnorm_scale, bool skip_zeros=False) -> ()",
    "optimizer_update_8bit_blockwise(str optimizer_name, Tensor(a0!) g, Tensor(a1!) p, Tensor(a2!) state1, Tensor(a3!)? state2, float beta1, float beta2, float beta3, float alpha, float eps, int step, float lr, Tensor(a4!) qmap1, Tensor(a5!)? qmap2, Tensor(a6!) absmax1, Tensor(a7!)? absmax2, float weight_decay, float gnorm_scale, bool skip_zeros=False) -> ()",
    // Extensions of this package (not upstream's). int8_linear: the LLM.int8() inference
    // forward in one call, which keeps the outlier columns and their count on the device
    // (upstream's int8_vectorwise_quant returns them sized, so the host waits for the
    // count) and has a static output shape for torch.compile. optimizer_update_multi_tensor:
    // one call updates every tensor of a parameter group. paged_*: the managed ("paged")
    // memory of the paged optimizers.
    "int8_linear(Tensor A, Tensor CB, Tensor SCB, Tensor? bias=None, float threshold=0.0) -> Tensor",
    "optimizer_update_multi_tensor(str optimizer_name, Tensor[] g, Tensor(a1!)[] p, Tensor(a2!)[] state1, Tensor(a3!)[] state2, Tensor(a4!)[] absmax1, Tensor(a5!)[] absmax2, Tensor? qmap1, Tensor? qmap2, float beta1, float beta2, float beta3, float alpha, float eps, float weight_decay, int step, float lr, float gnorm_scale, bool skip_zeros=False) -> ()",
    "paged_empty(int[] size, ScalarType dtype, Device device) -> Tensor",
    "paged_prefetch(Tensor t, Device device, bool to_device) -> ()",
};

}  // namespace

TORCH_LIBRARY(bitsandbytes, m) {
    for (const char* schema : kSchemas) m.def(schema);
}
