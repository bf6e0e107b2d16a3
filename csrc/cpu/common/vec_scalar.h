// The scalar vector layer: one lane, plain C++. The kernels compiled over it
// are the reference that every vector path must match byte for byte, and the
// path for CPUs without AVX2; each primitive is the reference operation itself
// (to_float, flush_denormal, search_code, nf4_code, ...).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "codebooks.h"
#include "common/code_search.h"
#include "common/float_types.h"
#include "common/lanes.h"

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

// Dequantization looks every element up in the code itself.
inline constexpr int64_t kCodeStep = 1;

struct CodeLookup {
    const float* code;
};

struct CodeValues {
    Vec part[1];
};

inline CodeLookup load_code_lookup(const float* code) { return {code}; }

template <typename Lanes>
inline CodeValues lookup_codes(const CodeLookup& lookup, const uint8_t* codes, Lanes) {
    return {{flush_denormal(lookup.code[*codes])}};
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
    return from_float<T>(ftz_mul(Q == BNB_QUANT_NF4 ? kNf4Values[code] : fp4_value(code), table.flushed_scale));
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

}  // namespace bnb::cpu::scalar
