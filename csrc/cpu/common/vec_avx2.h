// The AVX2 + F16C + FMA vector layer: 8 float32 lanes; partial steps go through
// small zeroed stack buffers (AVX2 has no byte or 16-bit masked loads), and
// tables too large for a register are gathered. The arithmetic is the scalar
// reference's, step for step (vec_scalar.h; vec_avx512.h explains the table
// forms of the searches).
#pragma once

#include <cstring>

#include "common/vec_x86.h"

#define BNB_CPU_ISA avx2
#define BNB_CPU_KERNEL __attribute__((target("avx2,f16c,fma")))

namespace bnb::cpu::avx2 {

inline constexpr int64_t kLanes = 8;
using Vec = __m256;
using Ints = __m256i;

// Conversions are one instruction: quantizers read their input in both passes.
template <typename T>
inline constexpr bool kConvertOnce = false;

// Lanes [0, count) all ones, the rest zero.
BNB_CPU_KERNEL inline __m256i first_lanes(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(count, kLanes))),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The elements of a partial step that fall into a buffer of `capacity`.
inline size_t partial_count(Partial lanes, int64_t capacity) {
    return static_cast<size_t>(std::min(lanes.count, capacity));
}

// ---- elements <-> lanes ------------------------------------------------------------

BNB_CPU_KERNEL inline Vec load(const float* p, Full) { return _mm256_loadu_ps(p); }

BNB_CPU_KERNEL inline Vec load(const Half* p, Full) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

BNB_CPU_KERNEL inline Vec load(const BFloat16* p, Full) {
    const __m256i widened = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(widened, 16));
}

// The first lanes.count elements, zeros after them.
template <typename T>
BNB_CPU_KERNEL inline Vec load(const T* p, Partial lanes) {
    T padded[kLanes] = {};
    std::memcpy(padded, p, partial_count(lanes, kLanes) * sizeof(T));
    return load(padded, Full{});
}

// from_float<Half>: round to nearest even in hardware, which keeps a NaN's upper
// payload bits and makes it quiet, as from_float does.
BNB_CPU_KERNEL inline __m128i half_bits(Vec x) {
    return _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// from_float<BFloat16>: round to nearest even on the bits; a NaN keeps its upper
// half with the quiet bit set.
BNB_CPU_KERNEL inline __m128i bfloat16_bits(Vec x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i words = _mm256_packus_epi32(_mm256_blendv_epi8(rounded, quiet, nan), _mm256_setzero_si256());
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(words, 0x08));  // halves' low quadwords
}

template <typename T>
BNB_CPU_KERNEL inline __m128i bits16(Vec x) {
    if constexpr (std::is_same_v<T, Half>) return half_bits(x);
    else return bfloat16_bits(x);
}

BNB_CPU_KERNEL inline void store(float* p, Vec x, Full) { _mm256_storeu_ps(p, x); }

template <typename T>
BNB_CPU_KERNEL inline void store(T* p, Vec x, Full) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bits16<T>(x));
}

template <typename T>
BNB_CPU_KERNEL inline void store(T* p, Vec x, Partial lanes) {
    T padded[kLanes];
    store(padded, x, Full{});
    std::memcpy(p, padded, partial_count(lanes, kLanes) * sizeof(T));
}

// Missing lanes of a partial step become 0.0.
BNB_CPU_KERNEL inline Vec keep_lanes(Vec x, Full) { return x; }
BNB_CPU_KERNEL inline Vec keep_lanes(Vec x, Partial lanes) {
    return _mm256_and_ps(x, _mm256_castsi256_ps(first_lanes(lanes.count)));
}

// ---- float32 arithmetic with CUDA's flush-to-zero ----------------------------------

BNB_CPU_KERNEL inline Vec broadcast(float x) { return _mm256_set1_ps(x); }
BNB_CPU_KERNEL inline Vec zero() { return _mm256_setzero_ps(); }
BNB_CPU_KERNEL inline Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
BNB_CPU_KERNEL inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
// a * b + acc, rounded once.
BNB_CPU_KERNEL inline Vec mul_add(Vec a, Vec b, Vec acc) { return _mm256_fmadd_ps(a, b, acc); }
BNB_CPU_KERNEL inline Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }

BNB_CPU_KERNEL inline float reduce_max(Vec x) {
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

BNB_CPU_KERNEL inline Vec flush(Vec x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i exponent_zero =
        _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
    const __m256i signed_zero = _mm256_and_si256(bits, _mm256_set1_epi32(static_cast<int>(0x80000000u)));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(bits, signed_zero, exponent_zero));
}

// Every NaN lane becomes kCanonicalNanBits (float_types.h).
BNB_CPU_KERNEL inline Vec canonical_nan(Vec x) {
    return _mm256_blendv_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(kCanonicalNanBits))),
                            _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

