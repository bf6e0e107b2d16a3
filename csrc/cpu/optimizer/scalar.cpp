// The optimizer kernels for the scalar reference (common/isa_dispatch.h).
#include "common/vec_scalar.h"
#include "optimizer/kernels.h"
