// AVX-512 (F, BW, VL, DQ) kernels: 16 float32 lanes, masks for block tails.
//
// Each function carries a target attribute instead of the file getting
// -mavx512f, so that inline functions shared with the scalar path (float_types.h,
// <algorithm>) are never emitted with AVX-512 instructions. The arithmetic is
// the scalar reference's, step for step (kernels_scalar.cpp): subnormals
// flushed by bit tests, one multiply by the block's rcp_approx_ftz reciprocal,
// upstream's 8-bit search as table lookups, strict > thresholds, RNE to 16 bits.
#include "kernel_set.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>

#include "codebooks.h"
#include "float_types.h"
#include "rcp_approx.h"

#define BNB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace bnb::cpu {
namespace {

BNB_AVX512 inline __mmask16 lanes16(int64_t remaining) {
    return remaining >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << remaining) - 1u);
}

BNB_AVX512 inline __mmask32 lanes32(int64_t remaining) {
    return remaining >= 32 ? static_cast<__mmask32>(0xffffffffu) : static_cast<__mmask32>((1u << remaining) - 1u);
}

// ---- 16 elements of T <-> 16 float32 lanes ------------------------------------

BNB_AVX512 inline __m512 load16(const float* p, __mmask16 lanes) { return _mm512_maskz_loadu_ps(lanes, p); }

// Half -> float32 is exact (subnormal halves included) in hardware, as in to_float.
BNB_AVX512 inline __m512 load16(const Half* p, __mmask16 lanes) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, p));
}

BNB_AVX512 inline __m512 load16(const BFloat16* p, __mmask16 lanes) {
    const __m512i widened = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(widened, 16));
}

// from_float<Half>: round to nearest even in hardware; a NaN keeps only its sign
// (sign | 0x7e00), where the hardware would keep payload bits.
BNB_AVX512 inline __m256i half_bits(__m512 x) {
    __m256i bits = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    if (nan != 0) {
        const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 16), _mm512_set1_epi32(0x8000));
        const __m256i quiet = _mm512_cvtepi32_epi16(_mm512_or_si512(sign, _mm512_set1_epi32(0x7e00)));
        bits = _mm256_mask_blend_epi16(nan, bits, quiet);
    }
    return bits;
}

// from_float<BFloat16>: round to nearest even on the bits; a NaN keeps its upper
// half with the quiet bit set.
BNB_AVX512 inline __m256i bfloat16_bits(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(rounded);
}

BNB_AVX512 inline void store16(float* p, __m512 x, __mmask16 lanes) { _mm512_mask_storeu_ps(p, lanes, x); }

BNB_AVX512 inline void store16(Half* p, __m512 x, __mmask16 lanes) {
    _mm256_mask_storeu_epi16(p, lanes, half_bits(x));
}

BNB_AVX512 inline void store16(BFloat16* p, __m512 x, __mmask16 lanes) {
    _mm256_mask_storeu_epi16(p, lanes, bfloat16_bits(x));
}

template <typename T>
BNB_AVX512 inline __m256i bits16(__m512 x);
template <>
BNB_AVX512 inline __m256i bits16<Half>(__m512 x) { return half_bits(x); }
template <>
BNB_AVX512 inline __m256i bits16<BFloat16>(__m512 x) { return bfloat16_bits(x); }

// ---- float32 arithmetic with CUDA's flush-to-zero ------------------------------

BNB_AVX512 inline __m512 flush16(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __mmask16 keep = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x7f800000));
    const __m512i signed_zero = _mm512_and_si512(bits, _mm512_set1_epi32(static_cast<int>(0x80000000u)));
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(signed_zero, keep, bits));
}

// ftz_mul(x, scale) for a scale that is already flushed (a reciprocal from
// rcp_approx_ftz or a flushed absmax).
BNB_AVX512 inline __m512 ftz_mul_flushed(__m512 x, __m512 flushed_scale) {
    return flush16(_mm512_mul_ps(flush16(x), flushed_scale));
}

