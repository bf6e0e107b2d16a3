// Device functions of the CUDA kernels, run directly from the tests: the bucketed
// 8-bit code search against the tree descent it stands in for.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace bnb_test {

struct CodeSearchComparison {
    cudaError_t error;
    bool buckets_apply;        // the code met the bucket search's condition
    uint64_t mismatches;       // floats whose codes differ
    uint32_t mismatch_bits;    // one of them (its bit pattern), when any
};

// Both searches of `code` (256 floats, device memory) for every float bit pattern;
// top_is_one: the optimizers' requantization (upper bracket 1.0 at the top leaf),
// else quantize_blockwise's (code[255]).
CodeSearchComparison compare_code_searches(const float* code, bool top_is_one);

}  // namespace bnb_test
