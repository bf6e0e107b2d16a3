// The CUDA backend's slot functions, defined per kernel family (blockwise.cu,
// fourbit.cu, gemm_4bit/select.cu, int8/); cuda_backend.cu puts them in the table.
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

}  // namespace bnb::cuda