// block_absmax: max of |flush(x)|. max_ps returns its second operand when the
// first is NaN, which is the reference's "NaN never wins"; without NaNs the
// order of the reduction cannot change a maximum.
BNB_AVX512 inline __m512 flushed_magnitude(__m512 x) {
    const __m512i bits = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
    const __mmask16 keep = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(_mm512_maskz_mov_epi32(keep, bits));
}

template <typename T>
BNB_AVX512 inline float block_absmax16(const T* x, int64_t count) {
    __m512 even = _mm512_setzero_ps();
    __m512 odd = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) {
        even = _mm512_max_ps(flushed_magnitude(load16(x + i, 0xffff)), even);
        odd = _mm512_max_ps(flushed_magnitude(load16(x + i + 16, 0xffff)), odd);
    }
    for (; i < count; i += 16) even = _mm512_max_ps(flushed_magnitude(load16(x + i, lanes16(count - i))), even);
    return _mm512_reduce_max_ps(_mm512_max_ps(even, odd));
}

// ---- 8-bit blockwise ------------------------------------------------------------

// A 128-entry float table in 8 registers, looked up by the low 7 bits of an index.
struct Table128 {
    __m512 part[8];
};

BNB_AVX512 inline Table128 load_table128(const float* values) {
    Table128 table;
    for (int j = 0; j < 8; ++j) table.part[j] = _mm512_load_ps(values + 16 * j);
    return table;
}

BNB_AVX512 inline __m512 lookup128(const Table128& table, __m512i index, __mmask16 bit5, __mmask16 bit6) {
    const __m512 low = _mm512_mask_blend_ps(bit5, _mm512_permutex2var_ps(table.part[0], index, table.part[1]),
                                            _mm512_permutex2var_ps(table.part[2], index, table.part[3]));
    const __m512 high = _mm512_mask_blend_ps(bit5, _mm512_permutex2var_ps(table.part[4], index, table.part[5]),
                                             _mm512_permutex2var_ps(table.part[6], index, table.part[7]));
    return _mm512_mask_blend_ps(bit6, low, high);
}

struct CodeSearch {
    Table128 nodes;  // node_value: nodes 1 .. 127 of the descent
    Table128 final_value;
    Table128 mid_above;
    Table128 mid_below;
};

// Child of each node: 2k + 1 if s > the node's code value, else 2k.
BNB_AVX512 inline __m512i descend(__m512i node, __m512 s, __m512 value) {
    const __mmask16 above = _mm512_cmp_ps_mask(s, value, _CMP_GT_OQ);
    const __m512i doubled = _mm512_add_epi32(node, node);
    return _mm512_mask_add_epi32(doubled, above, doubled, _mm512_set1_epi32(1));
}

// search_code for 16 values. NaN compares false everywhere and ends at index 0,
// as in the reference.
BNB_AVX512 inline __m512i search_code16(const CodeSearch& search, __m512 s) {
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

template <typename T>
BNB_AVX512 void quantize_blockwise_blocks(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables,
                                          int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    const CodeSearch search = {load_table128(tables.node_value), load_table128(tables.final_value),
                               load_table128(tables.mid_above), load_table128(tables.mid_below)};
    const int64_t chunk = quantize_chunk_blocks(args.blocksize);
    float reciprocal[kQuantizeChunkMaxBlocks];
    for (int64_t chunk_first = first_block; chunk_first < last_block; chunk_first += chunk) {
        const int64_t chunk_last = std::min(last_block, chunk_first + chunk);
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            args.absmax[block] = block_absmax16(A + begin, std::min(args.blocksize, args.n - begin));
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            reciprocal[block - chunk_first] = rcp_approx_ftz(args.absmax[block]);
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            const int64_t count = std::min(args.blocksize, args.n - begin);
            const __m512 scale = _mm512_set1_ps(reciprocal[block - chunk_first]);
            for (int64_t i = 0; i < count; i += 16) {
                const __mmask16 lanes = lanes16(count - i);
                const __m512 s = ftz_mul_flushed(load16(A + begin + i, lanes), scale);
                _mm_mask_storeu_epi8(args.out + begin + i, lanes, _mm512_cvtepi32_epi8(search_code16(search, s)));
            }
        }
    }
}

