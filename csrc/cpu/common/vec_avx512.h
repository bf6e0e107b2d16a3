// The AVX-512 (F, BW, VL, DQ) vector layer: 16 float32 lanes, masks for
// partial steps, and tables held in registers (permutes) where AVX2 gathers.
// The arithmetic is the scalar reference's, step for step (vec_scalar.h):
// subnormals flushed by bit tests, strict > thresholds, RNE to 16 bits.
#pragma once

#include "common/vec_x86.h"

#define BNB_CPU_ISA avx512
#define BNB_CPU_KERNEL __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace bnb::cpu::avx512 {

inline constexpr int64_t kLanes = 16;
using Vec = __m512;
using Ints = __m512i;

// Conversions are one instruction: quantizers read their input in both passes.
template <typename T>
inline constexpr bool kConvertOnce = false;

BNB_CPU_KERNEL inline __mmask16 first_lanes16(int64_t count) {
    return count >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << count) - 1u);
}

BNB_CPU_KERNEL inline __mmask32 first_lanes32(int64_t count) {
    return count >= 32 ? static_cast<__mmask32>(0xffffffffu) : static_cast<__mmask32>((1u << count) - 1u);
}

BNB_CPU_KERNEL inline __mmask16 mask16(Full) { return static_cast<__mmask16>(0xffff); }
BNB_CPU_KERNEL inline __mmask16 mask16(Partial lanes) { return first_lanes16(lanes.count); }
BNB_CPU_KERNEL inline __mmask32 mask32(Full) { return static_cast<__mmask32>(0xffffffffu); }
BNB_CPU_KERNEL inline __mmask32 mask32(Partial lanes) { return first_lanes32(lanes.count); }

// The bytes that hold the nibbles of a step of `step` elements.
BNB_CPU_KERNEL inline __mmask16 nibble_bytes(Full, int64_t step) { return first_lanes16(step / 2); }
BNB_CPU_KERNEL inline __mmask16 nibble_bytes(Partial lanes, int64_t) { return first_lanes16((lanes.count + 1) / 2); }

// ---- elements <-> lanes ------------------------------------------------------------

// Whole steps load without a mask: GCC takes a masked load for a call that may
// read any memory, which keeps a loop's accumulators in memory (the 4-bit
// matmul's micro-kernel); a plain load lets them stay in registers.
BNB_CPU_KERNEL inline Vec load(const float* p, Full) { return _mm512_loadu_ps(p); }

template <typename Lanes>
BNB_CPU_KERNEL inline Vec load(const float* p, Lanes lanes) { return _mm512_maskz_loadu_ps(mask16(lanes), p); }

// 16 16-bit elements, unconverted.
BNB_CPU_KERNEL inline __m256i load_words16(const void* p, Full) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

template <typename Lanes>
BNB_CPU_KERNEL inline __m256i load_words16(const void* p, Lanes lanes) {
    return _mm256_maskz_loadu_epi16(mask16(lanes), p);
}

// Half -> float32 is exact (subnormal halves included) in hardware, as in to_float.
template <typename Lanes>
BNB_CPU_KERNEL inline Vec load(const Half* p, Lanes lanes) { return _mm512_cvtph_ps(load_words16(p, lanes)); }

template <typename Lanes>
BNB_CPU_KERNEL inline Vec load(const BFloat16* p, Lanes lanes) {
    const __m512i widened = _mm512_cvtepu16_epi32(load_words16(p, lanes));
    return _mm512_castsi512_ps(_mm512_slli_epi32(widened, 16));
}

