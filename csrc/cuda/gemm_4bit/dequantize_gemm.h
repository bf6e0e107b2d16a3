// The 4-bit matmul for many rows of A: the statistics de-nested and W dequantized
// into the caller's workspace, then one cuBLASLt GEMM, out = A W^T (+ bias), on the
// caller's stream with cuBLASLt's workspace carved out of the same buffer. Nothing
// is allocated and nothing synchronises, so a CUDA graph can capture the call.
#pragma once

#include <cstdint>

#include "backend.h"

namespace bnb::cuda {

// Where the dense path keeps its buffers inside the caller's workspace (byte
// offsets, each 256-byte aligned).
struct DenseGemmWorkspace {
    int64_t weight;      // W [N, K] in the dtype of A
    int64_t scales;      // the de-nested float32 scales, one per block (nested only)
    int64_t gemm;        // cuBLASLt's workspace
    int64_t gemm_bytes;
    int64_t total;       // what the caller must provide
};

DenseGemmWorkspace dense_gemm_workspace(bnb_dtype dtype, int64_t N, int64_t K, int64_t blocksize, bool nested,
                                        int compute_capability);

struct DenseGemmOutcome {
    bool served;          // false: nothing was launched and no error is set; why_not says why
    bnb_status status;    // of the launches, when served
    const char* why_not;
};

// Whether this process can run the dense path: cuBLASLt is opened at first use
// (see dequantize_gemm.cu), and HIP builds have none.
bool dense_gemm_available();

// args.workspace holds at least `layout.total` bytes.
DenseGemmOutcome dequantize_and_gemm(const Gemm4bitArgs& args, const DenseGemmWorkspace& layout);

}  // namespace bnb::cuda
