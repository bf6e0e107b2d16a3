// The LLM.int8() kernels for AVX-512, with AVX512-VNNI products for CPUs that
// have it (common/isa_dispatch.h).
#include "common/vec_avx512.h"
#include "int8/kernels.h"