// from_float<Half>: round to nearest even in hardware, which keeps a NaN's upper
// payload bits and makes it quiet, as from_float does.
BNB_CPU_KERNEL inline __m256i half_bits(Vec x) {
    return _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// from_float<BFloat16>: round to nearest even on the bits; a NaN keeps its upper
// half with the quiet bit set.
BNB_CPU_KERNEL inline __m256i bfloat16_bits(Vec x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(rounded);
}

template <typename T>
BNB_CPU_KERNEL inline __m256i bits16(Vec x) {
    if constexpr (std::is_same_v<T, Half>) return half_bits(x);
    else return bfloat16_bits(x);
}

template <typename Lanes>
BNB_CPU_KERNEL inline void store(float* p, Vec x, Lanes lanes) { _mm512_mask_storeu_ps(p, mask16(lanes), x); }

template <typename T, typename Lanes>
BNB_CPU_KERNEL inline void store(T* p, Vec x, Lanes lanes) { _mm256_mask_storeu_epi16(p, mask16(lanes), bits16<T>(x)); }

// Missing lanes of a partial step become 0.0.
template <typename Lanes>
BNB_CPU_KERNEL inline Vec keep_lanes(Vec x, Lanes lanes) { return _mm512_maskz_mov_ps(mask16(lanes), x); }

// ---- float32 arithmetic with CUDA's flush-to-zero ----------------------------------

BNB_CPU_KERNEL inline Vec broadcast(float x) { return _mm512_set1_ps(x); }
BNB_CPU_KERNEL inline Vec zero() { return _mm512_setzero_ps(); }
BNB_CPU_KERNEL inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
BNB_CPU_KERNEL inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
// a * b + acc, rounded once.
BNB_CPU_KERNEL inline Vec mul_add(Vec a, Vec b, Vec acc) { return _mm512_fmadd_ps(a, b, acc); }
BNB_CPU_KERNEL inline Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
BNB_CPU_KERNEL inline float reduce_max(Vec x) { return _mm512_reduce_max_ps(x); }

BNB_CPU_KERNEL inline Vec flush(Vec x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __mmask16 keep = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x7f800000));
    const __m512i signed_zero = _mm512_and_si512(bits, _mm512_set1_epi32(static_cast<int>(0x80000000u)));
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(signed_zero, keep, bits));
}

// Every NaN lane becomes kCanonicalNanBits (float_types.h).
BNB_CPU_KERNEL inline Vec canonical_nan(Vec x) {
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q),
                              _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(kCanonicalNanBits))));
}

BNB_CPU_KERNEL inline Vec flushed_magnitude(Vec x) {
    const __m512i bits = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
    const __mmask16 keep = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(_mm512_maskz_mov_epi32(keep, bits));
}

// Child of each node of an implicit binary tree: 2k + 1 if s > the node's value, else 2k.
BNB_CPU_KERNEL inline Ints descend(Ints node, Vec s, Vec value) {
    const __mmask16 above = _mm512_cmp_ps_mask(s, value, _CMP_GT_OQ);
    const __m512i doubled = _mm512_add_epi32(node, node);
    return _mm512_mask_add_epi32(doubled, above, doubled, _mm512_set1_epi32(1));
}

// ---- 8-bit blockwise ----------------------------------------------------------------

// A 128-entry float table in 8 registers, looked up by the low 7 bits of an index.
struct Table128 {
    __m512 part[8];
};

BNB_CPU_KERNEL inline Table128 load_table128(const float* values) {
    Table128 table;
    for (int j = 0; j < 8; ++j) table.part[j] = _mm512_load_ps(values + 16 * j);
    return table;
}

BNB_CPU_KERNEL inline Vec lookup128(const Table128& table, Ints index, __mmask16 bit5, __mmask16 bit6) {
    const __m512 low = _mm512_mask_blend_ps(bit5, _mm512_permutex2var_ps(table.part[0], index, table.part[1]),
                                            _mm512_permutex2var_ps(table.part[2], index, table.part[3]));
    const __m512 high = _mm512_mask_blend_ps(bit5, _mm512_permutex2var_ps(table.part[4], index, table.part[5]),
                                             _mm512_permutex2var_ps(table.part[6], index, table.part[7]));
    return _mm512_mask_blend_ps(bit6, low, high);
}

// The search tables of code_search.h, all in registers.
struct CodeSearch {
    Table128 nodes;  // node_value: nodes 1 .. 127 of the descent
    Table128 final_value;
    Table128 mid_above;
    Table128 mid_below;
};

BNB_CPU_KERNEL inline CodeSearch load_code_search(const float*, const CodeSearchTables& tables) {
    return {load_table128(tables.node_value), load_table128(tables.final_value), load_table128(tables.mid_above),
            load_table128(tables.mid_below)};
}

