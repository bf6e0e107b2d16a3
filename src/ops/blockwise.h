// Blockwise 8-bit quantization (formats.md section 2): the arguments of
// quantize_blockwise / dequantize_blockwise, their buffers and their checks.
#pragma once

#include <cstdint>

#include "../buffers.h"
#include "../formats.h"

namespace bnb {

struct QuantizeBlockwiseArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;    // of A
    const void* A;
    const float* code;  // 256 entries
    int64_t n;
    int64_t blocksize;
    uint8_t* out;
    float* absmax;      // ceil(n / blocksize) entries
};

struct DequantizeBlockwiseArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;    // of out
    const uint8_t* A;
    const float* code;  // 256 entries
    const float* absmax;
    int64_t n;
    int64_t blocksize;
    void* out;
};

inline Buffers buffers(const QuantizeBlockwiseArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    return {
        {"A", a.A, a.n * element, element, Access::kRead},
        {"code", a.code, formats::kBlockwiseCodeEntries * 4, 4, Access::kRead},
        {"out", a.out, a.n, 1, Access::kWrite},
        {"absmax", a.absmax, ceil_div(a.n, a.blocksize) * 4, 4, Access::kWrite},
    };
}

inline Buffers buffers(const DequantizeBlockwiseArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    return {
        {"A", a.A, a.n, 1, Access::kRead},
        {"code", a.code, formats::kBlockwiseCodeEntries * 4, 4, Access::kRead},
        {"absmax", a.absmax, ceil_div(a.n, a.blocksize) * 4, 4, Access::kRead},
        {"out", a.out, a.n * element, element, Access::kWrite},
    };
}

inline bool is_empty(const QuantizeBlockwiseArgs& a) { return a.n == 0; }
inline bool is_empty(const DequantizeBlockwiseArgs& a) { return a.n == 0; }

// The op's own argument checks (device, slot and buffers are checked by run_op).
bnb_status check_arguments(const QuantizeBlockwiseArgs& args, Op op);
bnb_status check_arguments(const DequantizeBlockwiseArgs& args, Op op);

}  // namespace bnb