// The 256-entry code, flushed once, in 16 registers.
struct Code256 {
    __m512 part[16];
};

// The 256-entry code, flushed once, as two tables of 16-bit halves (upper and
// lower half of each float32) in 8 registers each: a word permute looks up 32
// lanes in 64 entries, twice the lanes of a float32 permute over half the
// entries, so 32 values cost 2 x (4 permutes + 3 blends) instead of
// 2 x (8 permutes + 7 blends).
struct CodeHalves {
    __m512i upper[8];
    __m512i lower[8];
};

BNB_AVX512 inline CodeHalves split_code(const float* code) {
    CodeHalves halves;
    for (int j = 0; j < 8; ++j) {
        const __m512i first = _mm512_castps_si512(flush16(_mm512_loadu_ps(code + 32 * j)));
        const __m512i second = _mm512_castps_si512(flush16(_mm512_loadu_ps(code + 32 * j + 16)));
        halves.upper[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(_mm512_srli_epi32(first, 16))),
                                             _mm512_cvtepi32_epi16(_mm512_srli_epi32(second, 16)), 1);
        halves.lower[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(first)),
                                             _mm512_cvtepi32_epi16(second), 1);
    }
    return halves;
}

BNB_AVX512 inline __m512i lookup_words(const __m512i* table, __m512i index, __mmask32 bit6, __mmask32 bit7) {
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
alignas(64) constexpr uint16_t kInterleaveOrder[32] = {0,  1,  2,  3,  16, 17, 18, 19, 4,  5,  6,  7,  20, 21, 22, 23,
                                                        8,  9,  10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31};

// code[index] for 32 indices, as two vectors of 16 float32 (elements 0-15, 16-31).
BNB_AVX512 inline void lookup_code32(const CodeHalves& code, __m512i index_words, __m512* first, __m512* second) {
    const __m512i index = _mm512_permutexvar_epi16(_mm512_load_si512(kInterleaveOrder), index_words);
    const __mmask32 bit6 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(64));
    const __mmask32 bit7 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(128));
    const __m512i upper = lookup_words(code.upper, index, bit6, bit7);
    const __m512i lower = lookup_words(code.lower, index, bit6, bit7);
    *first = _mm512_castsi512_ps(_mm512_unpacklo_epi16(lower, upper));
    *second = _mm512_castsi512_ps(_mm512_unpackhi_epi16(lower, upper));
}

template <typename T>
BNB_AVX512 void dequantize_blockwise_blocks(const DequantizeBlockwiseArgs& args, int64_t first_block,
                                            int64_t last_block) {
    T* out = static_cast<T*>(args.out);
    const CodeHalves code = split_code(args.code);
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m512 scale = _mm512_set1_ps(flush_denormal(args.absmax[block]));
        // Steps of 32; blocksize 16 (or a short tail) uses the first half only.
        for (int64_t i = 0; i < count; i += 32) {
            const int64_t remaining = count - i;
            const __m512i index_words =
                _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(lanes32(remaining), args.A + begin + i));
            __m512 first, second;
            lookup_code32(code, index_words, &first, &second);
            store16(out + begin + i, flush16(_mm512_mul_ps(first, scale)), lanes16(remaining));
            if (remaining > 16) store16(out + begin + i + 16, flush16(_mm512_mul_ps(second, scale)), lanes16(remaining - 16));
        }
    }
}