// search_code for 16 values. NaN compares false everywhere and ends at index 0,
// as in the reference.
BNB_CPU_KERNEL inline Ints search_codes(const CodeSearch& search, Vec s) {
    const __m512i bit5_value = _mm512_set1_epi32(32);
    const __m512i bit6_value = _mm512_set1_epi32(64);
    __m512i node = _mm512_set1_epi32(1);
    for (int depth = 0; depth < 5; ++depth) {  // nodes 1 .. 31
        node = descend(node, s, _mm512_permutex2var_ps(search.nodes.part[0], node, search.nodes.part[1]));
    }
    node = descend(node, s, _mm512_permutex2var_ps(search.nodes.part[2], node, search.nodes.part[3]));  // 32 .. 63
    const __mmask16 depth6_bit5 = _mm512_test_epi32_mask(node, bit5_value);  // nodes 64 .. 127
    node = descend(node, s, _mm512_mask_blend_ps(depth6_bit5,
                                                 _mm512_permutex2var_ps(search.nodes.part[4], node, search.nodes.part[5]),
                                                 _mm512_permutex2var_ps(search.nodes.part[6], node, search.nodes.part[7])));
    // node = 128 + B, final pivot p = 2B.
    const __mmask16 bit5 = _mm512_test_epi32_mask(node, bit5_value);
    const __mmask16 bit6 = _mm512_test_epi32_mask(node, bit6_value);
    const __m512 value = lookup128(search.final_value, node, bit5, bit6);
    const __mmask16 above_value = _mm512_cmp_ps_mask(s, value, _CMP_GT_OQ);
    const __mmask16 take_upper =
        _mm512_mask_cmp_ps_mask(above_value, s, lookup128(search.mid_above, node, bit5, bit6), _CMP_GT_OQ);
    const __mmask16 take_lower = _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(~above_value), s,
                                                         lookup128(search.mid_below, node, bit5, bit6), _CMP_LT_OQ);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i index = _mm512_add_epi32(node, node);  // 256 + p: the byte store keeps p
    index = _mm512_mask_add_epi32(index, take_upper, index, one);
    return _mm512_mask_sub_epi32(index, take_lower, index, one);
}

template <typename Lanes>
BNB_CPU_KERNEL inline void store_code_bytes(uint8_t* p, Ints codes, Lanes lanes) {
    _mm_mask_storeu_epi8(p, mask16(lanes), _mm512_cvtepi32_epi8(codes));
}

// fix_code_sign of vec_scalar.h for 16 lanes (codes may carry search_codes'
// 256 offset: only the low byte counts).
BNB_CPU_KERNEL inline Ints fix_code_sign(Ints codes, Vec values, const uint32_t* negative_code_bits) {
    const __m512i code = _mm512_and_si512(codes, _mm512_set1_epi32(255));
    const __m512i words = _mm512_permutexvar_epi32(
        _mm512_srli_epi32(code, 5), _mm512_castsi256_si512(_mm256_loadu_si256(
                                        reinterpret_cast<const __m256i*>(negative_code_bits))));
    const __mmask16 code_negative = _mm512_test_epi32_mask(
        _mm512_srlv_epi32(words, _mm512_and_si512(code, _mm512_set1_epi32(31))), _mm512_set1_epi32(1));
    const __mmask16 value_negative = _mm512_movepi32_mask(_mm512_castps_si512(values));
    const __mmask16 mismatch = static_cast<__mmask16>(code_negative ^ value_negative);
    const __m512i toward_value = _mm512_mask_blend_epi32(
        _mm512_cmp_ps_mask(values, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_epi32(-1), _mm512_set1_epi32(1));
    return _mm512_and_si512(_mm512_mask_add_epi32(code, mismatch, code, toward_value), _mm512_set1_epi32(255));
}

// Dequantization looks up 32 codes per step in the 256-entry code, flushed once
// and held as two tables of 16-bit halves (upper and lower half of each
// float32) in 8 registers each: a word permute looks up 32 lanes in 64 entries,
// twice the lanes of a float32 permute over half the entries, so 32 values cost
// 2 x (4 permutes + 3 blends) instead of 2 x (8 permutes + 7 blends).
inline constexpr int64_t kCodeStep = 32;
template <typename T>
inline constexpr int64_t kCodeStepFor = kCodeStep;

struct CodeLookup {
    __m512i upper[8];
    __m512i lower[8];
};

struct CodeValues {
    Vec part[2];  // elements 0-15, 16-31
};

BNB_CPU_KERNEL inline CodeLookup load_code_lookup(const float* code) {
    CodeLookup halves;
    for (int j = 0; j < 8; ++j) {
        const __m512i first = _mm512_castps_si512(flush(_mm512_loadu_ps(code + 32 * j)));
        const __m512i second = _mm512_castps_si512(flush(_mm512_loadu_ps(code + 32 * j + 16)));
        halves.upper[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(_mm512_srli_epi32(first, 16))),
                                             _mm512_cvtepi32_epi16(_mm512_srli_epi32(second, 16)), 1);
        halves.lower[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(first)),
                                             _mm512_cvtepi32_epi16(second), 1);
    }
    return halves;
}