BNB_CPU_KERNEL inline Vec flushed_magnitude(Vec x) {
    const __m256i bits = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff));
    const __m256i exponent_zero =
        _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
    return _mm256_castsi256_ps(_mm256_andnot_si256(exponent_zero, bits));
}

// Child of each node of an implicit binary tree: 2k + 1 if s > the node's value, else 2k.
BNB_CPU_KERNEL inline Ints descend(Ints node, Vec s, Vec value) {
    const __m256i above = _mm256_castps_si256(_mm256_cmp_ps(s, value, _CMP_GT_OQ));
    return _mm256_sub_epi32(_mm256_add_epi32(node, node), above);
}

// 8 int32 lanes holding values 0..255 -> 8 bytes.
BNB_CPU_KERNEL inline __m128i pack_bytes(Ints values) {
    const __m256i words = _mm256_packus_epi32(values, values);  // per 128-bit half: v0..3 v0..3 | v4..7 v4..7
    const __m256i bytes = _mm256_packus_epi16(words, words);
    return _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
}

// The low 8 bytes of `bytes` at p.
BNB_CPU_KERNEL inline void store8_bytes(uint8_t* p, __m128i bytes, Full) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), bytes);
}

BNB_CPU_KERNEL inline void store8_bytes(uint8_t* p, __m128i bytes, Partial byte_lanes) {
    alignas(16) uint8_t buffer[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(buffer), bytes);
    std::memcpy(p, buffer, partial_count(byte_lanes, 8));
}

// ---- 8-bit blockwise ----------------------------------------------------------------

// The first 64 nodes of the descent in registers (a gather costs more than
// the permutes and blends of 32 entries), the deeper ones and the final choice
// gathered from the tables of code_search.h.
struct CodeSearch {
    __m256 depth0to2;                // nodes 0 .. 7 (node 0 unused)
    __m256 depth3;                   // nodes 8 .. 15
    __m256 depth4_low, depth4_high;  // nodes 16 .. 31
    __m256 depth5[4];                // nodes 32 .. 63
    const CodeSearchTables* tables;
};

BNB_CPU_KERNEL inline CodeSearch load_code_search(const float*, const CodeSearchTables& tables) {
    return {_mm256_load_ps(tables.node_value),
            _mm256_load_ps(tables.node_value + 8),
            _mm256_load_ps(tables.node_value + 16),
            _mm256_load_ps(tables.node_value + 24),
            {_mm256_load_ps(tables.node_value + 32), _mm256_load_ps(tables.node_value + 40),
             _mm256_load_ps(tables.node_value + 48), _mm256_load_ps(tables.node_value + 56)},
            &tables};
}

// search_code for 8 values through the buckets of code_search.h (where they
// apply): one gather of each lane's bucket range, then one masked gather per
// threshold of the fullest bucket among the lanes (one or two for the dynamic
// maps), where the descent takes a gather per level past the registers.
BNB_CPU_KERNEL inline Ints search_codes_by_bucket(const CodeSearchTables& tables, Vec s) {
    const __m256i bits = _mm256_castps_si256(s);
    const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
    __m256i step = _mm256_sub_epi32(_mm256_srli_epi32(magnitude, 23 - kBucketMantissaBits),
                                    _mm256_set1_epi32(((127 - kBucketOctaves) << kBucketMantissaBits) - 1));
    step = _mm256_min_epi32(_mm256_max_epi32(step, _mm256_setzero_si256()), _mm256_set1_epi32(kBucketsPerSign - 1));
    __m256i bucket = _mm256_blendv_epi8(_mm256_add_epi32(_mm256_set1_epi32(kBucketsPerSign + 1), step),
                                        _mm256_sub_epi32(_mm256_set1_epi32(kBucketsPerSign - 1), step),
                                        _mm256_srai_epi32(bits, 31));
    const __m256i zero_or_subnormal = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x00800000), magnitude);
    bucket = _mm256_blendv_epi8(bucket, _mm256_set1_epi32(kBucketsPerSign), zero_or_subnormal);
    const __m256i range = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tables.first), bucket, 1);
    const __m256i first = _mm256_and_si256(range, _mm256_set1_epi32(0xff));
    const __m256i count = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(range, 8), _mm256_set1_epi32(0xff)), first);
    __m128i widest = _mm_max_epi32(_mm256_castsi256_si128(count), _mm256_extracti128_si256(count, 1));
    widest = _mm_max_epi32(widest, _mm_shuffle_epi32(widest, _MM_SHUFFLE(1, 0, 3, 2)));
    widest = _mm_max_epi32(widest, _mm_shuffle_epi32(widest, _MM_SHUFFLE(2, 3, 0, 1)));
    __m256i passed = first;
    for (int j = 0, rounds = _mm_cvtsi128_si32(widest); j < rounds; ++j) {
        const __m256i index = _mm256_add_epi32(first, _mm256_set1_epi32(j));
        const __m256 in_bucket = _mm256_castsi256_ps(_mm256_cmpgt_epi32(count, _mm256_set1_epi32(j)));
        const __m256 threshold =
            _mm256_mask_i32gather_ps(_mm256_setzero_ps(), tables.threshold, index, in_bucket, 4);
        const __m256 odd = _mm256_castsi256_ps(_mm256_slli_epi32(index, 31));
        const __m256 beyond = _mm256_blendv_ps(_mm256_cmp_ps(s, threshold, _CMP_GT_OQ),
                                               _mm256_cmp_ps(s, threshold, _CMP_GE_OQ), odd);
        passed = _mm256_sub_epi32(passed, _mm256_castps_si256(_mm256_and_ps(beyond, in_bucket)));
    }
    // NaN compares false everywhere and ends at index 0, as in the reference.
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000)), passed);
}

