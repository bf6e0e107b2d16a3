// The blockwise 8-bit kernels, written once over the vector layer and compiled
// by scalar.cpp, avx2.cpp and avx512.cpp (common/isa_dispatch.h), bit-identical
// to upstream's CUDA kernels (formats.md section 2).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "blockwise/blockwise.h"
#include "common/float_types.h"
#include "common/kernel_helpers.h"

namespace bnb::cpu::BNB_CPU_ISA {

// One block's codes. A call of its own, not inlined into the chunk loop: there
// the loop's integers outnumber the general registers, GCC parks them in vector
// registers, and the AVX-512 code search, whose tables take the vector
// registers, then spills its temporaries in every step. Each call reloads the
// tables, as the inlined loop did for every block.
template <typename Element>
[[gnu::noinline]] BNB_CPU_KERNEL void quantize_block_codes(const CodeSearch& tables, const Element* in, int64_t count,
                                                           Vec scale, uint8_t* out) {
    // A local copy: the byte stores may alias `tables`, which would otherwise
    // be reloaded in every step.
    const CodeSearch search = tables;
    for_each_step(count, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
        store_code_bytes(out + i, search_codes(search, ftz_mul_flushed(load(in + i, lanes), scale)), lanes);
    });
}

template <typename T>
BNB_CPU_KERNEL void quantize_blockwise_blocks(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables,
                                              int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    const CodeSearch search = load_code_search(args.code, tables);
    quantize_in_chunks(A, args.n, args.blocksize, args.absmax, first_block, last_block,
                       [&](int64_t begin, int64_t count, Vec scale, const auto* in) BNB_CPU_KERNEL {
                           quantize_block_codes(search, in, count, scale, args.out + begin);
                       });
}

// Large blocks from a table of the block's 256 possible results, where the
// vector layer has one (ResultTableFor).
template <typename T, typename Results>
BNB_CPU_KERNEL void dequantize_blockwise_from_results(const DequantizeBlockwiseArgs& args, int64_t first_block,
                                                      int64_t last_block) {
    T* out = static_cast<T*>(args.out);
    const typename Results::Source source = Results::load_source(args.code);
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const Results results = Results::scaled(source, broadcast(flush_denormal(args.absmax[block])));
        const uint8_t* const codes = args.A + begin;
        T* const block_out = out + begin;
        for_each_step(std::min(args.blocksize, args.n - begin), Results::kStep,
                      [&](int64_t i, auto lanes) BNB_CPU_KERNEL { results.write(block_out + i, codes + i, lanes); });
    }
}

// The smallest blocksize that goes through Results (none where it is void).
template <typename Results>
constexpr int64_t result_table_min_blocksize() {
    if constexpr (std::is_void_v<Results>) return std::numeric_limits<int64_t>::max();
    else return Results::kMinBlocksize;
}

template <typename T>
BNB_CPU_KERNEL void dequantize_blockwise_blocks(const DequantizeBlockwiseArgs& args, int64_t first_block,
                                                int64_t last_block) {
    using Results = ResultTableFor<T>;
    if constexpr (!std::is_void_v<Results>) {
        if (args.blocksize >= result_table_min_blocksize<Results>()) {
            return dequantize_blockwise_from_results<T, Results>(args, first_block, last_block);
        }
    }
    T* out = static_cast<T*>(args.out);
    const CodeLookup code = load_code_lookup(args.code);
    constexpr int64_t kStep = kCodeStepFor<T>;
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const Vec scale = broadcast(flush_denormal(args.absmax[block]));
        const uint8_t* const codes = args.A + begin;
        T* const block_out = out + begin;
        for_each_step(std::min(args.blocksize, args.n - begin), kStep, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
            const CodeValues values = lookup_codes<kStep>(code, codes + i, lanes);
            for (int64_t part = 0; part < kStep / kLanes; ++part) {
                if (!has_lane(lanes, part * kLanes)) break;
                store(block_out + i + part * kLanes, canonical_nan(flush(mul(values.part[part], scale))),
                      lanes.skip(part * kLanes));
            }
        });
    }
}

void quantize_blockwise_range(const QuantizeBlockwiseArgs& args, const CodeSearchTables& tables, int64_t first_block,
                              int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        quantize_blockwise_blocks<decltype(tag)>(args, tables, first_block, last_block);
    });
}

void dequantize_blockwise_range(const DequantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        dequantize_blockwise_blocks<decltype(tag)>(args, first_block, last_block);
    });
}

const BlockwiseKernels kBlockwiseKernels = {quantize_blockwise_range, dequantize_blockwise_range};

}  // namespace bnb::cpu::BNB_CPU_ISA
