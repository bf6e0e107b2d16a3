// Upstream's 8-bit code search, as the scalar reference and as the lookup
// tables from which the vector layers search many values at once.
#pragma once

#include <cstdint>

namespace bnb::cpu {

// Upstream's code search (dQuantize): a 7-step binary descent from pivot 127,
// then a choice between the pivot and the last bracketing neighbour by their
// float32 midpoint. Works for any 256-entry code, sorted or not.
uint8_t search_code(const float* code, float s);

// search_code as lookup tables, for any 256-entry code, sorted or not. The
// descent from pivot 127 with steps 64 .. 1 is a binary tree: node 1 is pivot
// 127 and node k has children 2k (s <= code[pivot]) and 2k + 1
// (s > code[pivot]). After 7 levels the node is 128 + B and the final pivot is
// p = 2B; the neighbours the search compares last are always p - 1 and p + 1
// (index 0 in place of -1).
//
// Where the code's thresholds t_i = (code[i + 1] + code[i]) * 0.5f satisfy
// code[i] < t_i < code[i + 1] (every sorted code without repeated or adjacent
// entries: the dynamic maps), the search's result is also the number of
// thresholds s passes: s > t_i for even i, s >= t_i for odd i (ties go to the even
// final pivot). The thresholds then increase, so those in buckets of the float
// line below the bucket of s are all passed and those above it none; only the
// ones in its bucket are compared. The buckets are those of the CUDA backend
// (csrc/cuda/quantize_common.cuh): 32 per octave of |s| in [2^-24, 1), one below
// (normal magnitudes), one for [1, inf], per sign, and one for zero and the
// subnormals between the two signs, so that the bucket index grows with s.
inline constexpr int kBucketMantissaBits = 5;
inline constexpr int kBucketOctaves = 24;
inline constexpr int kBucketsPerSign = (kBucketOctaves << kBucketMantissaBits) + 2;
inline constexpr int kCodeBuckets = 2 * kBucketsPerSign + 1;

inline int code_bucket(uint32_t bits) {
    const uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude < 0x00800000u) return kBucketsPerSign;  // zero, subnormal
    const int octave_step = static_cast<int>(magnitude >> (23 - kBucketMantissaBits)) -
                            ((127 - kBucketOctaves) << kBucketMantissaBits) + 1;
    const int step = octave_step < 0 ? 0 : octave_step > kBucketsPerSign - 1 ? kBucketsPerSign - 1 : octave_step;
    return bits >> 31 ? kBucketsPerSign - 1 - step : kBucketsPerSign + 1 + step;
}

struct CodeSearchTables {
    alignas(64) float node_value[128];   // [k] = code[pivot of node k], k = 1 .. 127 ([0] unused)
    alignas(64) float final_value[128];  // [B] = code[2B]
    alignas(64) float mid_above[128];    // [B] = (code[2B + 1] + code[2B]) * 0.5f
    alignas(64) float mid_below[128];    // [B] = (code[2B - 1] + code[2B]) * 0.5f; -inf for B = 0,
                                         // where the lower neighbour is index 0 itself
    // The bucket search, where the condition above holds (buckets_apply):
    alignas(64) float threshold[256];    // [i] = t_i, i < 255
    // [k] = thresholds in buckets below k, so bucket k holds [first[k], first[k + 1]);
    // 3 bytes of padding let a 4-byte gather read first[k] and first[k + 1] at once.
    alignas(64) uint8_t first[kCodeBuckets + 4];
    bool buckets_apply;
};

// Call under DefaultFloatMode: the midpoints must round as the kernels' own.
void build_code_search_tables(const float* code, CodeSearchTables* tables);

}  // namespace bnb::cpu