BNB_CPU_KERNEL inline __m512i lookup_words(const __m512i* table, __m512i index, __mmask32 bit6, __mmask32 bit7) {
    const __m512i low = _mm512_mask_blend_epi16(bit6, _mm512_permutex2var_epi16(table[0], index, table[1]),
                                                _mm512_permutex2var_epi16(table[2], index, table[3]));
    const __m512i high = _mm512_mask_blend_epi16(bit6, _mm512_permutex2var_epi16(table[4], index, table[5]),
                                                 _mm512_permutex2var_epi16(table[6], index, table[7]));
    return _mm512_mask_blend_epi16(bit7, low, high);
}

// Word lane of each of 32 indices, chosen so that interleaving the looked-up
// halves within 128-bit lanes (unpacklo/unpackhi) yields elements 0-15 and
// 16-31 in order: lane position 8L + j holds element 4L + j (j < 4) or
// 16 + 4L + j - 4 (j >= 4).
alignas(64) inline constexpr uint16_t kInterleaveOrder[32] = {0,  1,  2,  3,  16, 17, 18, 19, 4,  5,  6,
                                                               7,  20, 21, 22, 23, 8,  9,  10, 11, 24, 25,
                                                               26, 27, 12, 13, 14, 15, 28, 29, 30, 31};

template <int64_t Step = kCodeStep, typename Lanes>
BNB_CPU_KERNEL inline CodeValues lookup_codes(const CodeLookup& code, const uint8_t* codes, Lanes lanes) {
    static_assert(Step == kCodeStep);
    const __m512i index_words = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask32(lanes), codes));
    const __m512i index = _mm512_permutexvar_epi16(_mm512_load_si512(kInterleaveOrder), index_words);
    const __mmask32 bit6 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(64));
    const __mmask32 bit7 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(128));
    const __m512i upper = lookup_words(code.upper, index, bit6, bit7);
    const __m512i lower = lookup_words(code.lower, index, bit6, bit7);
    return {{_mm512_castsi512_ps(_mm512_unpacklo_epi16(lower, upper)),
             _mm512_castsi512_ps(_mm512_unpackhi_epi16(lower, upper))}};
}

// 16-bit outputs of large blocks: the block's 256 possible results, converted
// once, are a word table; each element is then a single word lookup.
template <typename T>
struct WordResults {
    static constexpr int64_t kMinBlocksize = 256;
    static constexpr int64_t kStep = 32;

    struct Source {
        __m512 part[16];  // the code, flushed
    };

    __m512i words[8];

    BNB_CPU_KERNEL static Source load_source(const float* code) {
        Source source;
        for (int j = 0; j < 16; ++j) source.part[j] = flush(_mm512_loadu_ps(code + 16 * j));
        return source;
    }

    BNB_CPU_KERNEL static WordResults scaled(const Source& code, Vec flushed_scale) {
        WordResults results;
        for (int j = 0; j < 8; ++j) {
            results.words[j] = _mm512_inserti64x4(
                _mm512_castsi256_si512(bits16<T>(canonical_nan(flush(_mm512_mul_ps(code.part[2 * j], flushed_scale))))),
                bits16<T>(canonical_nan(flush(_mm512_mul_ps(code.part[2 * j + 1], flushed_scale)))), 1);
        }
        return results;
    }

    template <typename Lanes>
    BNB_CPU_KERNEL void write(T* out, const uint8_t* codes, Lanes lanes) const {
        const __m512i index = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask32(lanes), codes));
        const __mmask32 bit6 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(64));
        const __mmask32 bit7 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(128));
        _mm512_mask_storeu_epi16(out, mask32(lanes), lookup_words(words, index, bit6, bit7));
    }
};

// float32 outputs look the code up (kCodeStep): a table of float32 results
// would need twice the registers.
template <typename T>
using ResultTableFor = std::conditional_t<std::is_same_v<T, float>, void, WordResults<T>>;

// ---- 4-bit NF4 / FP4 ----------------------------------------------------------------

