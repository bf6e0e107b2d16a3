// Which instruction set the CPU kernels use, chosen once per process.
//
// The CPU is probed once; the environment variable BNB_CPU_ISA (scalar, avx2,
// avx512 or auto) caps the choice, so that a user can rule out a faulty or slow
// path and CI can run every path. Every path produces the same bytes as the
// scalar reference (tests/cpp/test_cpu_isa.cpp).
#pragma once

#include "bitsandbytes/bitsandbytes.h"

namespace bnb::cpu {

enum class CpuIsa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* isa_name(CpuIsa isa);

// True if this CPU (and OS) can run the path.
bool isa_supported(CpuIsa isa);

// The path the kernels take now.
CpuIsa active_isa();

}  // namespace bnb::cpu

// Exported from the library beside the C ABI (not part of bitsandbytes.h): lets
// tests compare the paths within one process, and diagnostics report the path.
#ifdef __cplusplus
extern "C" {
#endif
// "scalar", "avx2" or "avx512".
BNB_API const char* bnb_cpu_isa(void);
// 1 if `name` is a path that this CPU can run, else 0.
BNB_API int bnb_cpu_isa_supported(const char* name);
// Switches every later CPU call to `name` ("auto" = the best supported).
// BNB_STATUS_INVALID_ARGUMENT for an unknown name, BNB_STATUS_UNSUPPORTED for a
// path this CPU cannot run.
BNB_API bnb_status bnb_cpu_isa_select(const char* name);
#ifdef __cplusplus
}
#endif