// search_code for 8 values (NaN ends at index 0, as in the reference).
BNB_CPU_KERNEL inline Ints search_codes(const CodeSearch& search, Vec s) {
    if (search.tables->buckets_apply) return search_codes_by_bucket(*search.tables, s);
    __m256i node = _mm256_set1_epi32(1);
    for (int depth = 0; depth < 3; ++depth) node = descend(node, s, _mm256_permutevar8x32_ps(search.depth0to2, node));
    node = descend(node, s, _mm256_permutevar8x32_ps(search.depth3, node));
    const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(node, 28));
    node = descend(node, s, _mm256_blendv_ps(_mm256_permutevar8x32_ps(search.depth4_low, node),
                                             _mm256_permutevar8x32_ps(search.depth4_high, node), bit3));
    const __m256 depth5_bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(node, 28));  // nodes 32 .. 63
    const __m256 depth5_bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(node, 27));
    const __m256 depth5_low = _mm256_blendv_ps(_mm256_permutevar8x32_ps(search.depth5[0], node),
                                               _mm256_permutevar8x32_ps(search.depth5[1], node), depth5_bit3);
    const __m256 depth5_high = _mm256_blendv_ps(_mm256_permutevar8x32_ps(search.depth5[2], node),
                                                _mm256_permutevar8x32_ps(search.depth5[3], node), depth5_bit3);
    node = descend(node, s, _mm256_blendv_ps(depth5_low, depth5_high, depth5_bit4));
    node = descend(node, s, _mm256_i32gather_ps(search.tables->node_value, node, 4));  // 64 .. 127
    const __m256i final_index = _mm256_and_si256(node, _mm256_set1_epi32(127));     // node = 128 + B, p = 2B
    const __m256 value = _mm256_i32gather_ps(search.tables->final_value, final_index, 4);
    const __m256 above_value = _mm256_cmp_ps(s, value, _CMP_GT_OQ);
    const __m256 take_upper =
        _mm256_and_ps(above_value, _mm256_cmp_ps(s, _mm256_i32gather_ps(search.tables->mid_above, final_index, 4), _CMP_GT_OQ));
    const __m256 take_lower = _mm256_andnot_ps(
        above_value, _mm256_cmp_ps(s, _mm256_i32gather_ps(search.tables->mid_below, final_index, 4), _CMP_LT_OQ));
    const __m256i p = _mm256_add_epi32(final_index, final_index);
    return _mm256_add_epi32(_mm256_sub_epi32(p, _mm256_castps_si256(take_upper)), _mm256_castps_si256(take_lower));
}

template <typename Lanes>
BNB_CPU_KERNEL inline void store_code_bytes(uint8_t* p, Ints codes, Lanes lanes) {
    store8_bytes(p, pack_bytes(codes), lanes);
}

// fix_code_sign of vec_scalar.h for 8 lanes: the bit of each code selected by a
// word permute and a variable shift.
BNB_CPU_KERNEL inline Ints fix_code_sign(Ints codes, Vec values, const uint32_t* negative_code_bits) {
    const __m256i words = _mm256_permutevar8x32_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(negative_code_bits)), _mm256_srli_epi32(codes, 5));
    const __m256i code_negative = _mm256_sub_epi32(
        _mm256_setzero_si256(),
        _mm256_and_si256(_mm256_srlv_epi32(words, _mm256_and_si256(codes, _mm256_set1_epi32(31))),
                         _mm256_set1_epi32(1)));
    const __m256i value_negative = _mm256_srai_epi32(_mm256_castps_si256(values), 31);
    const __m256i mismatch = _mm256_xor_si256(code_negative, value_negative);
    const __m256i toward_value = _mm256_blendv_epi8(
        _mm256_set1_epi32(-1), _mm256_set1_epi32(1),
        _mm256_castps_si256(_mm256_cmp_ps(values, _mm256_setzero_ps(), _CMP_GT_OQ)));
    return _mm256_and_si256(_mm256_add_epi32(codes, _mm256_and_si256(mismatch, toward_value)),
                            _mm256_set1_epi32(255));
}

