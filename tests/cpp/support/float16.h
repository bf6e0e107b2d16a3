// fp16 and bf16 <-> float32 for tests, written independently of the library's
// conversions so that tests can check them.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace bnb_test {

inline float half_to_float(uint16_t half) {
    const int exponent = (half >> 10) & 0x1f;
    const int mantissa = half & 0x3ff;
    const float magnitude = exponent == 0x1f ? (mantissa != 0 ? NAN : INFINITY)
                            : exponent == 0  ? std::ldexp(static_cast<float>(mantissa), -24)
                                             : std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
    return (half & 0x8000) ? -magnitude : magnitude;
}

// Round to nearest even through double: a float32 holds at most 24 significant
// bits, so the one rounding to fp16's 11 is exact in double arithmetic.
inline uint16_t float_to_half(float value) {
    const uint16_t sign = (std::bit_cast<uint32_t>(value) >> 16) & 0x8000u;
    if (std::isnan(value)) return static_cast<uint16_t>(sign | 0x7e00u);
    const double magnitude = std::fabs(static_cast<double>(value));
    if (magnitude >= 65520.0) return static_cast<uint16_t>(sign | 0x7c00u);
    int exponent = 0;
    std::frexp(magnitude, &exponent);                                    // magnitude in [2^(e-1), 2^e)
    const int quantum = std::max(exponent - 11, -24);                    // 2^quantum: fp16's spacing there
    const double units = std::nearbyint(std::ldexp(magnitude, -quantum));  // ties to even
    const double rounded = std::ldexp(units, quantum);
    if (rounded == 0.0) return sign;
    int rounded_exponent = 0;
    const double fraction = std::frexp(rounded, &rounded_exponent);  // rounded = fraction * 2^e, fraction in [0.5, 1)
    if (rounded_exponent < -13) return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::ldexp(rounded, 24)));
    const uint16_t mantissa = static_cast<uint16_t>(std::ldexp(fraction, 11)) & 0x3ffu;
    return static_cast<uint16_t>(sign | ((rounded_exponent + 14) << 10) | mantissa);
}

inline float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

// Round to nearest even (finite values).
inline uint16_t float_to_bf16(float value) {
    const uint32_t bits = std::bit_cast<uint32_t>(value);
    return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace bnb_test