template <bnb_quant_type Q>
BNB_CPU_KERNEL inline Ints encode(Vec s) {
    if constexpr (Q == BNB_QUANT_NF4) {
        const __m512 tree = _mm512_loadu_ps(kNf4Tree.node);
        __m512i node = _mm512_set1_epi32(1);
        for (int depth = 0; depth < 4; ++depth) node = descend(node, s, _mm512_permutexvar_ps(node, tree));
        return _mm512_and_si512(node, _mm512_set1_epi32(15));
    } else {
        // Sign from s < 0 (so -0 and NaN are positive); clearing the sign bit
        // leaves a NaN a NaN, which exceeds no threshold.
        const __mmask16 negative = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 magnitude = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(0x7fffffff)));
        const __m512 tree = _mm512_loadu_ps(kFp4Tree.node);
        __m512i node = _mm512_set1_epi32(1);
        for (int depth = 0; depth < 3; ++depth) node = descend(node, magnitude, _mm512_permutexvar_ps(node, tree));
        const __m512i code = _mm512_permutexvar_epi32(node, _mm512_loadu_si512(kFp4MagnitudeByCount));
        return _mm512_mask_or_epi32(code, negative, code, _mm512_set1_epi32(8));
    }
}

// 16 codes (one per 32-bit lane) -> 8 bytes, the lower index in the high nibble.
BNB_CPU_KERNEL inline __m128i pack_nibbles(Ints codes) {
    const __m512i pairs = _mm512_or_si512(_mm512_slli_epi64(codes, 4), _mm512_srli_epi64(codes, 32));
    return _mm512_cvtepi64_epi8(pairs);
}

// The codes of 32 consecutive elements -> 16 bytes.
template <typename Lanes>
BNB_CPU_KERNEL inline void store_nibbles(uint8_t* p, Ints first, Ints second, Lanes lanes) {
    const __m128i bytes = _mm_unpacklo_epi64(pack_nibbles(first), pack_nibbles(second));
    _mm_mask_storeu_epi8(p, nibble_bytes(lanes, 2 * kLanes), bytes);
}

// float32 outputs: 16 per step from one register of the block's 16 results;
// 16-bit outputs: the results converted once, looked up as words, 32 per step.
template <typename T>
inline constexpr int64_t kNibbleStep = std::is_same_v<T, float> ? 16 : 32;

template <typename T, bnb_quant_type Q>
struct NibbleTable {
    __m512i words;  // results 0 .. 15 as 16-bit T
};

template <bnb_quant_type Q>
struct NibbleTable<float, Q> {
    __m512 values;
};

// The decode values are hidden from the optimizer, which could otherwise
// compute the FP4 codes 8-15 (negated codes 0-7) as -(m * scale) and flip the
// sign of a NaN product (0 * inf) against the reference.
template <bnb_quant_type Q>
BNB_CPU_KERNEL inline Vec scaled_decode_values(float flushed_scale) {
    __m512 values = _mm512_loadu_ps(decode_values<Q>());
    __asm__("" : "+v"(values));
    return canonical_nan(flush(_mm512_mul_ps(values, _mm512_set1_ps(flushed_scale))));
}

template <typename T, bnb_quant_type Q>
BNB_CPU_KERNEL inline NibbleTable<T, Q> nibble_table(float flushed_scale) {
    if constexpr (std::is_same_v<T, float>) return {scaled_decode_values<Q>(flushed_scale)};
    else return {_mm512_zextsi256_si512(bits16<T>(scaled_decode_values<Q>(flushed_scale)))};
}

template <bnb_quant_type Q, typename Lanes>
BNB_CPU_KERNEL inline void store_decoded(float* out, const NibbleTable<float, Q>& table, const uint8_t* packed,
                                         Lanes lanes) {
    const __m128i bytes = _mm_maskz_loadu_epi8(nibble_bytes(lanes, 16), packed);
    // One byte per 64-bit lane -> its high nibble in the low 32 bits, low nibble above.
    const __m512i byte_lanes = _mm512_cvtepu8_epi64(bytes);
    const __m512i codes = _mm512_or_si512(_mm512_srli_epi64(byte_lanes, 4),
                                          _mm512_slli_epi64(_mm512_and_si512(byte_lanes, _mm512_set1_epi64(15)), 32));
    _mm512_mask_storeu_ps(out, mask16(lanes), _mm512_permutexvar_ps(codes, table.values));
}

template <typename T, bnb_quant_type Q, typename Lanes>
BNB_CPU_KERNEL inline void store_decoded(T* out, const NibbleTable<T, Q>& table, const uint8_t* packed, Lanes lanes) {
    const __m128i bytes = _mm_maskz_loadu_epi8(nibble_bytes(lanes, 32), packed);
    // One byte per 32-bit lane -> its high nibble in the low 16 bits, low nibble above.
    const __m512i byte_lanes = _mm512_cvtepu8_epi32(bytes);
    const __m512i codes = _mm512_or_si512(_mm512_srli_epi32(byte_lanes, 4),
                                          _mm512_slli_epi32(_mm512_and_si512(byte_lanes, _mm512_set1_epi32(15)), 16));
    _mm512_mask_storeu_epi16(out, mask32(lanes), _mm512_permutexvar_epi16(codes, table.words));
}