// Dequantization gathers 8 codes per step from the code, flushed once.
inline constexpr int64_t kCodeStep = 8;
template <typename T>
inline constexpr int64_t kCodeStepFor = kCodeStep;

struct CodeLookup {
    alignas(32) float code[256];
};

struct CodeValues {
    Vec part[1];
};

BNB_CPU_KERNEL inline CodeLookup load_code_lookup(const float* code) {
    CodeLookup lookup;
    for (int j = 0; j < 256; j += 8) _mm256_store_ps(lookup.code + j, flush(_mm256_loadu_ps(code + j)));
    return lookup;
}

template <int64_t Step = kCodeStep>
BNB_CPU_KERNEL inline CodeValues lookup_codes(const CodeLookup& lookup, const uint8_t* codes, Full) {
    static_assert(Step == kCodeStep);
    const __m256i index = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes)));
    return {{_mm256_i32gather_ps(lookup.code, index, 4)}};
}

template <int64_t Step = kCodeStep>
BNB_CPU_KERNEL inline CodeValues lookup_codes(const CodeLookup& lookup, const uint8_t* codes, Partial lanes) {
    static_assert(Step == kCodeStep);
    alignas(16) uint8_t padded[16] = {};
    std::memcpy(padded, codes, partial_count(lanes, kLanes));
    return lookup_codes(lookup, padded, Full{});
}

// Blocks of at least kMinBlocksize elements are dequantized from a per-block
// table of the 256 possible results (converted once), one scalar load per
// element: on CPUs whose gathers are slow (AMD Zen) that beats a gather per 8
// elements.
template <typename T>
struct ResultTable {
    static constexpr int64_t kMinBlocksize = 256;
    static constexpr int64_t kStep = 1;
    using Source = CodeLookup;

    alignas(32) T value[256];

    BNB_CPU_KERNEL static Source load_source(const float* code) { return load_code_lookup(code); }

    BNB_CPU_KERNEL static ResultTable scaled(const Source& code, Vec flushed_scale) {
        ResultTable results;
        for (int j = 0; j < 256; j += 8) {
            store(results.value + j, canonical_nan(flush(_mm256_mul_ps(_mm256_load_ps(code.code + j), flushed_scale))), Full{});
        }
        return results;
    }

    template <typename Lanes>
    BNB_CPU_KERNEL void write(T* out, const uint8_t* codes, Lanes) const { *out = value[*codes]; }
};

template <typename T>
using ResultTableFor = ResultTable<T>;

// ---- 4-bit NF4 / FP4 ----------------------------------------------------------------

// Loads 8 entries of a constant table, hidden from the optimizer: it would
// otherwise see that FP4 codes 8-15 are the negated codes 0-7 and compute
// (-m) * scale as -(m * scale), which flips the sign of a NaN product
// (0 * inf) against the reference.
BNB_CPU_KERNEL inline Vec load_opaque(const float* table) {
    __m256 values = _mm256_loadu_ps(table);
    __asm__("" : "+x"(values));
    return values;
}

template <bnb_quant_type Q>
BNB_CPU_KERNEL inline Ints encode(Vec s) {
    if constexpr (Q == BNB_QUANT_NF4) {
        const __m256 upper_levels = _mm256_loadu_ps(kNf4Tree.node);
        const __m256 last_level = _mm256_loadu_ps(kNf4Tree.node + 8);
        __m256i node = _mm256_set1_epi32(1);
        for (int depth = 0; depth < 3; ++depth) node = descend(node, s, _mm256_permutevar8x32_ps(upper_levels, node));
        node = descend(node, s, _mm256_permutevar8x32_ps(last_level, node));
        return _mm256_and_si256(node, _mm256_set1_epi32(15));
    } else {
        const __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_LT_OQ));
        const __m256 magnitude = _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(s), _mm256_set1_epi32(0x7fffffff)));
        const __m256 tree = _mm256_loadu_ps(kFp4Tree.node);
        __m256i node = _mm256_set1_epi32(1);
        for (int depth = 0; depth < 3; ++depth) node = descend(node, magnitude, _mm256_permutevar8x32_ps(tree, node));
        const __m256i code = _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kFp4MagnitudeByCount + 8)), node);  // node = 8 + count
        return _mm256_or_si256(code, _mm256_and_si256(negative, _mm256_set1_epi32(8)));
    }
}

