// AVX2 + F16C kernels: 8 float32 lanes; block tails go through small zeroed
// stack buffers (AVX2 has no byte or 16-bit masked loads).
//
// The same arithmetic as the scalar reference and the AVX-512 kernels
// (kernels_avx512.cpp explains the table forms of the searches); target
// attributes per function for the reason given there.
#include "kernel_set.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "codebooks.h"
#include "float_types.h"
#include "rcp_approx.h"

#define BNB_AVX2 __attribute__((target("avx2,f16c")))

namespace bnb::cpu {
namespace {

// ---- 8 elements of T <-> 8 float32 lanes ------------------------------------------

BNB_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }

BNB_AVX2 inline __m256 load8(const Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

BNB_AVX2 inline __m256 load8(const BFloat16* p) {
    const __m256i widened = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(widened, 16));
}

// The first `count` (< 8) elements, zeros after them.
template <typename T>
BNB_AVX2 inline __m256 load8_partial(const T* p, int64_t count) {
    T padded[8] = {};
    std::memcpy(padded, p, static_cast<size_t>(count) * sizeof(T));
    return load8(padded);
}

// Lanes [0, count) all ones, the rest zero.
BNB_AVX2 inline __m256i lanes8(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 int32 lanes holding values 0..255 -> 8 bytes.
BNB_AVX2 inline __m128i pack_bytes(__m256i values) {
    const __m256i words = _mm256_packus_epi32(values, values);  // per 128-bit half: v0..3 v0..3 | v4..7 v4..7
    const __m256i bytes = _mm256_packus_epi16(words, words);
    return _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
}

// from_float<Half>: round to nearest even in hardware; a NaN keeps only its sign.
BNB_AVX2 inline __m128i half_bits(__m256 x) {
    __m128i bits = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const int nan = _mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    if (nan != 0) {
        alignas(16) uint16_t lanes[8];
        alignas(32) uint32_t source[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(lanes), bits);
        _mm256_store_si256(reinterpret_cast<__m256i*>(source), _mm256_castps_si256(x));
        for (int j = 0; j < 8; ++j) {
            if (nan & (1 << j)) lanes[j] = static_cast<uint16_t>(((source[j] >> 16) & 0x8000u) | 0x7e00u);
        }
        bits = _mm_load_si128(reinterpret_cast<const __m128i*>(lanes));
    }
    return bits;
}

// from_float<BFloat16>: round to nearest even on the bits; a NaN keeps its upper
// half with the quiet bit set.
BNB_AVX2 inline __m128i bfloat16_bits(__m256 x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i words = _mm256_packus_epi32(_mm256_blendv_epi8(rounded, quiet, nan), _mm256_setzero_si256());
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(words, 0x08));  // halves' low quadwords
}

template <typename T>
BNB_AVX2 inline __m128i bits16(__m256 x);
template <>
BNB_AVX2 inline __m128i bits16<Half>(__m256 x) { return half_bits(x); }
template <>
BNB_AVX2 inline __m128i bits16<BFloat16>(__m256 x) { return bfloat16_bits(x); }

BNB_AVX2 inline void store8(float* p, __m256 x) { _mm256_storeu_ps(p, x); }
BNB_AVX2 inline void store8(Half* p, __m256 x) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), half_bits(x)); }
BNB_AVX2 inline void store8(BFloat16* p, __m256 x) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bfloat16_bits(x));
}

template <typename T>
BNB_AVX2 inline void store8_partial(T* p, __m256 x, int64_t count) {
    T padded[8];
    store8(padded, x);
    std::memcpy(p, padded, static_cast<size_t>(count) * sizeof(T));
}

// ---- float32 arithmetic with CUDA's flush-to-zero ------------------------------------

BNB_AVX2 inline __m256 flush8(__m256 x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i exponent_zero =
        _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
    const __m256i signed_zero = _mm256_and_si256(bits, _mm256_set1_epi32(static_cast<int>(0x80000000u)));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(bits, signed_zero, exponent_zero));
}

BNB_AVX2 inline __m256 ftz_mul_flushed(__m256 x, __m256 flushed_scale) {
    return flush8(_mm256_mul_ps(flush8(x), flushed_scale));
}

