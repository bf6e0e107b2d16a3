// optimizer_update_8bit_blockwise's kernels for every dtype and rule (formats.md section 6).
#include "update_kernels.cuh"

namespace bnb::cuda::optimizer {

bnb_status launch_update_8bit(bnb_dtype dtype, Rule rule, const UpdateLaunch& launch, int64_t blocks,
                              cudaStream_t stream) {
    return dispatch_float(dtype, [&](auto type_tag) {
        using T = typename decltype(type_tag)::type;
        return dispatch_rule(rule, [&](auto rule_tag) {
            update_8bit_kernel<T, decltype(rule_tag)::value><<<blocks, tune::kThreads, 0, stream>>>(launch);
            return check_launch("optimizer_update_8bit_blockwise");
        });
    });
}

}  // namespace bnb::cuda::optimizer