// 16-bit outputs of large blocks: the block's 256 possible results, converted
// once, are a word table; each element is then a single word lookup.
inline constexpr int64_t kMinBlocksizeForResultTable = 256;

template <typename T>
BNB_AVX512 void dequantize_blockwise_blocks_16(const DequantizeBlockwiseArgs& args, int64_t first_block,
                                               int64_t last_block) {
    uint16_t* out = static_cast<uint16_t*>(args.out);
    Code256 code;
    for (int j = 0; j < 16; ++j) code.part[j] = flush16(_mm512_loadu_ps(args.code + 16 * j));
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m512 scale = _mm512_set1_ps(flush_denormal(args.absmax[block]));
        __m512i results[8];
        for (int j = 0; j < 8; ++j) {
            results[j] = _mm512_inserti64x4(
                _mm512_castsi256_si512(bits16<T>(flush16(_mm512_mul_ps(code.part[2 * j], scale)))),
                bits16<T>(flush16(_mm512_mul_ps(code.part[2 * j + 1], scale))), 1);
        }
        for (int64_t i = 0; i < count; i += 32) {
            const __mmask32 lanes = lanes32(count - i);
            const __m512i index = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(lanes, args.A + begin + i));
            const __mmask32 bit6 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(64));
            const __mmask32 bit7 = _mm512_test_epi16_mask(index, _mm512_set1_epi16(128));
            _mm512_mask_storeu_epi16(out + begin + i, lanes, lookup_words(results, index, bit6, bit7));
        }
    }
}

// ---- 4-bit NF4 / FP4 ---------------------------------------------------------------

// A sorted threshold list as an implicit binary tree: node k at depth d
// (2^d <= k < 2^(d+1)) holds threshold (k - 2^d) * 2^(L-d) + 2^(L-1-d) - 1 of a
// list of 2^L - 1. Descending L levels from node 1 ends at 2^L + (the number of
// thresholds that s exceeds), which is what nf4_code / fp4_code count.
template <int kLevels>
struct ThresholdTree {
    float node[16];
    constexpr explicit ThresholdTree(const float* sorted) : node{} {
        for (int depth = 0; depth < kLevels; ++depth) {
            for (int k = 1 << depth; k < 2 << depth; ++k) {
                node[k] = sorted[(k - (1 << depth)) * (1 << (kLevels - depth)) + (1 << (kLevels - 1 - depth)) - 1];
            }
        }
    }
};

constexpr bool strictly_increasing(const float* values, int count) {
    for (int i = 1; i < count; ++i) {
        if (!(values[i - 1] < values[i])) return false;
    }
    return true;
}
static_assert(strictly_increasing(kNf4Thresholds, 15), "the NF4 tree needs sorted thresholds");
static_assert(strictly_increasing(kFp4MagnitudeThresholds, 7), "the FP4 tree needs sorted thresholds");

constexpr ThresholdTree<4> kNf4Tree(kNf4Thresholds);
constexpr ThresholdTree<3> kFp4Tree(kFp4MagnitudeThresholds);

// [8 + count] = the FP4 magnitude index of a value above `count` thresholds.
constexpr int32_t kFp4MagnitudeByCount[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 7, 4, 5, 2, 3};
static_assert(kFp4MagnitudeIndexAbove[0] == 1 && kFp4MagnitudeIndexAbove[6] == 3, "FP4 magnitude order changed");

// Dequantization values by code (FP4 code 8 is -0, as fp4_value).
struct DecodeTables {
    float nf4[16];
    float fp4[16];
    constexpr DecodeTables() : nf4{}, fp4{} {
        for (int c = 0; c < 16; ++c) {
            nf4[c] = kNf4Values[c];
            fp4[c] = (c & 8) ? -kFp4Magnitudes[c & 7] : kFp4Magnitudes[c & 7];
        }
    }
};
constexpr DecodeTables kDecode;

