// optimizer_update_32bit's kernels for every dtype and rule (formats.md section 7).
#include "update_kernels.cuh"

namespace bnb::cuda::optimizer {
namespace {

// Clears the unorm_vec of every tensor of the launch (one thread each): the norm
// pass adds to it.
__global__ void zero_unorm_kernel(const __grid_constant__ UpdateLaunch launch) {
    for (int i = threadIdx.x; i < launch.count; i += blockDim.x) *launch.tensors[i].unorm_vec = 0.0f;
}

}  // namespace

bnb_status launch_update_32bit(bnb_dtype dtype, Rule rule, const UpdateLaunch& launch, int sm_count,
                               cudaStream_t stream) {
    const int64_t blocks = grid_blocks(launch, int64_t{sm_count} * tune::kBlocksPerSm);
    return dispatch_float(dtype, [&](auto type_tag) {
        using T = typename decltype(type_tag)::type;
        return dispatch_rule(rule, [&](auto rule_tag) {
            constexpr Rule R = decltype(rule_tag)::value;
            if constexpr (clips_update_norm(R)) {
                if (launch.hparams.clip) {
                    zero_unorm_kernel<<<1, kTableCapacity, 0, stream>>>(launch);
                    update_norm_32bit_kernel<T, R><<<blocks, tune::kThreads, 0, stream>>>(launch);
                }
            }
            update_32bit_kernel<T, R><<<blocks, tune::kThreads, 0, stream>>>(launch);
            return check_launch("optimizer_update_32bit");
        });
    });
}

}  // namespace bnb::cuda::optimizer