BNB_AVX2 inline __m256 flushed_magnitude(__m256 x) {
    const __m256i bits = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff));
    const __m256i exponent_zero =
        _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
    return _mm256_castsi256_ps(_mm256_andnot_si256(exponent_zero, bits));
}

// block_absmax; max_ps returns its second operand when the first is NaN.
template <typename T>
BNB_AVX2 inline float block_absmax8(const T* x, int64_t count) {
    __m256 even = _mm256_setzero_ps();
    __m256 odd = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) {
        even = _mm256_max_ps(flushed_magnitude(load8(x + i)), even);
        odd = _mm256_max_ps(flushed_magnitude(load8(x + i + 8)), odd);
    }
    for (; i + 8 <= count; i += 8) even = _mm256_max_ps(flushed_magnitude(load8(x + i)), even);
    if (i < count) even = _mm256_max_ps(flushed_magnitude(load8_partial(x + i, count - i)), even);
    __m256 m = _mm256_max_ps(even, odd);
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

// Child of each node: 2k + 1 if s > the node's value, else 2k.
BNB_AVX2 inline __m256i descend(__m256i node, __m256 s, __m256 value) {
    const __m256i above = _mm256_castps_si256(_mm256_cmp_ps(s, value, _CMP_GT_OQ));
    return _mm256_sub_epi32(_mm256_add_epi32(node, node), above);
}

// ---- 8-bit blockwise ------------------------------------------------------------------

struct CodeSearch {
    __m256 depth0to2;  // nodes 0 .. 7 (node 0 unused)
    __m256 depth3;     // nodes 8 .. 15
    __m256 depth4_low, depth4_high;  // nodes 16 .. 31
    const CodeSearchTables* tables;  // deeper nodes and the final choice, gathered
};

// search_code for 8 values (NaN ends at index 0, as in the reference).
BNB_AVX2 inline __m256i search_code8(const CodeSearch& search, __m256 s) {
    __m256i node = _mm256_set1_epi32(1);
    for (int depth = 0; depth < 3; ++depth) node = descend(node, s, _mm256_permutevar8x32_ps(search.depth0to2, node));
    node = descend(node, s, _mm256_permutevar8x32_ps(search.depth3, node));
    const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(node, 28));
    node = descend(node, s, _mm256_blendv_ps(_mm256_permutevar8x32_ps(search.depth4_low, node),
                                             _mm256_permutevar8x32_ps(search.depth4_high, node), bit3));
    node = descend(node, s, _mm256_i32gather_ps(search.tables->node_value, node, 4));  // 32 .. 63
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

template <typename T>
BNB_AVX2 void quantize_blockwise_blocks(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables,
                                        int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    const CodeSearch search = {_mm256_load_ps(tables.node_value), _mm256_load_ps(tables.node_value + 8),
                               _mm256_load_ps(tables.node_value + 16), _mm256_load_ps(tables.node_value + 24), &tables};
    const int64_t chunk = quantize_chunk_blocks(args.blocksize);
    float reciprocal[kQuantizeChunkMaxBlocks];
    for (int64_t chunk_first = first_block; chunk_first < last_block; chunk_first += chunk) {
        const int64_t chunk_last = std::min(last_block, chunk_first + chunk);
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            args.absmax[block] = block_absmax8(A + begin, std::min(args.blocksize, args.n - begin));
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            reciprocal[block - chunk_first] = rcp_approx_ftz(args.absmax[block]);
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            const int64_t count = std::min(args.blocksize, args.n - begin);
            const __m256 scale = _mm256_set1_ps(reciprocal[block - chunk_first]);
            int64_t i = 0;
            for (; i + 8 <= count; i += 8) {
                const __m256 s = ftz_mul_flushed(load8(A + begin + i), scale);
                _mm_storel_epi64(reinterpret_cast<__m128i*>(args.out + begin + i), pack_bytes(search_code8(search, s)));
            }
            if (i < count) {
                const __m256 s = ftz_mul_flushed(load8_partial(A + begin + i, count - i), scale);
                alignas(16) uint8_t codes[16];
                _mm_store_si128(reinterpret_cast<__m128i*>(codes), pack_bytes(search_code8(search, s)));
                std::memcpy(args.out + begin + i, codes, static_cast<size_t>(count - i));
            }
        }
    }
}

