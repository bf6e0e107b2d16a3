// The 4-bit kernels for AVX-512 (common/isa_dispatch.h).
#include "common/vec_avx512.h"
#include "fourbit/kernels.h"
