// How a CPU kernel family is built once per instruction set and chosen at run
// time (the idea of ATen's DispatchStub: one kernel source, one build per ISA).
//
// A family folder csrc/cpu/<family>/ holds
//   kernels.h    the kernels, written once over the vector layer (Vec, load,
//                store, ... of common/vec_<isa>.h), inside
//                `namespace bnb::cpu::BNB_CPU_ISA`, every function and lambda
//                that touches vectors marked BNB_CPU_KERNEL
//                (`[&](int64_t i, auto lanes) BNB_CPU_KERNEL { ... }`), and at
//                its end the definition of the family's kernel table;
//   scalar.cpp   #include "common/vec_scalar.h", then "<family>/kernels.h";
//   avx2.cpp     the same with common/vec_avx2.h;
//   avx512.cpp   the same with common/vec_avx512.h;
//   entry.cpp    the backend slots: checks, threads, then the table of the
//                active path, BNB_CPU_ACTIVE_KERNELS(table);
//   <family>.h   the slots, the table's type, and
//                BNB_CPU_DECLARE_ISA_KERNELS(TableType, table).
// csrc/cpu/CMakeLists.txt compiles every csrc/cpu/*/*.cpp, so a new family
// needs no CMake edit; off x86-64 it leaves out avx2.cpp and avx512.cpp (by
// those names) and defines BNB_CPU_SCALAR_ONLY.
//
// Instruction sets come from target attributes (BNB_CPU_KERNEL, set by the
// vector header), not from per-file flags such as -mavx512f. With a per-file
// flag every inline function and template that such a file instantiates from a
// shared header (<algorithm>, common/float_types.h, rcp_approx_ftz) would be
// emitted with AVX-512 instructions as a COMDAT copy, and the linker keeps any
// one of the copies: a scalar caller on a CPU without AVX-512 could run it. An
// ISA namespace protects only what is inside it. With the attribute, only the
// marked functions, all in the ISA's namespace, hold the ISA's instructions;
// shared helpers compile for the baseline and are inlined into them. A
// forgotten mark is a compile error (an intrinsic does not inline into an
// unmarked function), never a silent hazard.
#pragma once

#include "common/cpu_isa.h"

// Declares the family's kernel table `name` of type `Type` in each ISA
// namespace (defined at the end of the family's kernels.h).
#define BNB_CPU_DECLARE_ISA_KERNELS(Type, name)  \
    namespace scalar {                           \
    extern const Type name;                      \
    }                                            \
    namespace avx2 {                             \
    extern const Type name;                      \
    }                                            \
    namespace avx512 {                           \
    extern const Type name;                      \
    }

#if defined(BNB_CPU_SCALAR_ONLY)
#define BNB_CPU_ACTIVE_KERNELS(name) (::bnb::cpu::scalar::name)
#else
#define BNB_CPU_ACTIVE_KERNELS(name) \
    (::bnb::cpu::for_active_isa(::bnb::cpu::scalar::name, ::bnb::cpu::avx2::name, ::bnb::cpu::avx512::name))
#endif

namespace bnb::cpu {

template <typename Kernels>
const Kernels& for_active_isa(const Kernels& scalar, const Kernels& avx2, const Kernels& avx512) {
    switch (active_isa()) {
        case CpuIsa::kAvx512: return avx512;
        case CpuIsa::kAvx2: return avx2;
        case CpuIsa::kScalar: break;
    }
    return scalar;
}

}  // namespace bnb::cpu