template <typename T>
BNB_AVX2 void dequantize_blockwise_blocks(const DequantizeBlockwiseArgs& args, int64_t first_block,
                                          int64_t last_block) {
    T* out = static_cast<T*>(args.out);
    alignas(32) float code[256];
    for (int j = 0; j < 256; j += 8) _mm256_store_ps(code + j, flush8(_mm256_loadu_ps(args.code + j)));
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m256 scale = _mm256_set1_ps(flush_denormal(args.absmax[block]));
        int64_t i = 0;
        for (; i + 8 <= count; i += 8) {
            const __m256i index = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(args.A + begin + i)));
            store8(out + begin + i, flush8(_mm256_mul_ps(_mm256_i32gather_ps(code, index, 4), scale)));
        }
        if (i < count) {
            alignas(16) uint8_t padded[16] = {};
            std::memcpy(padded, args.A + begin + i, static_cast<size_t>(count - i));
            const __m256i index = _mm256_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(padded)));
            store8_partial(out + begin + i, flush8(_mm256_mul_ps(_mm256_i32gather_ps(code, index, 4), scale)), count - i);
        }
    }
}

// Blocks of at least this many elements are dequantized from a per-block table
// of the 256 possible results (converted once), one scalar load per element:
// on CPUs whose gathers are slow (AMD Zen) that beats a gather per 8 elements.
inline constexpr int64_t kMinBlocksizeForResultTable = 256;

template <typename T>
BNB_AVX2 void dequantize_blockwise_from_table(const DequantizeBlockwiseArgs& args, int64_t first_block,
                                              int64_t last_block) {
    T* out = static_cast<T*>(args.out);
    alignas(32) float code[256];
    for (int j = 0; j < 256; j += 8) _mm256_store_ps(code + j, flush8(_mm256_loadu_ps(args.code + j)));
    alignas(32) T results[256];
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m256 scale = _mm256_set1_ps(flush_denormal(args.absmax[block]));
        for (int j = 0; j < 256; j += 8) store8(results + j, flush8(_mm256_mul_ps(_mm256_load_ps(code + j), scale)));
        const uint8_t* codes = args.A + begin;
        T* block_out = out + begin;
        for (int64_t i = 0; i < count; ++i) block_out[i] = results[codes[i]];
    }
}

// ---- 4-bit NF4 / FP4 ----------------------------------------------------------------

// The thresholds as implicit binary trees, as in kernels_avx512.cpp.
struct ThresholdTrees {
    float nf4[16];  // nodes 1 .. 15 of the 15 NF4 thresholds
    float fp4[8];   // nodes 1 .. 7 of the 7 FP4 magnitude thresholds
    constexpr ThresholdTrees() : nf4{}, fp4{} {
        for (int depth = 0; depth < 4; ++depth) {
            for (int k = 1 << depth; k < 2 << depth; ++k) {
                nf4[k] = kNf4Thresholds[(k - (1 << depth)) * (1 << (4 - depth)) + (1 << (3 - depth)) - 1];
            }
        }
        for (int depth = 0; depth < 3; ++depth) {
            for (int k = 1 << depth; k < 2 << depth; ++k) {
                fp4[k] = kFp4MagnitudeThresholds[(k - (1 << depth)) * (1 << (3 - depth)) + (1 << (2 - depth)) - 1];
            }
        }
    }
};
constexpr ThresholdTrees kTrees;

constexpr bool strictly_increasing(const float* values, int count) {
    for (int i = 1; i < count; ++i) {
        if (!(values[i - 1] < values[i])) return false;
    }
    return true;
}
static_assert(strictly_increasing(kNf4Thresholds, 15), "the NF4 tree needs sorted thresholds");
static_assert(strictly_increasing(kFp4MagnitudeThresholds, 7), "the FP4 tree needs sorted thresholds");

// [count] = the FP4 magnitude index of a value above `count` thresholds.
constexpr int32_t kFp4MagnitudeByCount[8] = {0, 1, 6, 7, 4, 5, 2, 3};
static_assert(kFp4MagnitudeIndexAbove[0] == 1 && kFp4MagnitudeIndexAbove[6] == 3, "FP4 magnitude order changed");

