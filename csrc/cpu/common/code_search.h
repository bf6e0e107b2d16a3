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
struct CodeSearchTables {
    alignas(64) float node_value[128];   // [k] = code[pivot of node k], k = 1 .. 127 ([0] unused)
    alignas(64) float final_value[128];  // [B] = code[2B]
    alignas(64) float mid_above[128];    // [B] = (code[2B + 1] + code[2B]) * 0.5f
    alignas(64) float mid_below[128];    // [B] = (code[2B - 1] + code[2B]) * 0.5f; -inf for B = 0,
                                         // where the lower neighbour is index 0 itself
};

// Call under DefaultFloatMode: the midpoints must round as the kernels' own.
void build_code_search_tables(const float* code, CodeSearchTables* tables);

}  // namespace bnb::cpu
