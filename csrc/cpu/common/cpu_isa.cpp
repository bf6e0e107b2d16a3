#include "common/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#include "status.h"

namespace bnb::cpu {
namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// F16C from CPUID leaf 1 (not every compiler's __builtin_cpu_supports knows it).
bool has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

// AVX-VNNI from CPUID leaf 7, sub-leaf 1, EAX bit 4 (clang before 16 has no
// __builtin_cpu_supports("avxvnni")); the AVX state itself is checked with AVX2.
bool has_avx_vnni() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax & (1u << 4)) != 0;
}
#endif

bool probe(CpuIsa isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    // __builtin_cpu_supports also checks that the OS saves the vector state (XGETBV).
    switch (isa) {
        case CpuIsa::kScalar: return true;
        case CpuIsa::kAvx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
        case CpuIsa::kAvx512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    return false;
#else
    return isa == CpuIsa::kScalar;
#endif
}

bool parse_isa(const char* name, CpuIsa* isa, bool* automatic) {
    *automatic = false;
    if (std::strcmp(name, "scalar") == 0) *isa = CpuIsa::kScalar;
    else if (std::strcmp(name, "avx2") == 0) *isa = CpuIsa::kAvx2;
    else if (std::strcmp(name, "avx512") == 0) *isa = CpuIsa::kAvx512;
    else if (std::strcmp(name, "auto") == 0 || name[0] == '\0') *automatic = true;
    else return false;
    return true;
}

CpuIsa best_supported(CpuIsa cap) {
    for (int level = static_cast<int>(cap); level > 0; --level) {
        if (isa_supported(static_cast<CpuIsa>(level))) return static_cast<CpuIsa>(level);
    }
    return CpuIsa::kScalar;
}

// An unknown or unsupported BNB_CPU_ISA falls back (to auto, or to the best path
// below the one asked for): an environment variable has no caller to report to.
CpuIsa initial_isa() {
    const char* requested = std::getenv("BNB_CPU_ISA");
    CpuIsa isa = CpuIsa::kAvx512;
    bool automatic = true;
    if (requested != nullptr && !parse_isa(requested, &isa, &automatic)) automatic = true;
    return best_supported(automatic ? CpuIsa::kAvx512 : isa);
}

std::atomic<int>& active_isa_slot() {
    static std::atomic<int> slot{static_cast<int>(initial_isa())};
    return slot;
}

}  // namespace

const char* isa_name(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::kScalar: return "scalar";
        case CpuIsa::kAvx2: return "avx2";
        case CpuIsa::kAvx512: return "avx512";
    }
    return "unknown";
}

bool isa_supported(CpuIsa isa) {
    static const bool supported[3] = {probe(CpuIsa::kScalar), probe(CpuIsa::kAvx2), probe(CpuIsa::kAvx512)};
    return supported[static_cast<int>(isa)];
}

CpuIsa active_isa() { return static_cast<CpuIsa>(active_isa_slot().load(std::memory_order_relaxed)); }

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static const bool supported = isa_supported(CpuIsa::kAvx512) && __builtin_cpu_supports("avx512bf16");
    return supported;
#else
    return false;
#endif
}

bool cpu_has_int8_vnni(CpuIsa isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static const bool allowed = [] {
        const char* setting = std::getenv("BNB_CPU_VNNI");
        return setting == nullptr || std::strcmp(setting, "0") != 0;
    }();
    static const bool avx512_vnni = isa_supported(CpuIsa::kAvx512) && __builtin_cpu_supports("avx512vnni");
    static const bool avx_vnni = isa_supported(CpuIsa::kAvx2) && has_avx_vnni();
    switch (isa) {
        case CpuIsa::kAvx512: return allowed && avx512_vnni;
        case CpuIsa::kAvx2: return allowed && avx_vnni;
        case CpuIsa::kScalar: break;
    }
#else
    (void)isa;
#endif
    return false;
}

}  // namespace bnb::cpu

namespace bnb::cpu {

const char* active_variant() { return isa_name(active_isa()); }

int variant_supported(const char* name) {
    CpuIsa isa;
    bool automatic;
    if (!parse_isa(name, &isa, &automatic)) return 0;
    return automatic || isa_supported(isa) ? 1 : 0;
}

bnb_status select_variant(const char* name) {
    CpuIsa isa;
    bool automatic;
    if (!parse_isa(name, &isa, &automatic)) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    std::string("name must be \"scalar\", \"avx2\", \"avx512\" or \"auto\", got \"") + name + "\"");
    }
    if (automatic) isa = best_supported(CpuIsa::kAvx512);
    if (!isa_supported(isa)) {
        return fail(BNB_STATUS_UNSUPPORTED, std::string("name: this CPU cannot run the ") + name + " path");
    }
    active_isa_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
