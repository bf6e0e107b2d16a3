// optimizer_update_8bit_blockwise's kernels for every dtype and rule (formats.md section 6).
#include <algorithm>

#include "update_kernels.cuh"

namespace bnb::cuda::optimizer {
namespace {

// Every block builds its code tables once, so the grid holds no more blocks than the
// SMs keep resident; their warps stride over the remaining units.
template <typename T, Rule R>
int resident_blocks_per_sm() {
    static const int blocks = [] {
        int count = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&count, update_8bit_kernel<T, R>, tune::kThreads, 0) !=
            cudaSuccess) {
            (void)cudaGetLastError();  // not this launch's error: fall back to the tuning's cap
            count = tune::kBlocksPerSm8bit;
        }
        return std::max(count, 1);
    }();
    return blocks;
}

}  // namespace

bnb_status launch_update_8bit(bnb_dtype dtype, Rule rule, const UpdateLaunch& launch, int sm_count,
                              cudaStream_t stream) {
    return dispatch_float(dtype, [&](auto type_tag) {
        using T = typename decltype(type_tag)::type;
        return dispatch_rule(rule, [&](auto rule_tag) {
            constexpr Rule R = decltype(rule_tag)::value;
            const int64_t blocks = grid_blocks(launch, int64_t{sm_count} * resident_blocks_per_sm<T, R>());
            update_8bit_kernel<T, R><<<blocks, tune::kThreads, 0, stream>>>(launch);
            return check_launch("optimizer_update_8bit_blockwise");
        });
    });
}

}  // namespace bnb::cuda::optimizer