// ---- 4-bit matmul (gemm_4bit) --------------------------------------------------

// Rows of A per micro-kernel call: 4 x 4 accumulators, 4 rows of A and a
// weight vector take 24 of the 32 registers.
inline constexpr int kMatmulRowsOfA = 4;

// The lower 8 lanes plus the upper 8.
BNB_CPU_KERNEL inline __m256 sum_of_halves(Vec v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}

// sums[i] += the lane sum of the i-th vector.
BNB_CPU_KERNEL inline void add_lane_sums4(float* sums, Vec a, Vec b, Vec c, Vec d) {
    const __m256 ab = _mm256_hadd_ps(sum_of_halves(a), sum_of_halves(b));
    const __m256 cd = _mm256_hadd_ps(sum_of_halves(c), sum_of_halves(d));
    const __m256 abcd = _mm256_hadd_ps(ab, cd);  // per 128-bit half: a, b, c, d
    const __m128 total = _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
    _mm_storeu_ps(sums, _mm_add_ps(_mm_loadu_ps(sums), total));
}

// A block's 16 weights, flush(code[i] * scale), for any 16-entry code, in one
// register: a lookup is one permute.
struct CodeTable16 {
    __m512 weights;
};

BNB_CPU_KERNEL inline CodeTable16 load_code_table16(const float* code, float flushed_scale) {
    return {flush(_mm512_mul_ps(_mm512_loadu_ps(code), _mm512_set1_ps(flushed_scale)))};
}

// The 16 nibbles of 8 bytes, one per byte in order: byte i holds weight 2i in
// its high nibble, 2i + 1 in its low one. The bits above each nibble are left:
// the permutes read only the low 4 bits of an index.
BNB_CPU_KERNEL inline __m128i nibbles16(const uint8_t* bytes) {
    const __m128i packed = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes));
    return _mm_unpacklo_epi8(_mm_srli_epi16(packed, 4), packed);
}

// 8 bytes -> their 16 weights.
BNB_CPU_KERNEL inline void dequantize16(const uint8_t* bytes, const CodeTable16& table, float* out) {
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(nibbles16(bytes)), table.weights));
}

// AVX512-BF16 is no path of its own: the AVX-512 path uses it where the CPU has
// it (cpu_has_avx512_bf16), so only the functions marked BNB_CPU_KERNEL_BF16
// hold its instructions, and they run only after that check.
#define BNB_CPU_KERNEL_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// 32 bf16, unconverted: 16 lanes of pairs, the operand of dot_bf16_pairs (a
// whole step without a mask, as load).
BNB_CPU_KERNEL inline Vec load_bf16_pairs(const BFloat16* p, Full) { return _mm512_loadu_ps(p); }

template <typename Lanes>
BNB_CPU_KERNEL inline Vec load_bf16_pairs(const BFloat16* p, Lanes lanes) {
    return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask32(lanes), p));
}

// acc + a[2i] * w[2i] + a[2i + 1] * w[2i + 1] in each lane i (exact products,
// float32 sums): twice the columns of a float32 FMA per instruction.
BNB_CPU_KERNEL_BF16 inline Vec dot_bf16_pairs(Vec a, Vec w, Vec acc) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(w));
}

// CodeTable16's weights rounded to bf16, as bnb_dequantize_4bit writes them:
// vcvtneps2bf16 rounds as from_float<BFloat16> does for these values (to
// nearest even, a NaN made quiet; subnormals are already flushed).
struct Bf16CodeTable16 {
    __m256i weights;
};

BNB_CPU_KERNEL_BF16 inline Bf16CodeTable16 load_bf16_code_table16(const float* code, float flushed_scale) {
    return {reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(load_code_table16(code, flushed_scale).weights))};
}

BNB_CPU_KERNEL inline void dequantize16(const uint8_t* bytes, const Bf16CodeTable16& table, BFloat16* out) {
    const __m256i index = _mm256_cvtepu8_epi16(nibbles16(bytes));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permutexvar_epi16(index, table.weights));
}

// ---- LLM.int8() ---------------------------------------------------------------------

BNB_CPU_KERNEL inline Vec fused_mul_add(Vec a, Vec b, Vec acc) { return _mm512_fmadd_ps(a, b, acc); }
BNB_CPU_KERNEL inline Vec div(Vec a, Vec b) { return _mm512_div_ps(a, b); }