// Loads 8 entries of a constant table, hidden from the optimizer: it would
// otherwise see that FP4 codes 8-15 are the negated codes 0-7 and compute
// (-m) * scale as -(m * scale), which flips the sign of a NaN product
// (0 * inf) against the reference.
BNB_AVX2 inline __m256 load_opaque(const float* table) {
    __m256 values = _mm256_loadu_ps(table);
    __asm__("" : "+x"(values));
    return values;
}

struct DecodeTables {
    float nf4[16];
    float fp4[16];  // code 8 is -0, as fp4_value
    constexpr DecodeTables() : nf4{}, fp4{} {
        for (int c = 0; c < 16; ++c) {
            nf4[c] = kNf4Values[c];
            fp4[c] = (c & 8) ? -kFp4Magnitudes[c & 7] : kFp4Magnitudes[c & 7];
        }
    }
};
constexpr DecodeTables kDecode;

template <bnb_quant_type Q>
BNB_AVX2 inline __m256i encode8(__m256 s) {
    if constexpr (Q == BNB_QUANT_NF4) {
        const __m256 upper_levels = _mm256_loadu_ps(kTrees.nf4);
        const __m256 last_level = _mm256_loadu_ps(kTrees.nf4 + 8);
        __m256i node = _mm256_set1_epi32(1);
        for (int depth = 0; depth < 3; ++depth) node = descend(node, s, _mm256_permutevar8x32_ps(upper_levels, node));
        node = descend(node, s, _mm256_permutevar8x32_ps(last_level, node));
        return _mm256_and_si256(node, _mm256_set1_epi32(15));
    } else {
        const __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_LT_OQ));
        const __m256 magnitude = _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(s), _mm256_set1_epi32(0x7fffffff)));
        const __m256 tree = _mm256_loadu_ps(kTrees.fp4);
        __m256i node = _mm256_set1_epi32(1);
        for (int depth = 0; depth < 3; ++depth) node = descend(node, magnitude, _mm256_permutevar8x32_ps(tree, node));
        const __m256i code = _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kFp4MagnitudeByCount)), node);  // node = 8 + count
        return _mm256_or_si256(code, _mm256_and_si256(negative, _mm256_set1_epi32(8)));
    }
}

