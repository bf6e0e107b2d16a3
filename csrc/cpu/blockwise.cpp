// Blockwise 8-bit quantize / dequantize on the CPU, bit-identical to upstream's
// CUDA kernels (formats.md section 2).
#include <algorithm>
#include <cmath>

#include "cpu_kernels.h"
#include "float_types.h"
#include "rcp_approx.h"

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

namespace {

template <typename T>
void quantize_blockwise_typed(const QuantizeBlockwiseArgs& args) {
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
            for (int64_t i = 0; i < count; ++i) {
                args.out[begin + i] = search_code(args.code, ftz_mul(values[i], reciprocal));
            }
        }
    }
}

template <typename T>
void dequantize_blockwise_typed(const DequantizeBlockwiseArgs& args) {
    T* out = static_cast<T*>(args.out);
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
        const int64_t begin = block * args.blocksize;
        const int64_t end = std::min(begin + args.blocksize, args.n);
        const float scale = args.absmax[block];
        for (int64_t i = begin; i < end; ++i) out[i] = from_float<T>(ftz_mul(args.code[args.A[i]], scale));
    }
}

}  // namespace

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args) {
    dispatch_float(args.dtype, [&](auto tag) { quantize_blockwise_typed<decltype(tag)>(args); });
    return BNB_STATUS_SUCCESS;
}

bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args) {
    dispatch_float(args.dtype, [&](auto tag) { dequantize_blockwise_typed<decltype(tag)>(args); });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
