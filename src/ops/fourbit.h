// 4-bit NF4 / FP4 quantization (formats.md section 3): the arguments of
// quantize_4bit / dequantize_4bit, their buffers and their checks.
#pragma once

#include <cstdint>

#include "../buffers.h"
#include "../formats.h"

namespace bnb {

struct Quantize4bitArgs {
    bnb_device device;
    void* stream;
    bnb_quant_type quant_type;
    bnb_dtype dtype;  // of A
    const void* A;
    int64_t n;
    int64_t blocksize;
    uint8_t* packed;  // (n + 1) / 2 bytes
    float* absmax;    // ceil(n / blocksize) entries
};

struct Dequantize4bitArgs {
    bnb_device device;
    void* stream;
    bnb_quant_type quant_type;
    bnb_dtype dtype;  // of out
    const uint8_t* packed;
    const float* absmax;
    int64_t n;
    int64_t blocksize;
    void* out;
};

inline Buffers buffers(const Quantize4bitArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    return {
        {"A", a.A, a.n * element, element, Access::kRead},
        {"packed", a.packed, (a.n + 1) / 2, 1, Access::kWrite},
        {"absmax", a.absmax, ceil_div(a.n, a.blocksize) * 4, 4, Access::kWrite},
    };
}

inline Buffers buffers(const Dequantize4bitArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    return {
        {"packed", a.packed, (a.n + 1) / 2, 1, Access::kRead},
        {"absmax", a.absmax, ceil_div(a.n, a.blocksize) * 4, 4, Access::kRead},
        {"out", a.out, a.n * element, element, Access::kWrite},
    };
}

inline bool is_empty(const Quantize4bitArgs& a) { return a.n == 0; }
inline bool is_empty(const Dequantize4bitArgs& a) { return a.n == 0; }

bnb_status check_arguments(const Quantize4bitArgs& args, Op op);
bnb_status check_arguments(const Dequantize4bitArgs& args, Op op);

}  // namespace bnb
