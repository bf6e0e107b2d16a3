// Which instruction set the CPU kernels use, chosen once per process and
// switchable through the C ABI (bnb_backend_select_variant).
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

// True if this CPU can run the AVX-512 path and has AVX512-BF16. Not a path of
// its own: the AVX-512 path uses it where it pays (the 4-bit matmul's bf16
// tiles), and BNB_CPU_ISA or bnb_backend_select_variant rule it out with the
// AVX-512 path.
bool cpu_has_avx512_bf16();

// True if the int8 dot-product instruction of `isa` is there: AVX512-VNNI for the
// AVX-512 path, AVX-VNNI for the AVX2 path (never for scalar). Not a path of its
// own either; the environment variable BNB_CPU_VNNI=0 rules both out, so that CI
// can run the int8 kernels without them on a CPU that has them.
bool cpu_has_int8_vnni(CpuIsa isa);

}  // namespace bnb::cpu

namespace bnb::cpu {

// The backend table's variant queries (bnb_backend_variant and friends in the C
// ABI): the path's name, whether `name` can run here, and switching to it.
const char* active_variant();
int variant_supported(const char* name);
bnb_status select_variant(const char* name);

}  // namespace bnb::cpu
