// The LLM.int8() kernels for AVX2 + F16C + FMA, with AVX-VNNI products for
// CPUs that have it (common/isa_dispatch.h).
#include "common/vec_avx2.h"
#include "int8/kernels.h"
