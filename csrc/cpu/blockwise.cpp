// Blockwise 8-bit quantize / dequantize on the CPU: the entry points of the
// backend table, bit-identical to upstream's CUDA kernels (formats.md section 2).
#include <cmath>
#include <limits>

#include "cpu_kernels.h"
#include "float_types.h"
#include "kernel_set.h"
#include "float_mode.h"
#include "memory_hints.h"
#include "parallel.h"

namespace bnb::cpu {

// Upstream's code search (dQuantize): a 7-step binary descent from pivot 127,
// then a choice between the pivot and the last bracketing neighbour by their
// float32 midpoint. Works for any 256-entry code, sorted or not.
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

float block_absmax(const float* values, int64_t count) {
    float absmax = 0.0f;
    for (int64_t i = 0; i < count; ++i) {
        const float magnitude = std::fabs(flush_denormal(values[i]));
        absmax = magnitude > absmax ? magnitude : absmax;  // NaN never wins (fmaxf)
    }
    return absmax;
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
}

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args) {
    const DefaultFloatMode float_mode;  // the midpoints of the tables round like the kernels' own
    const KernelSet& kernels = active_kernels();
    CodeSearchTables tables;
    if (kernels.isa != CpuIsa::kScalar) build_code_search_tables(args.code, &tables);
    advise_huge_pages(args.out, static_cast<size_t>(args.n));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // About 1.6 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 15, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.quantize_blockwise(args, tables, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args) {
    const KernelSet& kernels = active_kernels();
    advise_huge_pages(args.out, static_cast<size_t>(args.n * dtype_bytes(args.dtype)));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // 0.1 to 0.2 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 18, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.dequantize_blockwise(args, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