BNB_CPU_KERNEL inline Vec magnitude(Vec x) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

BNB_CPU_KERNEL inline Vec zero_at_or_above(Vec mag, Vec limit, Vec x) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mag, limit, _CMP_NGE_UQ), x);
}

BNB_CPU_KERNEL inline uint32_t lanes_at_or_above(Vec mag, Vec limit) {
    return _mm512_cmp_ps_mask(mag, limit, _CMP_GE_OQ);
}

BNB_CPU_KERNEL inline Vec max_magnitude(Vec a, Vec b) {
    return _mm512_castsi512_ps(_mm512_max_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}

BNB_CPU_KERNEL inline float reduce_max_magnitude(Vec x) {
    const int bits = _mm512_reduce_max_epi32(_mm512_castps_si512(x));
    float value;
    __builtin_memcpy(&value, &bits, sizeof value);
    return value;
}

template <typename T>
BNB_CPU_KERNEL inline Vec rounded_to(Vec x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else if constexpr (std::is_same_v<T, Half>) return _mm512_cvtph_ps(bits16<T>(x));
    else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits16<T>(x)), 16));
}

BNB_CPU_KERNEL inline Ints round_to_codes(Vec x) {
    const __m512 ordered = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x);
    const __m512 clamped = _mm512_min_ps(_mm512_max_ps(ordered, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    return _mm512_cvt_roundps_epi32(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

template <typename Lanes>
BNB_CPU_KERNEL inline void store_codes(int8_t* p, Ints codes, Lanes lanes) {
    _mm_mask_storeu_epi8(p, mask16(lanes), _mm512_cvtepi32_epi8(codes));
}

template <typename Lanes>
BNB_CPU_KERNEL inline Vec load_as_float(const int8_t* p, Lanes lanes) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask16(lanes), p)));
}

template <typename Lanes>
BNB_CPU_KERNEL inline Vec load_as_float(const int32_t* p, Lanes lanes) {
    return _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask16(lanes), p));
}

// Rows of A against rows of B per int8 micro-kernel call: 4 x 4 accumulators,
// 4 rows of A, a row of B and the offset constant take 22 of the 32 registers
// (3 x 8, 5 x 4 and 6 x 4 measured no faster).
inline constexpr int kInt8RowsOfA = 4;
inline constexpr int kInt8RowsOfB = 4;

BNB_CPU_KERNEL inline Ints zero_ints() { return _mm512_setzero_si512(); }
BNB_CPU_KERNEL inline int32_t reduce_add(Ints x) { return _mm512_reduce_add_epi32(x); }

// The lower 8 lanes plus the upper 8.
BNB_CPU_KERNEL inline __m256i sum_of_int_halves(Ints v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// sums[i] += the lane sum of the i-th vector (wrapping).
BNB_CPU_KERNEL inline void add_int_lane_sums4(int32_t* sums, Ints a, Ints b, Ints c, Ints d) {
    const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(sum_of_int_halves(a), sum_of_int_halves(b)),
                                           _mm256_hadd_epi32(sum_of_int_halves(c), sum_of_int_halves(d)));
    const __m128i total = _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(sums), _mm_add_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sums)), total));
}

BNB_CPU_KERNEL inline __mmask64 first_bytes64(int64_t count) {
    return count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1;
}

// 64 bytes of a row; a partial step's missing bytes are 0.
BNB_CPU_KERNEL inline __m512i load_bytes64(const int8_t* p, Full) { return _mm512_loadu_si512(p); }
BNB_CPU_KERNEL inline __m512i load_bytes64(const int8_t* p, Partial lanes) {
    return _mm512_maskz_loadu_epi8(first_bytes64(lanes.count), p);
}

// Without VNNI: bytes widened to 16 bits, vpmaddwd sums pairs of exact products
// into int32 (vpmaddubsw would saturate its 16-bit pair sums).
struct Int8Dot {
    static constexpr int64_t kStep = 32;
    static constexpr bool kOffsetsB = false;

    BNB_CPU_KERNEL static __m512i load_words(const int8_t* p, Full) {
        return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    BNB_CPU_KERNEL static __m512i load_words(const int8_t* p, Partial lanes) {
        return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(first_lanes32(lanes.count), p));
    }
    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_a(const int8_t* p, Lanes lanes) { return load_words(p, lanes); }
    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_b(const int8_t* p, Lanes lanes) { return load_words(p, lanes); }
    BNB_CPU_KERNEL static Ints dot(Ints acc, Ints a, Ints b) { return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)); }
    BNB_CPU_KERNEL static Ints sum_a(Ints acc, Ints) { return acc; }
};

