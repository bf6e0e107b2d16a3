// The 4-bit NF4 / FP4 kernels, written once over the vector layer and compiled
// by scalar.cpp, avx2.cpp and avx512.cpp (common/isa_dispatch.h), bit-identical
// to upstream's CUDA kernels (formats.md section 3).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/float_types.h"
#include "common/kernel_helpers.h"
#include "fourbit/fourbit.h"

namespace bnb::cpu::BNB_CPU_ISA {

// Each step encodes 2 vectors into one vector's worth of bytes; blocksize is
// even, so a byte never straddles two blocks.
template <bnb_quant_type Q, typename T>
BNB_CPU_KERNEL void quantize_4bit_blocks(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    quantize_in_chunks(A, args.n, args.blocksize, args.absmax, first_block, last_block,
                       [&](int64_t begin, int64_t count, Vec scale, const auto* in) BNB_CPU_KERNEL {
                           // The block's output as a local: a byte store may alias `args`,
                           // whose fields would otherwise be reloaded after every step.
                           uint8_t* const packed = args.packed + begin / 2;
                           for_each_step(count, 2 * kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
                               // Missing elements (the missing last one of an odd n)
                               // encode 0.0, not 0 * reciprocal.
                               const auto second_lanes = lanes.skip(kLanes);
                               const Vec first = keep_lanes(ftz_mul_flushed(load(in + i, lanes), scale), lanes);
                               const Vec second =
                                   keep_lanes(ftz_mul_flushed(load(in + i + kLanes, second_lanes), scale), second_lanes);
                               store_nibbles(packed + i / 2, encode<Q>(first), encode<Q>(second), lanes);
                           });
                       });
}

template <bnb_quant_type Q, typename T>
BNB_CPU_KERNEL void dequantize_4bit_blocks(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    T* out = static_cast<T*>(args.out);
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const NibbleTable<T, Q> table = nibble_table<T, Q>(flush_denormal(args.absmax[block]));
        const uint8_t* const packed = args.packed + begin / 2;
        T* const block_out = out + begin;
        for_each_step(std::min(args.blocksize, args.n - begin), kNibbleStep<T>,
                      [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
                          store_decoded(block_out + i, table, packed + i / 2, lanes);
                      });
    }
}

void quantize_4bit_range(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float_and_quant_type(args.dtype, args.quant_type, [&](auto tag, auto quant_type) {
        quantize_4bit_blocks<decltype(quant_type)::value, decltype(tag)>(args, first_block, last_block);
    });
}

void dequantize_4bit_range(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float_and_quant_type(args.dtype, args.quant_type, [&](auto tag, auto quant_type) {
        dequantize_4bit_blocks<decltype(quant_type)::value, decltype(tag)>(args, first_block, last_block);
    });
}

const FourbitKernels kFourbitKernels = {quantize_4bit_range, dequantize_4bit_range};

}  // namespace bnb::cpu::BNB_CPU_ISA