// Codes of 16 consecutive elements -> 8 bytes, the lower index in the high nibble.
BNB_CPU_KERNEL inline __m128i pack_nibbles(Ints first, Ints second) {
    const __m256i byte_mask = _mm256_set1_epi64x(0xff);
    const __m256i first_pairs = _mm256_and_si256(_mm256_or_si256(_mm256_slli_epi64(first, 4), _mm256_srli_epi64(first, 32)), byte_mask);
    const __m256i second_pairs = _mm256_and_si256(_mm256_or_si256(_mm256_slli_epi64(second, 4), _mm256_srli_epi64(second, 32)), byte_mask);
    // 32-bit lanes b0 b4 b1 b5 | b2 b6 b3 b7 -> b0 .. b7
    const __m256i merged = _mm256_or_si256(first_pairs, _mm256_slli_epi64(second_pairs, 32));
    return pack_bytes(_mm256_permutevar8x32_epi32(merged, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
}

BNB_CPU_KERNEL inline void store_nibbles(uint8_t* p, Ints first, Ints second, Full) {
    store8_bytes(p, pack_nibbles(first, second), Full{});
}

BNB_CPU_KERNEL inline void store_nibbles(uint8_t* p, Ints first, Ints second, Partial lanes) {
    store8_bytes(p, pack_nibbles(first, second), Partial{(lanes.count + 1) / 2});
}

// float32 outputs: 8 per step from two registers of the block's 16 results;
// 16-bit outputs: the results, converted once, split into a table of low bytes
// and one of high bytes, each looked up by nibble with a byte shuffle, 32 per
// step.
template <typename T>
inline constexpr int64_t kNibbleStep = std::is_same_v<T, float> ? 8 : 32;

template <typename T, bnb_quant_type Q>
struct NibbleTable {
    __m256i low_bytes;
    __m256i high_bytes;
};

template <bnb_quant_type Q>
struct NibbleTable<float, Q> {
    __m256 low_codes;   // results 0 .. 7
    __m256 high_codes;  // results 8 .. 15
};

template <typename T, bnb_quant_type Q>
BNB_CPU_KERNEL inline NibbleTable<T, Q> nibble_table(float flushed_scale) {
    const __m256 scale = _mm256_set1_ps(flushed_scale);
    const __m256 low_codes = canonical_nan(flush(_mm256_mul_ps(load_opaque(decode_values<Q>()), scale)));
    const __m256 high_codes = canonical_nan(flush(_mm256_mul_ps(load_opaque(decode_values<Q>() + 8), scale)));
    if constexpr (std::is_same_v<T, float>) {
        return {low_codes, high_codes};
    } else {
        const __m128i low_byte = _mm_set1_epi16(0xff);
        const __m128i first = bits16<T>(low_codes);
        const __m128i second = bits16<T>(high_codes);
        return {_mm256_broadcastsi128_si256(_mm_packus_epi16(_mm_and_si128(first, low_byte), _mm_and_si128(second, low_byte))),
                _mm256_broadcastsi128_si256(_mm_packus_epi16(_mm_srli_epi16(first, 8), _mm_srli_epi16(second, 8)))};
    }
}

// The values of 8 codes (4 bytes) from the block's table of 16 results.
template <bnb_quant_type Q>
BNB_CPU_KERNEL inline Vec decode8(const NibbleTable<float, Q>& table, uint32_t four_bytes) {
    // One 32-bit lane per nibble, in element order.
    const __m256i byte_lanes = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(static_cast<int>(four_bytes)));
    const __m256i codes = _mm256_or_si256(_mm256_srli_epi64(byte_lanes, 4),
                                          _mm256_slli_epi64(_mm256_and_si256(byte_lanes, _mm256_set1_epi64x(15)), 32));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(table.low_codes, codes),
                            _mm256_permutevar8x32_ps(table.high_codes, codes),
                            _mm256_castsi256_ps(_mm256_slli_epi32(codes, 28)));
}

template <bnb_quant_type Q, typename Lanes>
BNB_CPU_KERNEL inline void store_decoded(float* out, const NibbleTable<float, Q>& table, const uint8_t* packed,
                                         Lanes lanes) {
    uint32_t four_bytes = 0;
    if constexpr (std::is_same_v<Lanes, Full>) std::memcpy(&four_bytes, packed, 4);
    else std::memcpy(&four_bytes, packed, static_cast<size_t>((lanes.count + 1) / 2));
    store(out, decode8(table, four_bytes), lanes);
}

