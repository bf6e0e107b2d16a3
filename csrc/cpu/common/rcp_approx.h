#pragma once

#include <cstdint>
#include <limits>

#include "common/float_types.h"

// The 2 MiB table is linked in as raw bytes (see csrc/cpu/common/rcp_table.S).
extern "C" __attribute__((visibility("hidden"))) const uint8_t bnb_rcp_approx_delta_table[];

namespace bnb::cpu {

// Bit-exact emulation of the PTX instruction rcp.approx.ftz.f32, which is what
// `1.0f / x` compiles to in upstream's CUDA build. Quantizers multiply by this
// reciprocal, so matching CUDA's bytes on the CPU needs it. The measured table
// (data/rcp_approx_f32_delta.bin, shared/golden/README.md) holds the ulp offset of
// the approximation from the correctly rounded reciprocal for each mantissa.
//
// Inline because the table load is usually a cache miss (2 MiB, indexed by the
// mantissa of a block's absmax): the vector kernels compute many blocks'
// reciprocals in one loop so that those misses overlap.
inline float rcp_approx_ftz(float x) {
    const uint32_t bits = float_bits(x);
    const uint32_t sign = bits & 0x80000000u;
    const uint32_t exponent = (bits >> 23) & 0xffu;
    const uint32_t mantissa = bits & 0x7fffffu;
    if (exponent == 0) return bits_float(sign | 0x7f800000u);  // zero or flushed subnormal
    if (exponent == 0xffu) {
        return mantissa != 0 ? std::numeric_limits<float>::quiet_NaN() : bits_float(sign);
    }
    const float exact = static_cast<float>(1.0 / static_cast<double>(x));
    if ((float_bits(exact) & 0x7f800000u) == 0) return bits_float(sign);  // subnormal result flushed
    const uint32_t entry = (bnb_rcp_approx_delta_table[mantissa >> 2] >> (2 * (mantissa & 3u))) & 3u;
    return bits_float(float_bits(exact) + entry - 1u);
}

}  // namespace bnb::cpu
