// The 4-bit matmul for the scalar reference (common/isa_dispatch.h).
#include "common/vec_scalar.h"
#include "gemm_4bit/kernels.h"
