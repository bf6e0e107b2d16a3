// The optimizer kernels for AVX2 + F16C + FMA (common/isa_dispatch.h).
#include "common/vec_avx2.h"
#include "optimizer/kernels.h"