template <typename T, bnb_quant_type Q, typename Lanes>
BNB_CPU_KERNEL inline void store_decoded(T* out, const NibbleTable<T, Q>& table, const uint8_t* packed, Lanes lanes) {
    alignas(16) uint8_t padded[16] = {};
    if constexpr (!std::is_same_v<Lanes, Full>) {
        std::memcpy(padded, packed, static_cast<size_t>((lanes.count + 1) / 2));
        packed = padded;
    }
    const __m256i nibble = _mm256_set1_epi8(15);
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
    const __m256i both = _mm256_set_m128i(bytes, bytes);
    const __m256i high_nibbles = _mm256_and_si256(_mm256_srli_epi16(both, 4), nibble);
    const __m256i low_nibbles = _mm256_and_si256(both, nibble);
    // Element order: bytes 0-7 in the lower half, 8-15 in the upper.
    const __m256i codes = _mm256_permute2x128_si256(_mm256_unpacklo_epi8(high_nibbles, low_nibbles),
                                                    _mm256_unpackhi_epi8(high_nibbles, low_nibbles), 0x30);
    const __m256i low = _mm256_shuffle_epi8(table.low_bytes, codes);
    const __m256i high = _mm256_shuffle_epi8(table.high_bytes, codes);
    const __m256i words_a = _mm256_unpacklo_epi8(low, high);  // elements 0-7 | 16-23
    const __m256i words_b = _mm256_unpackhi_epi8(low, high);  // elements 8-15 | 24-31
    const __m256i first = _mm256_permute2x128_si256(words_a, words_b, 0x20);
    const __m256i second = _mm256_permute2x128_si256(words_a, words_b, 0x31);
    if constexpr (std::is_same_v<Lanes, Full>) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), first);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), second);
    } else {
        alignas(32) T words[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(words), first);
        _mm256_store_si256(reinterpret_cast<__m256i*>(words + 16), second);
        std::memcpy(out, words, static_cast<size_t>(lanes.count) * sizeof(T));
    }
}

// ---- 4-bit matmul (gemm_4bit) --------------------------------------------------

// Rows of A per micro-kernel call: 3 x 4 accumulators, 3 rows of A and a
// weight vector take all 16 registers.
inline constexpr int kMatmulRowsOfA = 3;

// sums[i] += the lane sum of the i-th vector.
BNB_CPU_KERNEL inline void add_lane_sums4(float* sums, Vec a, Vec b, Vec c, Vec d) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));  // per half: a, b, c, d
    const __m128 total = _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
    _mm_storeu_ps(sums, _mm_add_ps(_mm_loadu_ps(sums), total));
}

// A block's 16 weights, flush(code[i] * scale), for any 16-entry code: two
// registers, a lookup permutes both and picks by the index's bit 3.
struct CodeTable16 {
    __m256 low;   // weights of codes 0-7
    __m256 high;  // codes 8-15
};

BNB_CPU_KERNEL inline CodeTable16 load_code_table16(const float* code, float flushed_scale) {
    const __m256 scale = _mm256_set1_ps(flushed_scale);
    return {flush(_mm256_mul_ps(_mm256_loadu_ps(code), scale)), flush(_mm256_mul_ps(_mm256_loadu_ps(code + 8), scale))};
}

// The permutes read the low 3 bits of each index and the blend bit 3 (moved to
// the sign), so the bits above need no mask.
BNB_CPU_KERNEL inline Vec lookup_code_table16(const CodeTable16& table, __m128i nibbles) {
    const __m256i index = _mm256_cvtepu8_epi32(nibbles);
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(table.low, index), _mm256_permutevar8x32_ps(table.high, index),
                            _mm256_castsi256_ps(_mm256_slli_epi32(index, 28)));
}

// 8 bytes -> their 16 weights; byte i holds weight 2i in its high nibble, 2i + 1 in its low one.
BNB_CPU_KERNEL inline void dequantize16(const uint8_t* bytes, const CodeTable16& table, float* out) {
    const __m128i packed = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes));
    const __m128i nibbles = _mm_unpacklo_epi8(_mm_srli_epi16(packed, 4), packed);
    _mm256_storeu_ps(out, lookup_code_table16(table, nibbles));
    _mm256_storeu_ps(out + 8, lookup_code_table16(table, _mm_srli_si128(nibbles, 8)));
}

// ---- LLM.int8() ---------------------------------------------------------------------

BNB_CPU_KERNEL inline Vec fused_mul_add(Vec a, Vec b, Vec acc) { return _mm256_fmadd_ps(a, b, acc); }
BNB_CPU_KERNEL inline Vec div(Vec a, Vec b) { return _mm256_div_ps(a, b); }

BNB_CPU_KERNEL inline Vec magnitude(Vec x) {
    return _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff)));
}

BNB_CPU_KERNEL inline Vec zero_at_or_above(Vec mag, Vec limit, Vec x) {
    return _mm256_and_ps(_mm256_cmp_ps(mag, limit, _CMP_NGE_UQ), x);
}

BNB_CPU_KERNEL inline uint32_t lanes_at_or_above(Vec mag, Vec limit) {
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(mag, limit, _CMP_GE_OQ)));
}

