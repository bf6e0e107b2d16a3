// The scalar kernels: the reference that every vector path must match byte for
// byte, and the path for CPUs without AVX2. Plain C++ (auto-vectorisation aside).
#include <algorithm>

#include "codebooks.h"
#include "cpu_kernels.h"
#include "float_types.h"
#include "kernel_set.h"
#include "rcp_approx.h"

namespace bnb::cpu {
namespace {

// The first step of every quantizer: block `block` of A widened to float32 into
// `values`, its absmax stored, and the fast reciprocal of that absmax returned.
template <typename T>
float load_block(const T* A, int64_t n, int64_t blocksize, int64_t block, float* values, float* absmax_out,
                 int64_t* count) {
    const int64_t begin = block * blocksize;
    *count = std::min(blocksize, n - begin);
    for (int64_t i = 0; i < *count; ++i) values[i] = to_float(A[begin + i]);
    const float absmax = block_absmax(values, *count);
    absmax_out[block] = absmax;
    return rcp_approx_ftz(absmax);
}

template <typename T>
void quantize_blockwise_blocks(const QuantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    float values[4096];
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        int64_t count = 0;
        const float reciprocal = load_block(A, args.n, args.blocksize, block, values, args.absmax, &count);
        for (int64_t i = 0; i < count; ++i) {
            args.out[begin + i] = search_code(args.code, ftz_mul(values[i], reciprocal));
        }
    }
}

template <typename T>
void dequantize_blockwise_blocks(const DequantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block) {
    T* out = static_cast<T*>(args.out);
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t end = std::min(begin + args.blocksize, args.n);
        const float scale = args.absmax[block];
        for (int64_t i = begin; i < end; ++i) out[i] = from_float<T>(ftz_mul(args.code[args.A[i]], scale));
    }
}

template <bnb_quant_type Q>
uint8_t encode(float s) {
    return Q == BNB_QUANT_NF4 ? nf4_code(s) : fp4_code(s);
}

template <bnb_quant_type Q>
float decode(uint8_t code) {
    return Q == BNB_QUANT_NF4 ? kNf4Values[code] : fp4_value(code);
}

template <bnb_quant_type Q, typename T>
void quantize_4bit_blocks(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    const T* A = static_cast<const T*>(args.A);
    float values[4096];
    for (int64_t block = first_block; block < last_block; ++block) {
        const int64_t begin = block * args.blocksize;
        int64_t count = 0;
        const float reciprocal = load_block(A, args.n, args.blocksize, block, values, args.absmax, &count);
        // blocksize is even, so a byte never straddles two blocks.
        for (int64_t i = 0; i < count; i += 2) {
            const uint8_t high = encode<Q>(ftz_mul(values[i], reciprocal));
            // A missing last element of an odd n is encoded as 0.0.
            const uint8_t low = encode<Q>(i + 1 < count ? ftz_mul(values[i + 1], reciprocal) : 0.0f);
            args.packed[(begin + i) / 2] = static_cast<uint8_t>((high << 4) | low);
        }
    }
}

template <bnb_quant_type Q, typename T>
void dequantize_4bit_blocks(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    T* out = static_cast<T*>(args.out);
    for (int64_t block = first_block; block < last_block; ++block) {
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

void quantize_blockwise_scalar(const QuantizeBlockwiseArgs& args, const CodeSearchTables&, int64_t first_block,
                               int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        quantize_blockwise_blocks<decltype(tag)>(args, first_block, last_block);
    });
}

void dequantize_blockwise_scalar(const DequantizeBlockwiseArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        dequantize_blockwise_blocks<decltype(tag)>(args, first_block, last_block);
    });
}

void quantize_4bit_scalar(const Quantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        using T = decltype(tag);
        if (args.quant_type == BNB_QUANT_NF4) quantize_4bit_blocks<BNB_QUANT_NF4, T>(args, first_block, last_block);
        else quantize_4bit_blocks<BNB_QUANT_FP4, T>(args, first_block, last_block);
    });
}

void dequantize_4bit_scalar(const Dequantize4bitArgs& args, int64_t first_block, int64_t last_block) {
    dispatch_float(args.dtype, [&](auto tag) {
        using T = decltype(tag);
        if (args.quant_type == BNB_QUANT_NF4) dequantize_4bit_blocks<BNB_QUANT_NF4, T>(args, first_block, last_block);
        else dequantize_4bit_blocks<BNB_QUANT_FP4, T>(args, first_block, last_block);
    });
}

const KernelSet kScalarKernels = {CpuIsa::kScalar, quantize_blockwise_scalar, dequantize_blockwise_scalar,
                                  quantize_4bit_scalar, dequantize_4bit_scalar};

}  // namespace

const KernelSet& scalar_kernels() { return kScalarKernels; }

}  // namespace bnb::cpu
