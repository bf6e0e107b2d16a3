// The 4-bit matmul for AVX2 + F16C + FMA (common/isa_dispatch.h).
#include "common/vec_avx2.h"
#include "gemm_4bit/kernels.h"
