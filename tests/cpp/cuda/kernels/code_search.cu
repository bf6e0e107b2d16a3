// Compiled with the library's flags (fast math, as its kernels): both searches make
// the same flushed-to-zero comparisons they make there.
#include "code_search.h"

#include "quantize_common.cuh"

namespace bnb_test {
namespace {

using bnb::cuda::TopBracket;

struct ComparisonCounters {
    unsigned long long mismatches;
    uint32_t mismatch_bits;
    int buckets_apply;
};

template <TopBracket kTop>
__global__ void compare_searches_kernel(const float* code, ComparisonCounters* counters) {
    __shared__ float table[bnb::cuda::kCodeSize];
    __shared__ float tree[bnb::cuda::kTreeNodes];
    __shared__ bnb::cuda::CodeBuckets buckets;
    for (int i = threadIdx.x; i < bnb::cuda::kCodeSize; i += blockDim.x) table[i] = code[i];
    for (int i = threadIdx.x; i < bnb::cuda::kTreeNodes; i += blockDim.x) tree[i] = code[bnb::cuda::tree_pivot(i)];
    __syncthreads();
    bnb::cuda::build_code_buckets<kTop>(buckets, table);
    if (blockIdx.x == 0 && threadIdx.x == 0) counters->buckets_apply = buckets.exact;
    unsigned long long mismatches = 0;
    const uint64_t stride = uint64_t{gridDim.x} * blockDim.x;
    for (uint64_t bits = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; bits <= 0xffffffffull; bits += stride) {
        const float s = __uint_as_float(static_cast<uint32_t>(bits));
        const uint32_t want = bnb::cuda::search_code<kTop>(tree, table, s);
        const uint32_t got = bnb::cuda::find_code<kTop>(buckets, tree, table, s);
        if (got != want) {
            ++mismatches;
            counters->mismatch_bits = static_cast<uint32_t>(bits);
        }
    }
    if (mismatches != 0) atomicAdd(&counters->mismatches, mismatches);
}

}  // namespace

CodeSearchComparison compare_code_searches(const float* code, bool top_is_one) {
    CodeSearchComparison result{};
    ComparisonCounters* counters = nullptr;
    result.error = cudaMalloc(&counters, sizeof(ComparisonCounters));
    if (result.error != cudaSuccess) return result;
    result.error = cudaMemset(counters, 0, sizeof(ComparisonCounters));
    if (result.error == cudaSuccess) {
        constexpr int kBlocks = 1024;
        constexpr int kThreads = 256;
        if (top_is_one) {
            compare_searches_kernel<TopBracket::kOne><<<kBlocks, kThreads>>>(code, counters);
        } else {
            compare_searches_kernel<TopBracket::kCode><<<kBlocks, kThreads>>>(code, counters);
        }
        result.error = cudaGetLastError();
    }
    ComparisonCounters host{};
    if (result.error == cudaSuccess) {
        result.error = cudaMemcpy(&host, counters, sizeof(host), cudaMemcpyDeviceToHost);
    }
    cudaFree(counters);
    result.buckets_apply = host.buckets_apply != 0;
    result.mismatches = host.mismatches;
    result.mismatch_bits = host.mismatch_bits;
    return result;
}

}  // namespace bnb_test
