// The 4-bit matmul for AVX-512, with bf16 tiles for CPUs with AVX512-BF16
// (common/isa_dispatch.h).
#include "common/vec_avx512.h"
#include "gemm_4bit/kernels.h"
