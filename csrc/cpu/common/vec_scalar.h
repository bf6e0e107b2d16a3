// The scalar vector layer: one lane, plain C++. The kernels compiled over it
// are the reference that every vector path must match byte for byte, and the
// path for CPUs without AVX2; each primitive is the reference operation itself
// (to_float, flush_denormal, search_code, nf4_code, ...).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "codebooks.h"
#include "common/code_search.h"
#include "common/float_types.h"
#include "common/lanes.h"
#include "common/rcp_approx.h"

#define BNB_CPU_ISA scalar
#define BNB_CPU_KERNEL

namespace bnb::cpu::scalar {

inline constexpr int64_t kLanes = 1;
using Vec = float;
using Ints = int32_t;

// Quantizers convert fp16 input to float32 once per chunk, not in both passes
// (absmax, codes): without F16C, to_float(Half) is a dozen instructions.
template <typename T>
inline constexpr bool kConvertOnce = std::is_same_v<T, Half>;

// ---- elements <-> lanes ----------------------------------------------------------

template <typename T>
inline Vec load(const T* p, Full) { return to_float(*p); }

template <typename T>
inline Vec load(const T* p, Partial lanes) { return has_lane(lanes, 0) ? to_float(*p) : 0.0f; }

template <typename T>
inline void store(T* p, Vec x, Full) { *p = from_float<T>(x); }

template <typename T>
inline void store(T* p, Vec x, Partial lanes) {
    if (has_lane(lanes, 0)) *p = from_float<T>(x);
}

// Missing lanes of a partial step become 0.0.
inline Vec keep_lanes(Vec x, Full) { return x; }
inline Vec keep_lanes(Vec x, Partial lanes) { return has_lane(lanes, 0) ? x : 0.0f; }

// ---- float32 arithmetic with CUDA's flush-to-zero --------------------------------

inline Vec broadcast(float x) { return x; }
inline Vec zero() { return 0.0f; }
inline Vec flush(Vec x) { return flush_denormal(x); }
// One lane is a float: the reference canonical_nan itself (visible beside the
// overloads kernels add, such as the optimizers' States).
using bnb::cpu::canonical_nan;
inline Vec mul(Vec a, Vec b) { return a * b; }
inline Vec add(Vec a, Vec b) { return a + b; }
// a * b + acc in two roundings: no FMA instruction to rely on (the x86 layers fuse).
inline Vec mul_add(Vec a, Vec b, Vec acc) { return a * b + acc; }
inline Vec max(Vec a, Vec b) { return a > b ? a : b; }  // a NaN `a` loses, as in max_ps
inline float reduce_max(Vec x) { return x; }
inline Vec flushed_magnitude(Vec x) { return std::fabs(flush_denormal(x)); }

// ---- 8-bit blockwise -------------------------------------------------------------

struct CodeSearch {
    const float* code;
};

inline CodeSearch load_code_search(const float* code, const CodeSearchTables&) { return {code}; }
inline Ints search_codes(const CodeSearch& search, Vec s) { return search_code(search.code, s); }
template <typename Lanes>
inline void store_code_bytes(uint8_t* p, Ints codes, Lanes) { *p = static_cast<uint8_t>(codes); }

// The sign fix of the optimizers' signed states: a code whose value has the
// other sign than `value` (bit `code` of negative_code_bits set for a negative
// value) moves one step toward value's side, wrapping as a byte does.
inline Ints fix_code_sign(Ints code, Vec value, const uint32_t* negative_code_bits) {
    const bool code_negative = (negative_code_bits[code >> 5] >> (code & 31)) & 1u;
    if (code_negative != std::signbit(value)) code = (code + (value > 0.0f ? 1 : -1)) & 255;
    return code;
}

// Dequantization looks every element up in the code itself, four a step: the
// compiler packs four independent lookups' arithmetic into SSE, which it did not
// for a one-element step (fp32 dequantize_blockwise 1.4x slower). bfloat16
// output is the exception, one a step: four measured 1.19x slower there.
inline constexpr int64_t kCodeStep = 4;
template <typename T>
inline constexpr int64_t kCodeStepFor = std::is_same_v<T, BFloat16> ? 1 : kCodeStep;

struct CodeLookup {
    const float* code;
};

struct CodeValues {
    Vec part[kCodeStep];
};

inline CodeLookup load_code_lookup(const float* code) { return {code}; }

// The codes of one step of `Step` elements (at most kCodeStep).
template <int64_t Step = kCodeStep, typename Lanes>
inline CodeValues lookup_codes(const CodeLookup& lookup, const uint8_t* codes, Lanes lanes) {
    static_assert(Step >= 1 && Step <= kCodeStep);
    CodeValues values{};
    for (int64_t j = 0; j < Step; ++j) {
        values.part[j] = has_lane(lanes, j) ? flush_denormal(lookup.code[codes[j]]) : 0.0f;
    }
    return values;
}

// No table of a block's 256 results: the reference computes every element.
template <typename T>
using ResultTableFor = void;

// ---- 4-bit NF4 / FP4 -------------------------------------------------------------

template <bnb_quant_type Q>
inline Ints encode(Vec s) { return Q == BNB_QUANT_NF4 ? nf4_code(s) : fp4_code(s); }

// The codes of 2 consecutive elements -> 1 byte, the first in the high nibble.
template <typename Lanes>
inline void store_nibbles(uint8_t* p, Ints first, Ints second, Lanes) {
    *p = static_cast<uint8_t>((first << 4) | second);
}

template <typename T>
inline constexpr int64_t kNibbleStep = 2;

template <typename T, bnb_quant_type Q>
struct NibbleTable {
    float flushed_scale;
};

template <typename T, bnb_quant_type Q>
inline NibbleTable<T, Q> nibble_table(float flushed_scale) { return {flushed_scale}; }

template <typename T, bnb_quant_type Q>
inline T decode(const NibbleTable<T, Q>& table, uint8_t code) {
    return from_float<T>(canonical_nan(ftz_mul(Q == BNB_QUANT_NF4 ? kNf4Values[code] : fp4_value(code), table.flushed_scale)));
}

// The 2 elements of one byte (the first only, for the odd last element of n).
template <typename T, bnb_quant_type Q, typename Lanes>
inline void store_decoded(T* out, const NibbleTable<T, Q>& table, const uint8_t* packed, Lanes lanes) {
    out[0] = decode(table, static_cast<uint8_t>(*packed >> 4));
    if (has_lane(lanes, 1)) out[1] = decode(table, static_cast<uint8_t>(*packed & 0x0f));
}

// ---- 4-bit matmul (gemm_4bit) --------------------------------------------------

// Rows of A per micro-kernel call: 4 x 4 sums.
inline constexpr int kMatmulRowsOfA = 4;

// sums[i] += the lane sum of the i-th vector.
inline void add_lane_sums4(float* sums, Vec a, Vec b, Vec c, Vec d) {
    sums[0] += a;
    sums[1] += b;
    sums[2] += c;
    sums[3] += d;
}

// A block's 16 weights, flush(code[i] * scale), for any 16-entry code.
struct CodeTable16 {
    float weights[16];
};

inline CodeTable16 load_code_table16(const float* code, float flushed_scale) {
    CodeTable16 table;
    for (int i = 0; i < 16; ++i) table.weights[i] = flush_denormal(code[i] * flushed_scale);
    return table;
}

// 8 bytes -> their 16 weights; byte i holds weight 2i in its high nibble, 2i + 1 in its low one.
inline void dequantize16(const uint8_t* bytes, const CodeTable16& table, float* out) {
    for (int i = 0; i < 8; ++i) {
        out[2 * i] = table.weights[bytes[i] >> 4];
        out[2 * i + 1] = table.weights[bytes[i] & 0x0f];
    }
}

// ---- LLM.int8() ----------------------------------------------------------------

// a * b + acc rounded once, on every layer (the products' rescale must be one FMA).
inline Vec fused_mul_add(Vec a, Vec b, Vec acc) { return std::fma(a, b, acc); }
inline Vec div(Vec a, Vec b) { return a / b; }
inline Vec magnitude(Vec x) { return std::fabs(x); }

// x where !(mag >= limit), so also where mag is NaN; +0 where mag >= limit.
inline Vec zero_at_or_above(Vec mag, Vec limit, Vec x) { return mag >= limit ? 0.0f : x; }

// Bit k set where lane k has mag >= limit.
inline uint32_t lanes_at_or_above(Vec mag, Vec limit) { return mag >= limit ? 1u : 0u; }

// The larger of two magnitudes (sign bits clear) compared as integers, so that a
// NaN wins over everything (torch's amax propagates NaN).
inline Vec max_magnitude(Vec a, Vec b) { return float_bits(a) > float_bits(b) ? a : b; }
inline float reduce_max_magnitude(Vec x) { return x; }

// x rounded to T and widened back (the multiply by 127 that torch does in T).
template <typename T>
inline Vec rounded_to(Vec x) { return to_float(from_float<T>(x)); }

// Codes of LLM.int8(): round half to even, NaN -> 0, clamped to +-127.
inline Ints round_to_codes(Vec x) {
    if (std::isnan(x)) return 0;
    return static_cast<Ints>(std::nearbyint(std::clamp(x, -127.0f, 127.0f)));
}

template <typename Lanes>
inline void store_codes(int8_t* p, Ints codes, Lanes) { *p = static_cast<int8_t>(codes); }

template <typename Lanes>
inline Vec load_as_float(const int8_t* p, Lanes) { return static_cast<float>(*p); }

template <typename Lanes>
inline Vec load_as_float(const int32_t* p, Lanes) { return static_cast<float>(*p); }

// Rows of A against rows of B per int8 micro-kernel call.
inline constexpr int kInt8RowsOfA = 4;
inline constexpr int kInt8RowsOfB = 4;

// int32 arithmetic that wraps as the vector instructions do (the product is
// exact modulo 2^32, the result type's range).
inline int32_t wrapping_add(int32_t a, int32_t b) {
    return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

inline Ints zero_ints() { return 0; }
inline int32_t reduce_add(Ints x) { return x; }

inline void add_int_lane_sums4(int32_t* sums, Ints a, Ints b, Ints c, Ints d) {
    sums[0] = wrapping_add(sums[0], a);
    sums[1] = wrapping_add(sums[1], b);
    sums[2] = wrapping_add(sums[2], c);
    sums[3] = wrapping_add(sums[3], d);
}

// The reference int8 dot product: one element per step, exact.
struct Int8Dot {
    static constexpr int64_t kStep = 1;
    static constexpr bool kOffsetsB = false;  // no correction term (see vec_avx512.h)

    template <typename Lanes>
    static Ints load_a(const int8_t* p, Lanes) { return *p; }
    template <typename Lanes>
    static Ints load_b(const int8_t* p, Lanes) { return *p; }
    static Ints dot(Ints acc, Ints a, Ints b) { return wrapping_add(acc, a * b); }
    static Ints sum_a(Ints acc, Ints a) { return wrapping_add(acc, a); }
};

// ---- optimizers ------------------------------------------------------------------

// Per-lane conditions: bool here, a vector compare mask on the x86 layers.
using Mask = bool;

inline Mask is_finite(Vec x) { return std::isfinite(x); }
inline Mask is_zero(Vec x) { return x == 0.0f; }
inline Mask is_greater(Vec a, Vec b) { return a > b; }  // false where either is NaN
inline Vec select(Mask m, Vec if_true, Vec if_false) { return m ? if_true : if_false; }

// The correctly rounded square root (sqrtf of the CUDA build is approximate, see
// the optimizer kernels for why this stays within the tolerance).
inline Vec square_root(Vec x) { return std::sqrt(x); }

// rcp.approx.ftz.f32 per lane (rcp_approx_ftz).
inline Vec reciprocal_approx(Vec x) { return rcp_approx_ftz(x); }

}  // namespace bnb::cpu::scalar
