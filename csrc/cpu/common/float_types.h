// Scalar element types of the CPU backend and the one place where a runtime
// bnb_dtype becomes a template instantiation.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb::cpu {

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

inline uint32_t float_bits(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    return bits;
}

inline float bits_float(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

inline float to_float(float value) { return value; }
inline float to_float(BFloat16 value) { return bits_float(static_cast<uint32_t>(value.bits) << 16); }
inline float to_float(Half value) {
    const uint32_t sign = static_cast<uint32_t>(value.bits & 0x8000u) << 16;
    const uint32_t exponent = (value.bits >> 10) & 0x1fu;
    uint32_t mantissa = value.bits & 0x3ffu;
    if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent != 0) return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    if (mantissa == 0) return bits_float(sign);
    // Subnormal half: normalise into a float32 exponent.
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        ++shift;
    }
    return bits_float(sign | ((113u - shift) << 23) | ((mantissa & 0x3ffu) << 13));
}

template <typename T>
T from_float(float value);

template <>
inline float from_float<float>(float value) { return value; }

// The NaN of CUDA's float32 arithmetic: whatever NaN an operation meets or makes,
// its result is this one (measured on the H200, docs/numerics.md). x86 passes an
// operand's NaN on, or makes 0xffc00000, so the kernels store computed values
// through canonical_nan.
inline constexpr uint32_t kCanonicalNanBits = 0x7fffffffu;

inline float canonical_nan(float value) { return value != value ? bits_float(kCanonicalNanBits) : value; }

// Conversions to 16 bits keep a NaN's upper payload bits, made quiet: a 16-bit
// NaN widened and narrowed again is unchanged (a parameter a step skips keeps its
// bits, as upstream's kernels leave it), and canonical_nan narrows to CUDA's 0x7fff.

// Round to nearest even (as __float2bfloat16_rn).
template <>
inline BFloat16 from_float<BFloat16>(float value) {
    const uint32_t bits = float_bits(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<uint16_t>((bits >> 16) | 0x40u)};
    const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    return BFloat16{static_cast<uint16_t>((bits + rounding) >> 16)};
}

// Round to nearest even, with overflow to inf and gradual underflow (as __float2half_rn).
template <>
inline Half from_float<Half>(float value) {
    const uint32_t bits = float_bits(value);
    const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return Half{static_cast<uint16_t>(sign | 0x7e00u | ((magnitude & 0x7fffffu) >> 13))};
    if (magnitude >= 0x477ff000u) return Half{static_cast<uint16_t>(sign | 0x7c00u)};  // rounds to inf
    if (magnitude < 0x38800000u) {
        // Result is subnormal or zero: align the 24-bit significand to 2^-24 units.
        if (magnitude < 0x33000000u) return Half{sign};  // below half of the smallest subnormal
        const uint32_t exponent = magnitude >> 23;
        const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - exponent;  // 14..24
        const uint32_t truncated = significand >> shift;
        const uint32_t remainder = significand & ((1u << shift) - 1u);
        const uint32_t halfway = 1u << (shift - 1u);
        const uint32_t rounded = truncated + ((remainder > halfway || (remainder == halfway && (truncated & 1u))) ? 1u : 0u);
        return Half{static_cast<uint16_t>(sign | rounded)};
    }
    const uint32_t rebased = magnitude - (112u << 23);
    const uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
    return Half{static_cast<uint16_t>(sign | (rounded >> 13))};
}

inline int64_t dtype_bytes(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

// Calls fn(T{}) with T the element type of a float dtype; the core has already
// rejected every other dtype.
template <typename Fn>
decltype(auto) dispatch_float(bnb_dtype dtype, Fn&& fn) {
    switch (dtype) {
        case BNB_DTYPE_FLOAT16: return std::forward<Fn>(fn)(Half{});
        case BNB_DTYPE_BFLOAT16: return std::forward<Fn>(fn)(BFloat16{});
        default: return std::forward<Fn>(fn)(float{});
    }
}

// Calls fn(p as const T*) with T the element type of `dtype`, or with a null
// const float* for an absent buffer (an optional bias), whose dtype is unchecked.
template <typename Fn>
decltype(auto) dispatch_optional_float(bnb_dtype dtype, const void* p, Fn&& fn) {
    if (p == nullptr) return std::forward<Fn>(fn)(static_cast<const float*>(nullptr));
    return dispatch_float(dtype, [&](auto tag) { return fn(static_cast<const decltype(tag)*>(p)); });
}

// Calls fn(T{}, std::integral_constant<bnb_quant_type, Q>{}) with T as in
// dispatch_float and Q the 4-bit quant type (NF4 or FP4, already checked).
template <typename Fn>
void dispatch_float_and_quant_type(bnb_dtype dtype, bnb_quant_type quant_type, Fn&& fn) {
    dispatch_float(dtype, [&](auto tag) {
        if (quant_type == BNB_QUANT_NF4) fn(tag, std::integral_constant<bnb_quant_type, BNB_QUANT_NF4>{});
        else fn(tag, std::integral_constant<bnb_quant_type, BNB_QUANT_FP4>{});
    });
}

// float32 arithmetic as upstream's CUDA build does it (--use_fast_math): subnormal
// operands and results are flushed to a zero of the same sign.
inline float flush_denormal(float value) {
    return (float_bits(value) & 0x7f800000u) == 0 ? bits_float(float_bits(value) & 0x80000000u) : value;
}

inline float ftz_mul(float a, float b) { return flush_denormal(flush_denormal(a) * flush_denormal(b)); }

}  // namespace bnb::cpu
