// Optimizer updates (formats.md sections 6 and 7): the arguments of the two
// update ops, their buffers and their checks.
//
// Both ops take a list of tensors sharing one optimizer, dtype and set of
// hyper-parameters, so that a backend can update all of them in one launch;
// a single tensor is a list of one. The buffers of each tensor are described
// (and validated) separately: tensors of different calls' lists may not overlap,
// which the core checks within each tensor only.
#pragma once

#include <cstdint>

#include "../buffers.h"

namespace bnb {

// The fixed blocksize of the 8-bit blockwise states.
inline constexpr int64_t kOptimizerBlocksize = 256;
// Entries of a dynamic map (qmap1, qmap2).
inline constexpr int64_t kOptimizerMapSize = 256;

constexpr bool is_two_state(bnb_optimizer optimizer) {
    return optimizer == BNB_OPTIMIZER_ADAM || optimizer == BNB_OPTIMIZER_LAMB || optimizer == BNB_OPTIMIZER_ADEMAMIX;
}

// Elements of state1 per parameter element: ademamix keeps m1 and m2 there.
constexpr int64_t state1_factor(bnb_optimizer optimizer) { return optimizer == BNB_OPTIMIZER_ADEMAMIX ? 2 : 1; }

struct OptimizerUpdateArgs {
    bnb_device device;
    void* stream;
    bnb_optimizer optimizer;
    bnb_dtype dtype;                     // of every g and p: fp32, fp16 or bf16
    const bnb_optimizer_tensor* tensors;  // [count]
    int64_t count;
    const float* qmap1;                  // 8-bit: signed dynamic map [256]; 32-bit: null
    const float* qmap2;                  // 8-bit two-state: unsigned dynamic map [256]
    const bnb_optimizer_hparams* hparams;
    bool blockwise;                      // 8-bit blockwise states (else float32)

    bool clips() const { return !blockwise && hparams->max_unorm > 0.0f; }
};

// The buffers of tensors[index].
inline Buffers buffers(const OptimizerUpdateArgs& a, int64_t index) {
    const bnb_optimizer_tensor& t = a.tensors[index];
    const int64_t element = dtype_size(a.dtype);
    const bool two_state = is_two_state(a.optimizer);
    const int64_t state_element = a.blockwise ? 1 : 4;
    const int64_t state1 = t.n * state1_factor(a.optimizer);
    const int64_t blocks = ceil_div(t.n, kOptimizerBlocksize);
    const int64_t absmax1 = a.blockwise ? blocks * state1_factor(a.optimizer) * 4 : 0;
    const int64_t absmax2 = a.blockwise && two_state ? blocks * 4 : 0;
    const int64_t map = kOptimizerMapSize * 4;
    return {
        {"g", t.g, t.n * element, element, Access::kRead},
        {"p", t.p, t.n * element, element, Access::kWrite},
        {"state1", t.state1, state1 * state_element, state_element, Access::kWrite},
        {"state2", t.state2, two_state ? t.n * state_element : 0, state_element, Access::kWrite},
        {"absmax1", t.absmax1, absmax1, 4, Access::kWrite},
        {"absmax2", t.absmax2, absmax2, 4, Access::kWrite},
        {"unorm_vec", t.unorm_vec, a.clips() ? 4 : 0, 4, Access::kWrite},
        {"qmap1", a.qmap1, a.blockwise ? map : 0, 4, Access::kRead},
        {"qmap2", a.qmap2, a.blockwise && two_state ? map : 0, 4, Access::kRead},
    };
}

inline bool is_empty(const OptimizerUpdateArgs& a) {
    for (int64_t i = 0; i < a.count; ++i) {
        if (a.tensors[i].n > 0) return false;
    }
    return true;
}

bnb_status check_arguments(const OptimizerUpdateArgs& args, Op op);
// Every tensor's buffers (run_op's buffer check for a list of tensors).
bnb_status check_call_buffers(const OptimizerUpdateArgs& args);

}  // namespace bnb
