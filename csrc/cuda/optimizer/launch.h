// What the optimizer slots (select.cu) hand to the kernel files: the rules, the
// launch's parameter block (hyper-parameters and the tensor table) and one
// launcher per state format.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../cuda_common.cuh"
#include "tuning_sm90.h"

namespace bnb::cuda::optimizer {

namespace tune = optimizer_tuning;

// The update rule a kernel implements; lamb and lars are adam and momentum
// (their update-norm clipping is a 32-bit pass of its own).
enum class Rule { kAdam, kMomentum, kRmsprop, kAdagrad, kLion, kAdemamix };

constexpr bool has_state2(Rule rule) { return rule == Rule::kAdam || rule == Rule::kAdemamix; }

// Rules whose 32-bit update scales by the clipped update norm, as upstream's
// kernels do (its ademamix and adagrad updates ignore the scale, and its lion
// norm pass runs after the update on the next step's behalf: none of them clips).
constexpr bool clips_update_norm(Rule rule) {
    return rule == Rule::kAdam || rule == Rule::kMomentum || rule == Rule::kRmsprop;
}

// The hyper-parameters as the kernels read them.
struct StepHparams {
    float beta1;
    float beta2;
    float beta3;
    float alpha;
    float eps;
    float weight_decay;
    float lr;
    float gnorm_scale;
    float max_unorm;
    float step;       // upstream passes the int step to __powf, which converts it so
    int first_step;   // step == 1 (momentum starts its state from the gradient)
    int skip_zeros;
    int clip;         // 32-bit: scale by the clipped norm in unorm_vec
};

// One tensor of the list: bnb_optimizer_tensor plus whether every access of its
// 4-element groups may be a vector access (pointers aligned, ademamix's m2 too).
struct TensorSlot {
    const void* g;
    void* p;
    void* state1;
    void* state2;
    float* absmax1;
    float* absmax2;
    float* unorm_vec;
    int64_t n;
    float param_norm;
    int vector_ok;
};

constexpr int64_t kUnit = 256;  // elements per warp (= the 8-bit blocksize)
constexpr int kGroupSize = 4;   // consecutive elements per lane access
constexpr int kPerLane = 8;     // two groups, 128 elements apart

// As many tensors as keep the launch's parameters within the limit (the fixed
// fields take less than the reserve).
constexpr int64_t kFixedParameterReserve = 128;
constexpr int kTableCapacity = static_cast<int>((tune::kParameterBytes - kFixedParameterReserve) /
                                                (sizeof(TensorSlot) + sizeof(int64_t)));

// Everything one launch needs, passed by value as the kernel parameter.
struct UpdateLaunch {
    StepHparams hparams;
    const float* qmap1;  // 8-bit: signed map of state1
    const float* qmap2;  // 8-bit: unsigned map of state2
    int count;
    int64_t unit_start[kTableCapacity + 1];  // units before tensor i; [count] = all units
    TensorSlot tensors[kTableCapacity];
};
static_assert(sizeof(UpdateLaunch) <= tune::kParameterBytes, "the tensor table must fit the parameter limit");

// The one place where bnb_optimizer becomes a template argument: body(rule tag).
template <Rule R>
using RuleTag = std::integral_constant<Rule, R>;

template <typename F>
bnb_status dispatch_rule(Rule rule, F&& body) {
    switch (rule) {
        case Rule::kAdam: return body(RuleTag<Rule::kAdam>{});
        case Rule::kMomentum: return body(RuleTag<Rule::kMomentum>{});
        case Rule::kRmsprop: return body(RuleTag<Rule::kRmsprop>{});
        case Rule::kAdagrad: return body(RuleTag<Rule::kAdagrad>{});
        case Rule::kLion: return body(RuleTag<Rule::kLion>{});
        case Rule::kAdemamix: return body(RuleTag<Rule::kAdemamix>{});
    }
    return fail(BNB_STATUS_INTERNAL, "cuda backend: unexpected optimizer rule");
}

// Blocks of tune::kThreads for one warp per unit of the table, at most max_blocks
// (the warps of a smaller grid stride over the rest).
inline int64_t grid_blocks(const UpdateLaunch& launch, int64_t max_blocks) {
    const int64_t units_per_block = tune::kThreads / kWarpSize;
    const int64_t blocks = ceil_div(launch.unit_start[launch.count], units_per_block);
    return blocks < max_blocks ? blocks : max_blocks;
}

// Launch the kernels of one table on `stream`, on a device of `sm_count` SMs.
// 32-bit with hparams.clip: clear unorm_vec, the norm pass, then the update.
bnb_status launch_update_32bit(bnb_dtype dtype, Rule rule, const UpdateLaunch& launch, int sm_count,
                               cudaStream_t stream);
bnb_status launch_update_8bit(bnb_dtype dtype, Rule rule, const UpdateLaunch& launch, int sm_count,
                              cudaStream_t stream);

}  // namespace bnb::cuda::optimizer
