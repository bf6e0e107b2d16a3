// 4-bit inference matmul: the arguments of gemm_4bit / gemv_4bit, their buffers
// and checks, and the shape that the backend's queries (fused row limit,
// workspace size) take.
#pragma once

#include <cstdint>

#include "../buffers.h"
#include "../formats.h"

namespace bnb {

struct Gemm4bitArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;             // of A, bias and out
    bnb_quant_type quant_type;   // selects the codebook when `code` is null
    const float* code;           // 16 float32 entries (device memory): gemv_4bit; else null
    const void* A;               // [M, K]
    const uint8_t* B;            // (N * K + 1) / 2 packed bytes of W [N, K]
    const float* absmax;         // per block, or per 256 blocks when nested
    const uint8_t* absmax_8bit;  // per block when nested, else null
    const float* absmax_code;    // 256 entries when nested
    const float* absmax_offset;  // 1 entry when nested
    const void* bias;            // [N] or null
    int64_t M;
    int64_t N;
    int64_t K;
    int64_t blocksize;
    bnb_gemm_4bit_algo algo;
    void* workspace;             // device memory for the dequantize path, or null
    int64_t workspace_bytes;
    void* out;                   // [M, N]

    bool nested() const { return absmax_8bit != nullptr; }
    int64_t blocks() const { return ceil_div(N * K, blocksize); }
};

// What the backend's queries need to know of a call.
struct Gemm4bitShape {
    bnb_device device;
    bnb_dtype dtype;
    int64_t M;
    int64_t N;
    int64_t K;
    int64_t blocksize;
    bool nested;
    bnb_gemm_4bit_algo algo;
};

// cuBLASLt's and the vector kernels' need.
inline constexpr int64_t kWorkspaceAlignment = BNB_WORKSPACE_ALIGNMENT;

inline Buffers buffers(const Gemm4bitArgs& a) {
    const int64_t element = dtype_size(a.dtype);
    const int64_t blocks = a.blocks();
    const int64_t absmax_entries = a.nested() ? ceil_div(blocks, formats::kNestedBlocksize) : blocks;
    return {
        {"A", a.A, a.M * a.K * element, element, Access::kRead},
        {"B", a.B, (a.N * a.K + 1) / 2, 1, Access::kRead},
        {"code", a.code, a.code != nullptr ? formats::kFourBitCodeEntries * 4 : 0, 4, Access::kRead},
        {"absmax", a.absmax, absmax_entries * 4, 4, Access::kRead},
        {"absmax_8bit", a.absmax_8bit, a.nested() ? blocks : 0, 1, Access::kRead},
        {"absmax_code", a.absmax_code, a.nested() ? formats::kBlockwiseCodeEntries * 4 : 0, 4, Access::kRead},
        {"absmax_offset", a.absmax_offset, a.nested() ? 4 : 0, 4, Access::kRead},
        {"bias", a.bias, a.bias != nullptr ? a.N * element : 0, element, Access::kRead},
        {"workspace", a.workspace, a.workspace_bytes, kWorkspaceAlignment,
         Access::kWrite},
        {"out", a.out, a.M * a.N * element, element, Access::kWrite},
    };
}

inline bool is_empty(const Gemm4bitArgs& a) { return a.M == 0 || a.N == 0; }

bnb_status check_arguments(const Gemm4bitArgs& args, Op op);

}  // namespace bnb
