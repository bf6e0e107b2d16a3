#include "common/code_search.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>

namespace bnb::cpu {

uint8_t search_code(const float* code, float s) {
    int pivot = 127;
    int upper_pivot = 255;
    int lower_pivot = 0;
    float upper = 1.0f;
    float lower = -1.0f;
    float value = code[pivot];
    for (int step = 64; step > 0; step >>= 1) {
        if (s > value) {
            lower_pivot = pivot;
            lower = value;
            pivot += step;
        } else {
            upper_pivot = pivot;
            upper = value;
            pivot -= step;
        }
        value = code[pivot];
    }
    if (upper_pivot == 255) upper = code[255];
    if (lower_pivot == 0) lower = code[0];
    if (s > value) return static_cast<uint8_t>(s > (upper + value) * 0.5f ? upper_pivot : pivot);
    return static_cast<uint8_t>(s < (lower + value) * 0.5f ? lower_pivot : pivot);
}

void build_code_search_tables(const float* code, CodeSearchTables* tables) {
    // Node k at depth d (2^d <= k < 2^(d+1)) is pivot 2^(7-d) - 1 + (k - 2^d) * 2^(8-d).
    tables->node_value[0] = 0.0f;
    for (int depth = 0; depth < 7; ++depth) {
        for (int k = 1 << depth; k < 2 << depth; ++k) {
            const int pivot = (1 << (7 - depth)) - 1 + (k - (1 << depth)) * (1 << (8 - depth));
            tables->node_value[k] = code[pivot];
        }
    }
    // The same expressions as search_code, so the midpoints round alike.
    for (int b = 0; b < 128; ++b) {
        const float value = code[2 * b];
        tables->final_value[b] = value;
        tables->mid_above[b] = (code[2 * b + 1] + value) * 0.5f;
        tables->mid_below[b] = b == 0 ? -std::numeric_limits<float>::infinity() : (code[2 * b - 1] + value) * 0.5f;
    }
    bool holds = true;
    for (int i = 0; i < 255; ++i) {
        tables->threshold[i] = (code[i + 1] + code[i]) * 0.5f;
        holds = holds && code[i] < tables->threshold[i] && (i == 254 || tables->threshold[i] < code[i + 1]);
    }
    tables->threshold[255] = 0.0f;
    tables->buckets_apply = holds;
    std::fill(std::begin(tables->first), std::end(tables->first), uint8_t{255});
    if (!holds) return;
    int threshold_index = 0;  // the thresholds increase, so their buckets do
    for (int bucket = 0; bucket <= kCodeBuckets; ++bucket) {
        while (threshold_index < 255) {
            uint32_t bits;
            std::memcpy(&bits, &tables->threshold[threshold_index], sizeof(bits));
            if (code_bucket(bits) >= bucket) break;
            ++threshold_index;
        }
        tables->first[bucket] = static_cast<uint8_t>(threshold_index);
    }
}

}  // namespace bnb::cpu
