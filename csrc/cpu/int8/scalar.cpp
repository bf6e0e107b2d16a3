// The LLM.int8() kernels for the scalar reference (common/isa_dispatch.h).
#include "common/vec_scalar.h"
#include "int8/kernels.h"
