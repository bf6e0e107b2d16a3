// NF4 / FP4 tables in the forms the vector layers look up.
#pragma once

#include <cstdint>

#include "codebooks.h"

namespace bnb::cpu {

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

inline constexpr ThresholdTree<4> kNf4Tree(kNf4Thresholds);
inline constexpr ThresholdTree<3> kFp4Tree(kFp4MagnitudeThresholds);

// [8 + count] = the FP4 magnitude index of a value above `count` thresholds.
alignas(64) inline constexpr int32_t kFp4MagnitudeByCount[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 7, 4, 5, 2, 3};
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
inline constexpr DecodeTables kDecode;

template <bnb_quant_type Q>
constexpr const float* decode_values() {
    return Q == BNB_QUANT_NF4 ? kDecode.nf4 : kDecode.fp4;
}

}  // namespace bnb::cpu
