// The optimizer kernels for AVX-512 (common/isa_dispatch.h).
#include "common/vec_avx512.h"
#include "optimizer/kernels.h"