BNB_CPU_KERNEL inline Vec max_magnitude(Vec a, Vec b) {
    return _mm256_castsi256_ps(_mm256_max_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)));
}

BNB_CPU_KERNEL inline float reduce_max_magnitude(Vec x) {
    __m128i q = _mm_max_epi32(_mm256_castsi256_si128(_mm256_castps_si256(x)),
                              _mm256_extracti128_si256(_mm256_castps_si256(x), 1));
    q = _mm_max_epi32(q, _mm_shuffle_epi32(q, _MM_SHUFFLE(1, 0, 3, 2)));
    q = _mm_max_epi32(q, _mm_shuffle_epi32(q, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(_mm_castsi128_ps(q));
}

template <typename T>
BNB_CPU_KERNEL inline Vec rounded_to(Vec x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else if constexpr (std::is_same_v<T, Half>) return _mm256_cvtph_ps(bits16<T>(x));
    else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits16<T>(x)), 16));
}

BNB_CPU_KERNEL inline Ints round_to_codes(Vec x) {
    const __m256 ordered = _mm256_and_ps(_mm256_cmp_ps(x, x, _CMP_ORD_Q), x);
    const __m256 clamped = _mm256_min_ps(_mm256_max_ps(ordered, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvttps_epi32(_mm256_round_ps(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// 8 int32 lanes holding -127..127 -> 8 bytes.
template <typename Lanes>
BNB_CPU_KERNEL inline void store_codes(int8_t* p, Ints codes, Lanes lanes) {
    const __m256i words = _mm256_packs_epi32(codes, codes);  // per 128-bit half: c0..3 c0..3 | c4..7 c4..7
    const __m256i bytes = _mm256_packs_epi16(words, words);
    const __m128i packed = _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
    store8_bytes(reinterpret_cast<uint8_t*>(p), packed, lanes);
}

BNB_CPU_KERNEL inline Vec load_as_float(const int8_t* p, Full) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

BNB_CPU_KERNEL inline Vec load_as_float(const int32_t* p, Full) {
    return _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <typename T>
BNB_CPU_KERNEL inline Vec load_as_float(const T* p, Partial lanes) {
    T padded[kLanes] = {};
    std::memcpy(padded, p, partial_count(lanes, kLanes) * sizeof(T));
    return load_as_float(padded, Full{});
}

// Rows of A against rows of B per int8 micro-kernel call: 2 x 4 accumulators,
// 2 rows of A, a row of B and the offset constant fit the 16 registers.
inline constexpr int kInt8RowsOfA = 2;
inline constexpr int kInt8RowsOfB = 4;

BNB_CPU_KERNEL inline Ints zero_ints() { return _mm256_setzero_si256(); }

BNB_CPU_KERNEL inline int32_t reduce_add(Ints x) {
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
    return _mm_cvtsi128_si32(q);
}

// sums[i] += the lane sum of the i-th vector (wrapping).
BNB_CPU_KERNEL inline void add_int_lane_sums4(int32_t* sums, Ints a, Ints b, Ints c, Ints d) {
    const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));  // per half: a, b, c, d
    const __m128i total = _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(sums), _mm_add_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sums)), total));
}

// `width` bytes of a row; a partial step's missing bytes are 0.
template <int64_t width>
BNB_CPU_KERNEL inline void copy_partial_bytes(const int8_t* p, Partial lanes, int8_t* padded) {
    std::memset(padded, 0, width);
    std::memcpy(padded, p, partial_count(lanes, width));
}

// Without AVX-VNNI: bytes widened to 16 bits, vpmaddwd sums pairs of exact
// products into int32 (vpmaddubsw would saturate its 16-bit pair sums).
struct Int8Dot {
    static constexpr int64_t kStep = 16;
    static constexpr bool kOffsetsB = false;