// Codes of 16 consecutive elements -> 8 bytes, the lower index in the high nibble.
BNB_AVX2 inline __m128i pack_nibbles(__m256i first, __m256i second) {
    const __m256i byte_mask = _mm256_set1_epi64x(0xff);
    const __m256i first_pairs = _mm256_and_si256(_mm256_or_si256(_mm256_slli_epi64(first, 4), _mm256_srli_epi64(first, 32)), byte_mask);
    const __m256i second_pairs = _mm256_and_si256(_mm256_or_si256(_mm256_slli_epi64(second, 4), _mm256_srli_epi64(second, 32)), byte_mask);
    // 32-bit lanes b0 b4 b1 b5 | b2 b6 b3 b7 -> b0 .. b7
    const __m256i merged = _mm256_or_si256(first_pairs, _mm256_slli_epi64(second_pairs, 32));
    return pack_bytes(_mm256_permutevar8x32_epi32(merged, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
}

template <bnb_quant_type Q, typename T>
BNB_AVX2 void quantize_4bit_blocks(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    const int64_t chunk = quantize_chunk_blocks(args.blocksize);
    float reciprocal[kQuantizeChunkMaxBlocks];
    for (int64_t chunk_first = first_block; chunk_first < last_block; chunk_first += chunk) {
        const int64_t chunk_last = std::min(last_block, chunk_first + chunk);
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            args.absmax[block] = block_absmax8(A + begin, std::min(args.blocksize, args.n - begin));
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            reciprocal[block - chunk_first] = rcp_approx_ftz(args.absmax[block]);
        }
        for (int64_t block = chunk_first; block < chunk_last; ++block) {
            const int64_t begin = block * args.blocksize;
            const int64_t count = std::min(args.blocksize, args.n - begin);
            const __m256 scale = _mm256_set1_ps(reciprocal[block - chunk_first]);
            // blocksize is even, so a byte never straddles two blocks.
            int64_t i = 0;
            for (; i + 16 <= count; i += 16) {
                const __m256i first = encode8<Q>(ftz_mul_flushed(load8(A + begin + i), scale));
                const __m256i second = encode8<Q>(ftz_mul_flushed(load8(A + begin + i + 8), scale));
                _mm_storel_epi64(reinterpret_cast<__m128i*>(args.packed + (begin + i) / 2), pack_nibbles(first, second));
            }
            if (i < count) {
                // Missing elements (and the missing last one of an odd n) encode 0.0, not 0 * reciprocal.
                const int64_t remaining = count - i;
                const __m256 first = _mm256_and_ps(
                    ftz_mul_flushed(load8_partial(A + begin + i, std::min<int64_t>(remaining, 8)), scale),
                    _mm256_castsi256_ps(lanes8(remaining)));
                const __m256 second =
                    remaining > 8 ? _mm256_and_ps(ftz_mul_flushed(load8_partial(A + begin + i + 8, remaining - 8), scale),
                                                  _mm256_castsi256_ps(lanes8(remaining - 8)))
                                  : _mm256_setzero_ps();
                alignas(16) uint8_t bytes[16];
                _mm_store_si128(reinterpret_cast<__m128i*>(bytes), pack_nibbles(encode8<Q>(first), encode8<Q>(second)));
                std::memcpy(args.packed + (begin + i) / 2, bytes, static_cast<size_t>((remaining + 1) / 2));
            }
        }
    }
}

// The codes of 4 bytes, in element order: one 32-bit lane per nibble.
BNB_AVX2 inline __m256i unpack_nibbles8(uint32_t four_bytes) {
    const __m256i byte_lanes = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(static_cast<int>(four_bytes)));
    return _mm256_or_si256(_mm256_srli_epi64(byte_lanes, 4),
                           _mm256_slli_epi64(_mm256_and_si256(byte_lanes, _mm256_set1_epi64x(15)), 32));
}

// The values of 8 codes (4 bytes) from the block's table of 16 results.
BNB_AVX2 inline __m256 decode8(__m256 low_codes, __m256 high_codes, uint32_t four_bytes) {
    const __m256i codes = unpack_nibbles8(four_bytes);
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(low_codes, codes), _mm256_permutevar8x32_ps(high_codes, codes),
                            _mm256_castsi256_ps(_mm256_slli_epi32(codes, 28)));
}

template <bnb_quant_type Q>
BNB_AVX2 void dequantize_4bit_blocks_f32(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    float* out = static_cast<float*>(args.out);
    const float* decode = Q == BNB_QUANT_NF4 ? kDecode.nf4 : kDecode.fp4;
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m256 scale = _mm256_set1_ps(flush_denormal(args.absmax[block]));
        const __m256 low_codes = flush8(_mm256_mul_ps(load_opaque(decode), scale));
        const __m256 high_codes = flush8(_mm256_mul_ps(load_opaque(decode + 8), scale));
        int64_t i = 0;
        for (; i + 8 <= count; i += 8) {
            uint32_t four_bytes;
            std::memcpy(&four_bytes, args.packed + (begin + i) / 2, 4);
            store8(out + begin + i, decode8(low_codes, high_codes, four_bytes));
        }
        if (i < count) {
            uint32_t four_bytes = 0;
            std::memcpy(&four_bytes, args.packed + (begin + i) / 2, static_cast<size_t>((count - i + 1) / 2));
            store8_partial(out + begin + i, decode8(low_codes, high_codes, four_bytes), count - i);
        }
    }
}

