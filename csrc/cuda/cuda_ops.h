// The CUDA backend's slot functions, defined per kernel family (blockwise.cu,
// fourbit.cu, gemm_4bit/select.cu, int8/, optimizer/select.cu, paged.cu);
// cuda_backend.cu puts them in the table.
#pragma once

#include "backend.h"

namespace bnb::cuda {

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args);
bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args);
bnb_status quantize_4bit(const Quantize4bitArgs& args);
bnb_status dequantize_4bit(const Dequantize4bitArgs& args);
bnb_status gemm_4bit(const Gemm4bitArgs& args);
bnb_status gemm_4bit_fused_max_rows(const Gemm4bitShape& shape, int64_t* max_rows);
bnb_status gemm_4bit_workspace_size(const Gemm4bitShape& shape, int64_t* bytes);
bnb_status int8_vectorwise_quant(const Int8QuantizeArgs& args);
bnb_status int8_double_quant(const Int8QuantizeArgs& args);
bnb_status int8_vectorwise_dequant(const Int8DequantizeArgs& args);
bnb_status int8_linear_matmul(const Int8MatmulArgs& args);
bnb_status int8_mm_dequant(const Int8MmDequantArgs& args);
bnb_status int8_scaled_mm(const Int8ScaledMmArgs& args);
bnb_status int8_scaled_mm_workspace_size(const Int8ScaledMmShape& shape, int64_t* bytes);
bnb_status optimizer_update_32bit(const OptimizerUpdateArgs& args);
bnb_status optimizer_update_8bit_blockwise(const OptimizerUpdateArgs& args);
bnb_status paged_alloc(bnb_device device, int64_t bytes, void** out);
bnb_status paged_free(bnb_device device, void* ptr);
bnb_status paged_prefetch(bnb_device device, void* stream, const void* ptr, int64_t bytes, bool to_device);

}  // namespace bnb::cuda
