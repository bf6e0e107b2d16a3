// The optimizer slots (optimizer_update_32bit, optimizer_update_8bit_blockwise):
// the tensor list becomes tables of at most kTableCapacity non-empty tensors, one
// set of launches per table on the caller's stream (no host synchronisation, no
// allocation: a step can be captured in a CUDA graph). lamb and lars run the adam
// and momentum rules; in 8-bit without clipping, as the CPU backend does.
#include <algorithm>

#include "../cuda_ops.h"
#include "launch.h"

namespace bnb::cuda {
namespace {

using optimizer::Rule;
using optimizer::UpdateLaunch;

static_assert(optimizer::kUnit == kOptimizerBlocksize, "a kernel unit is one 8-bit quantization block");

Rule rule_of(bnb_optimizer name) {
    switch (name) {
        case BNB_OPTIMIZER_ADAM:
        case BNB_OPTIMIZER_LAMB: return Rule::kAdam;
        case BNB_OPTIMIZER_MOMENTUM:
        case BNB_OPTIMIZER_LARS: return Rule::kMomentum;
        case BNB_OPTIMIZER_RMSPROP: return Rule::kRmsprop;
        case BNB_OPTIMIZER_ADAGRAD: return Rule::kAdagrad;
        case BNB_OPTIMIZER_LION: return Rule::kLion;
        case BNB_OPTIMIZER_ADEMAMIX: return Rule::kAdemamix;
    }
    return Rule::kAdam;  // unreachable: the core checked the value
}

optimizer::StepHparams step_hparams(const OptimizerUpdateArgs& args, Rule rule) {
    const bnb_optimizer_hparams& h = *args.hparams;
    return {.beta1 = h.beta1,
            .beta2 = h.beta2,
            .beta3 = h.beta3,
            .alpha = h.alpha,
            .eps = h.eps,
            .weight_decay = h.weight_decay,
            .lr = h.lr,
            .gnorm_scale = h.gnorm_scale,
            .max_unorm = h.max_unorm,
            .step = static_cast<float>(h.step),
            .first_step = h.step == 1,
            .skip_zeros = h.skip_zeros != 0,
            .clip = args.clips() && optimizer::clips_update_norm(rule)};
}

// Whether every 4-element group of the tensor may be loaded and stored as one vector.
bool groups_aligned(const OptimizerUpdateArgs& args, const bnb_optimizer_tensor& t) {
    const auto group_bytes = [](int64_t element) { return static_cast<uintptr_t>(element * optimizer::kGroupSize); };
    const uintptr_t value = group_bytes(dtype_size(args.dtype));
    const uintptr_t state = group_bytes(args.blockwise ? 1 : 4);
    bool aligned = is_aligned(t.g, value) && is_aligned(t.p, value) && is_aligned(t.state1, state);
    if (is_two_state(args.optimizer)) aligned = aligned && is_aligned(t.state2, state);
    // AdEMAMix's m2 starts n states after m1.
    if (state1_factor(args.optimizer) == 2) aligned = aligned && t.n % optimizer::kGroupSize == 0;
    return aligned;
}

using Launcher = bnb_status (*)(bnb_dtype, Rule, const UpdateLaunch&, int, cudaStream_t);

bnb_status run_update(const OptimizerUpdateArgs& args, Launcher launcher) {
    const DeviceGuard guard(args.device.index);
    const Rule rule = rule_of(args.optimizer);
    const cudaStream_t stream = to_stream(args.stream);
    const int sm_count = device_info(args.device.index).sm_count;
    UpdateLaunch launch{};
    launch.hparams = step_hparams(args, rule);
    launch.qmap1 = args.qmap1;
    launch.qmap2 = args.qmap2;
    const auto flush = [&]() {
        if (launch.count == 0) return BNB_STATUS_SUCCESS;
        const bnb_status status = launcher(args.dtype, rule, launch, sm_count, stream);
        launch.count = 0;
        return status;
    };
    for (int64_t i = 0; i < args.count; ++i) {
        const bnb_optimizer_tensor& t = args.tensors[i];
        if (t.n == 0) continue;
        const int slot = launch.count;
        launch.tensors[slot] = {.g = t.g,
                                .p = t.p,
                                .state1 = t.state1,
                                .state2 = t.state2,
                                .absmax1 = t.absmax1,
                                .absmax2 = t.absmax2,
                                .unorm_vec = t.unorm_vec,
                                .n = t.n,
                                .param_norm = t.param_norm,
                                .vector_ok = groups_aligned(args, t)};
        launch.unit_start[slot + 1] = launch.unit_start[slot] + ceil_div(t.n, optimizer::kUnit);
        launch.count = slot + 1;
        if (launch.count == optimizer::kTableCapacity) {
            const bnb_status status = flush();
            if (status != BNB_STATUS_SUCCESS) return status;
        }
    }
    return flush();
}

}  // namespace

bnb_status optimizer_update_32bit(const OptimizerUpdateArgs& args) {
    return run_update(args, optimizer::launch_update_32bit);
}

bnb_status optimizer_update_8bit_blockwise(const OptimizerUpdateArgs& args) {
    return run_update(args, optimizer::launch_update_8bit);
}

}  // namespace bnb::cuda