// 16-bit outputs: the block's 16 results, converted once, are split into a
// table of low bytes and one of high bytes; each is looked up by nibble with a
// byte shuffle, 32 elements per step.
template <bnb_quant_type Q, typename T>
BNB_AVX2 void dequantize_4bit_blocks_16(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    uint16_t* out = static_cast<uint16_t*>(args.out);
    const float* decode = Q == BNB_QUANT_NF4 ? kDecode.nf4 : kDecode.fp4;
    const __m128i low_byte = _mm_set1_epi16(0xff);
    const __m256i nibble = _mm256_set1_epi8(15);
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t count = std::min(args.blocksize, args.n - begin);
        const __m256 scale = _mm256_set1_ps(flush_denormal(args.absmax[block]));
        const __m128i first = bits16<T>(flush8(_mm256_mul_ps(load_opaque(decode), scale)));
        const __m128i second = bits16<T>(flush8(_mm256_mul_ps(load_opaque(decode + 8), scale)));
        const __m256i low_table = _mm256_broadcastsi128_si256(
            _mm_packus_epi16(_mm_and_si128(first, low_byte), _mm_and_si128(second, low_byte)));
        const __m256i high_table =
            _mm256_broadcastsi128_si256(_mm_packus_epi16(_mm_srli_epi16(first, 8), _mm_srli_epi16(second, 8)));
        for (int64_t i = 0; i < count; i += 32) {
            const int64_t remaining = count - i;
            alignas(16) uint8_t padded[16] = {};
            const uint8_t* source = args.packed + (begin + i) / 2;
            if (remaining < 32) {
                std::memcpy(padded, source, static_cast<size_t>((remaining + 1) / 2));
                source = padded;
            }
            const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(source));
            const __m256i both = _mm256_set_m128i(bytes, bytes);
            const __m256i high_nibbles = _mm256_and_si256(_mm256_srli_epi16(both, 4), nibble);
            const __m256i low_nibbles = _mm256_and_si256(both, nibble);
            // Element order: bytes 0-7 in the lower half, 8-15 in the upper.
            const __m256i codes = _mm256_permute2x128_si256(_mm256_unpacklo_epi8(high_nibbles, low_nibbles),
                                                            _mm256_unpackhi_epi8(high_nibbles, low_nibbles), 0x30);
            const __m256i low = _mm256_shuffle_epi8(low_table, codes);
            const __m256i high = _mm256_shuffle_epi8(high_table, codes);
            const __m256i words_a = _mm256_unpacklo_epi8(low, high);  // elements 0-7 | 16-23
            const __m256i words_b = _mm256_unpackhi_epi8(low, high);  // elements 8-15 | 24-31
            const __m256i out_first = _mm256_permute2x128_si256(words_a, words_b, 0x20);
            const __m256i out_second = _mm256_permute2x128_si256(words_a, words_b, 0x31);
            if (remaining >= 32) {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + begin + i), out_first);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + begin + i + 16), out_second);
            } else {
                alignas(32) uint16_t words[32];
                _mm256_store_si256(reinterpret_cast<__m256i*>(words), out_first);
                _mm256_store_si256(reinterpret_cast<__m256i*>(words + 16), out_second);
                std::memcpy(out + begin + i, words, static_cast<size_t>(remaining) * 2);
            }
        }
    }
}

// ---- dtype / quant type dispatch ----------------------------------------------------

void quantize_blockwise_avx2(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables, int64_t first_block,
                             int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        quantize_blockwise_blocks<decltype(tag)>(args, tables, first_block, last_block);
    });
}

void dequantize_blockwise_avx2(const DequantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        if (args.blocksize >= kMinBlocksizeForResultTable) {
            dequantize_blockwise_from_table<decltype(tag)>(args, first_block, last_block);
        } else {
            dequantize_blockwise_blocks<decltype(tag)>(args, first_block, last_block);
        }
    });
}

void quantize_4bit_avx2(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
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

void dequantize_4bit_avx2(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    if (args.quant_type == BNB_QUANT_NF4) dequantize_4bit_typed<BNB_QUANT_NF4>(args, first_block, last_block);
    else dequantize_4bit_typed<BNB_QUANT_FP4>(args, first_block, last_block);
}

const KernelSet kAvx2Kernels = {CpuIsa::kAvx2, quantize_blockwise_avx2, dequantize_blockwise_avx2, quantize_4bit_avx2,
                                dequantize_4bit_avx2};

}  // namespace

const KernelSet& avx2_kernels() { return kAvx2Kernels; }

}  // namespace bnb::cpu

#else  // not x86-64: never selected (isa_supported is false)

namespace bnb::cpu {
const KernelSet& avx2_kernels() { return scalar_kernels(); }
}  // namespace bnb::cpu

#endif
