// Kernel pieces that every family shares, written once over the vector layer
// of the ISA being compiled (common/isa_dispatch.h).
#pragma once

#ifndef BNB_CPU_ISA
#error "include a common/vec_<isa>.h first"
#endif

#include <algorithm>
#include <cstdint>

#include "common/lanes.h"
#include "common/rcp_approx.h"

namespace bnb::cpu::BNB_CPU_ISA {

// Calls step(i, Full{}) for every whole step of `width` elements in
// [0, count), then step(i, Partial{count - i}) for the rest, if any: a kernel
// writes its step once, and the vector layer turns Partial into masks or
// padded copies.
template <typename Step>
BNB_CPU_KERNEL inline void for_each_step(int64_t count, int64_t width, const Step& step) {
    int64_t i = 0;
    for (; i + width <= count; i += width) step(i, Full{});
    if (i < count) step(i, Partial{count - i});
}

// ftz_mul(x, scale) for a scale that is already flushed (a reciprocal from
// rcp_approx_ftz or a flushed absmax).
BNB_CPU_KERNEL inline Vec ftz_mul_flushed(Vec x, Vec flushed_scale) { return flush(mul(flush(x), flushed_scale)); }

// The largest |flush(x)|, NaN ignored (max returns its second operand when the
// first is NaN, as fmaxf); without NaNs the order of a maximum is free, so two
// accumulators hide the latency of max.
template <typename T>
BNB_CPU_KERNEL inline float block_absmax(const T* x, int64_t count) {
    Vec even = zero();
    Vec odd = zero();
    int64_t i = 0;
    for (; i + 2 * kLanes <= count; i += 2 * kLanes) {
        even = max(flushed_magnitude(load(x + i, Full{})), even);
        odd = max(flushed_magnitude(load(x + i + kLanes, Full{})), odd);
    }
    for_each_step(count - i, kLanes, [&](int64_t j, auto lanes) BNB_CPU_KERNEL {
        even = max(flushed_magnitude(load(x + i + j, lanes)), even);
    });
    return reduce_max(max(even, odd));
}

// Quantizers take a range's blocks in chunks of about this many elements:
// first every block's absmax, then every reciprocal (the rcp_approx_ftz table
// loads miss the cache, and independent loads overlap), then the codes, with
// the chunk's input still in L1/L2.
inline constexpr int64_t kQuantizeChunkElements = 8192;
inline constexpr int64_t kQuantizeChunkMaxBlocks = kQuantizeChunkElements / 32;

// The three passes over one chunk, blocks [chunk_first, chunk_last), whose
// elements start at `in` (T, or float32 where converted once).
template <typename Element, typename EncodeBlock>
BNB_CPU_KERNEL inline void quantize_chunk(const Element* in, int64_t n, int64_t blocksize, float* absmax,
                                          int64_t chunk_first, int64_t chunk_last, const EncodeBlock& encode_block) {
    float reciprocal[kQuantizeChunkMaxBlocks];
    const int64_t chunk_begin = chunk_first * blocksize;
    for (int64_t block = chunk_first; block < chunk_last; ++block) {
        const int64_t begin = block * blocksize;
        absmax[block] = block_absmax(in + (begin - chunk_begin), std::min(blocksize, n - begin));
    }
    for (int64_t block = chunk_first; block < chunk_last; ++block) {
        reciprocal[block - chunk_first] = rcp_approx_ftz(absmax[block]);
    }
    for (int64_t block = chunk_first; block < chunk_last; ++block) {
        const int64_t begin = block * blocksize;
        encode_block(begin, std::min(blocksize, n - begin), broadcast(reciprocal[block - chunk_first]),
                     in + (begin - chunk_begin));
    }
}

// Stores each block's absmax and calls encode_block(begin, count, scale, in)
// with the block's first element, its element count, its reciprocal broadcast
// and its elements (`in`, of T or float32). Where the vector layer says that a
// conversion costs more than storing and reloading float32 (kConvertOnce), a
// chunk is converted once for both passes.
template <typename T, typename EncodeBlock>
BNB_CPU_KERNEL inline void quantize_in_chunks(const T* A, int64_t n, int64_t blocksize, float* absmax,
                                              int64_t first_block, int64_t last_block,
                                              const EncodeBlock& encode_block) {
    // Short blocks (the CPU takes any length) are capped by the chunk's table of reciprocals.
    const int64_t chunk =
        blocksize >= kQuantizeChunkElements ? 1 : std::min(kQuantizeChunkMaxBlocks, kQuantizeChunkElements / blocksize);
    for (int64_t chunk_first = first_block; chunk_first < last_block; chunk_first += chunk) {
        const int64_t chunk_last = std::min(last_block, chunk_first + chunk);
        const int64_t chunk_begin = chunk_first * blocksize;
        if constexpr (kConvertOnce<T>) {
            const int64_t chunk_count = std::min(chunk_last * blocksize, n) - chunk_begin;
            if (chunk_count <= kQuantizeChunkElements) {
                float converted[kQuantizeChunkElements];
                for (int64_t i = 0; i < chunk_count; ++i) converted[i] = to_float(A[chunk_begin + i]);
                quantize_chunk(converted, n, blocksize, absmax, chunk_first, chunk_last, encode_block);
                continue;
            }
        }
        quantize_chunk(A + chunk_begin, n, blocksize, absmax, chunk_first, chunk_last, encode_block);
    }
}

}  // namespace bnb::cpu::BNB_CPU_ISA
