// The CPU kernels of one instruction set, and what the entry points
// (blockwise.cpp, fourbit.cpp) hand them.
//
// Entry points split the blocks among threads; a kernel quantizes or
// dequantizes the blocks [first_block, last_block) of one call.
#pragma once

#include <cstdint>

#include "backend.h"
#include "cpu_isa.h"

namespace bnb::cpu {

// Upstream's 8-bit code search (blockwise.cpp, search_code) as lookup tables, so
// that vector kernels can run it on many values at once for any 256-entry code,
// sorted or not. The descent from pivot 127 with steps 64 .. 1 is a binary tree:
// node 1 is pivot 127 and node k has children 2k (s <= code[pivot]) and 2k + 1
// (s > code[pivot]). After 7 levels the node is 128 + B and the final pivot is
// p = 2B; the neighbours the search compares last are always p - 1 and p + 1
// (index 0 in place of -1).
struct CodeSearchTables {
    alignas(64) float node_value[128];  // [k] = code[pivot of node k], k = 1 .. 127 ([0] unused)
    alignas(64) float final_value[128];  // [B] = code[2B]
    alignas(64) float mid_above[128];    // [B] = (code[2B + 1] + code[2B]) * 0.5f
    alignas(64) float mid_below[128];    // [B] = (code[2B - 1] + code[2B]) * 0.5f; -inf for B = 0,
                                          // where the lower neighbour is index 0 itself
};

void build_code_search_tables(const float* code, CodeSearchTables* tables);

struct KernelSet {
    CpuIsa isa;
    void (*quantize_blockwise)(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables,
                               int64_t first_block, int64_t last_block);
    void (*dequantize_blockwise)(const DequantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block);
    void (*quantize_4bit)(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block);
    void (*dequantize_4bit)(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block);
};

// Quantizers take a range's blocks in chunks of about this many elements: first
// every block's absmax, then every reciprocal (the rcp_approx_ftz table loads miss
// the cache, and independent loads overlap), then the codes, with the chunk's
// input still in L1/L2.
inline constexpr int64_t kQuantizeChunkElements = 8192;
inline constexpr int64_t kQuantizeChunkMaxBlocks = kQuantizeChunkElements / 32;

inline int64_t quantize_chunk_blocks(int64_t blocksize) {
    return blocksize >= kQuantizeChunkElements ? 1 : kQuantizeChunkElements / blocksize;
}

const KernelSet& scalar_kernels();
const KernelSet& avx2_kernels();
const KernelSet& avx512_kernels();

// The set of active_isa().
const KernelSet& active_kernels();

}  // namespace bnb::cpu
