// 4-bit NF4 / FP4 quantize / dequantize on the CPU, bit-identical to upstream's
// CUDA kernels (formats.md section 3).
#include <algorithm>

#include "codebooks.h"
#include "cpu_kernels.h"
#include "float_types.h"
#include "rcp_approx.h"

namespace bnb::cpu {
namespace {

template <bnb_quant_type Q>
uint8_t encode(float s) {
    return Q == BNB_QUANT_NF4 ? nf4_code(s) : fp4_code(s);
}

template <bnb_quant_type Q>
float decode(uint8_t code) {
    return Q == BNB_QUANT_NF4 ? kNf4Values[code] : fp4_value(code);
}

template <bnb_quant_type Q, typename T>
void quantize_4bit_typed(const Quantize4bitArgs& args) {
    const T* A = static_cast<const T*>(args.A);
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
#pragma omp parallel
    {
        float values[4096];
#pragma omp for schedule(static)
        for (int64_t block = 0; block < blocks; ++block) {
            const int64_t begin = block * args.blocksize;
            const int64_t count = std::min(args.blocksize, args.n - begin);
            for (int64_t i = 0; i < count; ++i) values[i] = to_float(A[begin + i]);
            const float absmax = block_absmax(values, count);
            args.absmax[block] = absmax;
            const float reciprocal = rcp_approx_ftz(absmax);
            // blocksize is even, so a byte never straddles two blocks.
            for (int64_t i = 0; i < count; i += 2) {
                const uint8_t high = encode<Q>(ftz_mul(values[i], reciprocal));
                // A missing last element of an odd n is encoded as 0.0.
                const uint8_t low = encode<Q>(i + 1 < count ? ftz_mul(values[i + 1], reciprocal) : 0.0f);
                args.packed[(begin + i) / 2] = static_cast<uint8_t>((high << 4) | low);
            }
        }
    }
}

template <bnb_quant_type Q, typename T>
void dequantize_4bit_typed(const Dequantize4bitArgs& args) {
    T* out = static_cast<T*>(args.out);
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t end = std::min(begin + args.blocksize, args.n);
        const float scale = args.absmax[block];
        for (int64_t i = begin; i < end; ++i) {
            const uint8_t byte = args.packed[i / 2];
            const uint8_t code = (i & 1) ? (byte & 0x0f) : (byte >> 4);
            out[i] = from_float<T>(ftz_mul(decode<Q>(code), scale));
        }
    }
}

}  // namespace

bnb_status quantize_4bit(const Quantize4bitArgs& args) {
    dispatch_float(args.dtype, [&](auto tag) {
        using T = decltype(tag);
        if (args.quant_type == BNB_QUANT_NF4) quantize_4bit_typed<BNB_QUANT_NF4, T>(args);
        else quantize_4bit_typed<BNB_QUANT_FP4, T>(args);
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status dequantize_4bit(const Dequantize4bitArgs& args) {
    dispatch_float(args.dtype, [&](auto tag) {
        using T = decltype(tag);
        if (args.quant_type == BNB_QUANT_NF4) dequantize_4bit_typed<BNB_QUANT_NF4, T>(args);
        else dequantize_4bit_typed<BNB_QUANT_FP4, T>(args);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