    BNB_CPU_KERNEL static __m256i load_words(const int8_t* p, Full) {
        return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    BNB_CPU_KERNEL static __m256i load_words(const int8_t* p, Partial lanes) {
        alignas(16) int8_t padded[16];
        copy_partial_bytes<16>(p, lanes, padded);
        return load_words(padded, Full{});
    }
    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_a(const int8_t* p, Lanes lanes) { return load_words(p, lanes); }
    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_b(const int8_t* p, Lanes lanes) { return load_words(p, lanes); }
    BNB_CPU_KERNEL static Ints dot(Ints acc, Ints a, Ints b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
    BNB_CPU_KERNEL static Ints sum_a(Ints acc, Ints) { return acc; }
};

// AVX-VNNI is no path of its own: the AVX2 path uses it where the CPU has it,
// in functions marked BNB_CPU_KERNEL_VNNI.
#define BNB_CPU_KERNEL_VNNI __attribute__((target("avx2,f16c,fma,avxvnni")))

// B + 128 against A, corrected by 128 * sum(A) per row of A (vec_avx512.h).
struct Int8DotVnni {
    static constexpr int64_t kStep = 32;
    static constexpr bool kOffsetsB = true;

    BNB_CPU_KERNEL static __m256i load_bytes(const int8_t* p, Full) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    }
    BNB_CPU_KERNEL static __m256i load_bytes(const int8_t* p, Partial lanes) {
        alignas(32) int8_t padded[32];
        copy_partial_bytes<32>(p, lanes, padded);
        return load_bytes(padded, Full{});
    }
    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_a(const int8_t* p, Lanes lanes) { return load_bytes(p, lanes); }
    template <typename Lanes>
    BNB_CPU_KERNEL static Ints load_b(const int8_t* p, Lanes lanes) {
        return _mm256_xor_si256(load_bytes(p, lanes), _mm256_set1_epi8(static_cast<char>(0x80)));
    }
    // In inline assembly, as the AVX-512 one (vec_avx512.h says why).
    BNB_CPU_KERNEL_VNNI static Ints dot(Ints acc, Ints a, Ints b_offset) {
        __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(b_offset), "x"(a));
        return acc;
    }
    BNB_CPU_KERNEL_VNNI static Ints sum_a(Ints acc, Ints a) { return _mm256_dpbusd_avx_epi32(acc, _mm256_set1_epi8(1), a); }
};

// ---- optimizers --------------------------------------------------------------------

// Per-lane conditions as all-ones / all-zeros lanes.
using Mask = __m256;

BNB_CPU_KERNEL inline Mask is_finite(Vec x) {
    return _mm256_cmp_ps(magnitude(x), _mm256_set1_ps(std::numeric_limits<float>::infinity()), _CMP_LT_OQ);
}
BNB_CPU_KERNEL inline Mask is_zero(Vec x) { return _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_EQ_OQ); }
BNB_CPU_KERNEL inline Mask is_greater(Vec a, Vec b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
BNB_CPU_KERNEL inline Vec select(Mask m, Vec if_true, Vec if_false) { return _mm256_blendv_ps(if_false, if_true, m); }

BNB_CPU_KERNEL inline Vec square_root(Vec x) { return _mm256_sqrt_ps(x); }

// rcp_approx_ftz, its table gathered: entry m is bits 2(m % 16) .. of the
// 32-bit word m / 16. The correctly rounded float32 quotient 1 / x equals the
// reference's double quotient rounded to float32 (1 / x is never within 2^-49
// relative of a float32 midpoint, so the double rounding cannot differ).
BNB_CPU_KERNEL inline Vec reciprocal_approx(Vec x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i sign = _mm256_and_si256(bits, _mm256_set1_epi32(static_cast<int>(0x80000000u)));
    const __m256i exponent_bits = _mm256_set1_epi32(0x7f800000);
    const __m256i mantissa = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff));
    const __m256i exponent = _mm256_and_si256(bits, exponent_bits);
    const __m256i exact = _mm256_castps_si256(_mm256_div_ps(_mm256_set1_ps(1.0f), x));
    const __m256i words = _mm256_i32gather_epi32(reinterpret_cast<const int*>(bnb_rcp_approx_delta_table),
                                                 _mm256_srli_epi32(mantissa, 4), 4);
    const __m256i shift = _mm256_slli_epi32(_mm256_and_si256(mantissa, _mm256_set1_epi32(15)), 1);
    const __m256i entry = _mm256_and_si256(_mm256_srlv_epi32(words, shift), _mm256_set1_epi32(3));
    __m256i result = _mm256_sub_epi32(_mm256_add_epi32(exact, entry), _mm256_set1_epi32(1));
    const __m256i zero_bits = _mm256_setzero_si256();
    // A subnormal quotient flushes to zero.
    result = _mm256_blendv_epi8(result, sign,
                                _mm256_cmpeq_epi32(_mm256_and_si256(exact, exponent_bits), zero_bits));
    // Zero or subnormal x: infinity; infinite x: zero; NaN x: the default NaN.
    result = _mm256_blendv_epi8(result, _mm256_or_si256(sign, exponent_bits), _mm256_cmpeq_epi32(exponent, zero_bits));
    const __m256i special = _mm256_cmpeq_epi32(exponent, exponent_bits);
    const __m256i nan = _mm256_andnot_si256(_mm256_cmpeq_epi32(mantissa, zero_bits), special);
    result = _mm256_blendv_epi8(result, sign, special);
    result = _mm256_blendv_epi8(result, _mm256_set1_epi32(0x7fc00000), nan);
    return _mm256_castsi256_ps(result);
}

}  // namespace bnb::cpu::avx2