template <bnb_quant_type Q>
BNB_AVX512 inline __m512i encode16(__m512 s) {
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
BNB_AVX512 inline __m128i pack_nibbles(__m512i codes) {
    const __m512i pairs = _mm512_or_si512(_mm512_slli_epi64(codes, 4), _mm512_srli_epi64(codes, 32));
    return _mm512_cvtepi64_epi8(pairs);
}

template <bnb_quant_type Q, typename T>
BNB_AVX512 void quantize_4bit_blocks(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    const int64_t chunk = quantize_chunk_blocks(args.blocksize);
    float reciprocal[kQuantizeChunkMaxBlocks];
    for (int64_t chunk_first = first_block; chunk_first < last_block; chunk_first += chunk) {
        const int64_t chunk_last = std::min(last_block, chunk_first + chunk);
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            args.absmax[block] = block_absmax16(A + begin, std::min(args.blocksize, args.n - begin));
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            reciprocal[block - chunk_first] = rcp_approx_ftz(args.absmax[block]);
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            const int64_t count = std::min(args.blocksize, args.n - begin);
            const __m512 scale = _mm512_set1_ps(reciprocal[block - chunk_first]);
            // blocksize is even, so a byte never straddles two blocks.
            for (int64_t i = 0; i < count; i += 32) {
                const __mmask16 first_lanes = lanes16(count - i);
                const __mmask16 second_lanes = lanes16(std::max<int64_t>(count - i - 16, 0));
                // A missing last element of an odd n is encoded as 0.0 (maskz), not 0 * reciprocal.
                const __m512 first = _mm512_maskz_mov_ps(first_lanes, ftz_mul_flushed(load16(A + begin + i, first_lanes), scale));
                const __m512 second =
                    _mm512_maskz_mov_ps(second_lanes, ftz_mul_flushed(load16(A + begin + i + 16, second_lanes), scale));
                const __m128i bytes =
                    _mm_unpacklo_epi64(pack_nibbles(encode16<Q>(first)), pack_nibbles(encode16<Q>(second)));
                const int64_t byte_count = std::min<int64_t>(count - i + 1, 32) / 2;
                _mm_mask_storeu_epi8(args.packed + (begin + i) / 2, lanes16(byte_count), bytes);
            }
        }
    }
}

// The table is hidden from the optimizer, which could otherwise compute the
// FP4 codes 8-15 (negated codes 0-7) as -(m * scale) and flip the sign of a NaN
// product (0 * inf) against the reference.
template <bnb_quant_type Q>
BNB_AVX512 inline __m512 decode_table(float flushed_scale) {
    __m512 values = _mm512_loadu_ps(Q == BNB_QUANT_NF4 ? kDecode.nf4 : kDecode.fp4);
    __asm__("" : "+v"(values));
    return flush16(_mm512_mul_ps(values, _mm512_set1_ps(flushed_scale)));
}

template <bnb_quant_type Q>
BNB_AVX512 void dequantize_4bit_blocks_f32(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    float* out = static_cast<float*>(args.out);
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m512 table = decode_table<Q>(flush_denormal(args.absmax[block]));
        for (int64_t i = 0; i < count; i += 16) {
            const int64_t remaining = count - i;
            const __m128i bytes =
                _mm_maskz_loadu_epi8(lanes16((std::min<int64_t>(remaining, 16) + 1) / 2), args.packed + (begin + i) / 2);
            // One byte per 64-bit lane -> its high nibble in the low 32 bits, low nibble above.
            const __m512i byte_lanes = _mm512_cvtepu8_epi64(bytes);
            const __m512i codes = _mm512_or_si512(_mm512_srli_epi64(byte_lanes, 4),
                                                  _mm512_slli_epi64(_mm512_and_si512(byte_lanes, _mm512_set1_epi64(15)), 32));
            _mm512_mask_storeu_ps(out + begin + i, lanes16(remaining), _mm512_permutexvar_ps(codes, table));
        }
    }
}