// AVX512-VNNI is no path of its own: the AVX-512 path uses it where the CPU has
// it (as AVX512-BF16), in functions marked BNB_CPU_KERNEL_VNNI.
#define BNB_CPU_KERNEL_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

// vpdpbusd multiplies unsigned by signed bytes. B enters as B + 128 (its sign
// bit flipped, 0..255) and A as it is, so each sum is A.B + 128 * sum(A): the
// caller subtracts 128 * sum(A) per row of A (kOffsetsB), which sum_a
// accumulates. Padding bytes (0 in both) add 128 * 0. The int32 sums wrap,
// exactly as the correction does, so the result is exact modulo 2^32.
struct Int8DotVnni {
    static constexpr int64_t kStep = 64;
    static constexpr bool kOffsetsB = true;

    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_a(const int8_t* p, Lanes lanes) { return load_bytes64(p, lanes); }
    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_b(const int8_t* p, Lanes lanes) {
        return _mm512_xor_si512(load_bytes64(p, lanes), _mm512_set1_epi8(static_cast<char>(0x80)));
    }
    // In inline assembly: around the intrinsic, GCC 12 copies every accumulator
    // through another register and the stack on each step (twice the time).
    BNB_CPU_KERNEL_VNNI static Ints dot(Ints acc, Ints a, Ints b_offset) {
        __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b_offset), "v"(a));
        return acc;
    }
    BNB_CPU_KERNEL_VNNI static Ints sum_a(Ints acc, Ints a) { return _mm512_dpbusd_epi32(acc, _mm512_set1_epi8(1), a); }
};

// ---- optimizers --------------------------------------------------------------------

// Per-lane conditions as a mask register.
using Mask = __mmask16;

BNB_CPU_KERNEL inline Mask is_finite(Vec x) {
    return _mm512_cmp_ps_mask(magnitude(x), _mm512_set1_ps(std::numeric_limits<float>::infinity()), _CMP_LT_OQ);
}
BNB_CPU_KERNEL inline Mask is_zero(Vec x) { return _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_EQ_OQ); }
BNB_CPU_KERNEL inline Mask is_greater(Vec a, Vec b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
BNB_CPU_KERNEL inline Vec select(Mask m, Vec if_true, Vec if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }

BNB_CPU_KERNEL inline Vec square_root(Vec x) { return _mm512_sqrt_ps(x); }

// rcp_approx_ftz, its table gathered (vec_avx2.h says why the float32
// quotient serves as the reference's double one).
BNB_CPU_KERNEL inline Vec reciprocal_approx(Vec x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i sign = _mm512_and_si512(bits, _mm512_set1_epi32(static_cast<int>(0x80000000u)));
    const __m512i exponent_bits = _mm512_set1_epi32(0x7f800000);
    const __m512i mantissa = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffff));
    const __m512i exponent = _mm512_and_si512(bits, exponent_bits);
    const __m512i exact = _mm512_castps_si512(_mm512_div_ps(_mm512_set1_ps(1.0f), x));
    const __m512i words = _mm512_i32gather_epi32(_mm512_srli_epi32(mantissa, 4), bnb_rcp_approx_delta_table, 4);
    const __m512i shift = _mm512_slli_epi32(_mm512_and_si512(mantissa, _mm512_set1_epi32(15)), 1);
    const __m512i entry = _mm512_and_si512(_mm512_srlv_epi32(words, shift), _mm512_set1_epi32(3));
    __m512i result = _mm512_sub_epi32(_mm512_add_epi32(exact, entry), _mm512_set1_epi32(1));
    const __m512i zero_bits = _mm512_setzero_si512();
    // A subnormal quotient flushes to zero.
    result = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(_mm512_and_si512(exact, exponent_bits), zero_bits), result,
                                     sign);
    // Zero or subnormal x: infinity; infinite x: zero; NaN x: the default NaN.
    result = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(exponent, zero_bits), result,
                                     _mm512_or_si512(sign, exponent_bits));
    const __mmask16 special = _mm512_cmpeq_epi32_mask(exponent, exponent_bits);
    const __mmask16 nan = special & _mm512_cmpneq_epi32_mask(mantissa, zero_bits);
    result = _mm512_mask_blend_epi32(special, result, sign);
    result = _mm512_mask_blend_epi32(nan, result, _mm512_set1_epi32(0x7fc00000));
    return _mm512_castsi512_ps(result);
}

}  // namespace bnb::cpu::avx512
