// The 4-bit kernels for the scalar reference (common/isa_dispatch.h).
#include "common/vec_scalar.h"
#include "fourbit/kernels.h"