// 16-bit outputs: the block's 16 results are converted once, then looked up as
// words, 32 per step.
template <bnb_quant_type Q, typename T>
BNB_AVX512 void dequantize_4bit_blocks_16(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    uint16_t* out = static_cast<uint16_t*>(args.out);
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m512i table = _mm512_zextsi256_si512(bits16<T>(decode_table<Q>(flush_denormal(args.absmax[block]))));
        for (int64_t i = 0; i < count; i += 32) {
            const int64_t remaining = count - i;
            const __m128i bytes =
                _mm_maskz_loadu_epi8(lanes16((std::min<int64_t>(remaining, 32) + 1) / 2), args.packed + (begin + i) / 2);
            // One byte per 32-bit lane -> its high nibble in the low 16 bits, low nibble above.
            const __m512i byte_lanes = _mm512_cvtepu8_epi32(bytes);
            const __m512i codes = _mm512_or_si512(_mm512_srli_epi32(byte_lanes, 4),
                                                  _mm512_slli_epi32(_mm512_and_si512(byte_lanes, _mm512_set1_epi32(15)), 16));
            _mm512_mask_storeu_epi16(out + begin + i, lanes32(remaining), _mm512_permutexvar_epi16(codes, table));
        }
    }
}

// ---- dtype / quant type dispatch ----------------------------------------------------

void quantize_blockwise_avx512(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables,
                               int64_t first_block, int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        quantize_blockwise_blocks<decltype(tag)>(args, tables, first_block, last_block);
    });
}

void dequantize_blockwise_avx512(const DequantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block) {
    const bool result_table = args.blocksize >= kMinBlocksizeForResultTable;
    switch (args.dtype) {
        case BNB_DTYPE_FLOAT16:
            if (result_table) return dequantize_blockwise_blocks_16<Half>(args, first_block, last_block);
            return dequantize_blockwise_blocks<Half>(args, first_block, last_block);
        case BNB_DTYPE_BFLOAT16:
            if (result_table) return dequantize_blockwise_blocks_16<BFloat16>(args, first_block, last_block);
            return dequantize_blockwise_blocks<BFloat16>(args, first_block, last_block);
        default: return dequantize_blockwise_blocks<float>(args, first_block, last_block);
    }
}

void quantize_4bit_avx512(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        using T = decltype(tag);
        if (args.quant_type == BNB_QUANT_NF4) quantize_4bit_blocks<BNB_QUANT_NF4, T>(args, first_block, last_block);
        else quantize_4bit_blocks<BNB_QUANT_FP4, T>(args, first_block, last_block);
    });
}

template <bnb_quant_type Q>
void dequantize_4bit_typed(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    switch (args.dtype) {
        case BNB_DTYPE_FLOAT16: return dequantize_4bit_blocks_16<Q, Half>(args, first_block, last_block);
        case BNB_DTYPE_BFLOAT16: return dequantize_4bit_blocks_16<Q, BFloat16>(args, first_block, last_block);
        default: return dequantize_4bit_blocks_f32<Q>(args, first_block, last_block);
    }
}

void dequantize_4bit_avx512(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    if (args.quant_type == BNB_QUANT_NF4) dequantize_4bit_typed<BNB_QUANT_NF4>(args, first_block, last_block);
    else dequantize_4bit_typed<BNB_QUANT_FP4>(args, first_block, last_block);
}

const KernelSet kAvx512Kernels = {CpuIsa::kAvx512, quantize_blockwise_avx512, dequantize_blockwise_avx512,
                                  quantize_4bit_avx512, dequantize_4bit_avx512};

}  // namespace

const KernelSet& avx512_kernels() { return kAvx512Kernels; }

}  // namespace bnb::cpu

#else  // not x86-64: never selected (isa_supported is false)

namespace bnb::cpu {
const KernelSet& avx512_kernels() { return scalar_kernels(); }
}  // namespace bnb::cpu

#endif
