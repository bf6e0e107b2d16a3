// Optimizer updates on the CPU (formats.md sections 6 and 7): the backend slots
// (entry.cpp) and the kernels each instruction set compiles (kernels.h).
#pragma once

#include <cstdint>
#include <type_traits>

#include "backend.h"
#include "common/code_search.h"
#include "common/isa_dispatch.h"

namespace bnb::cpu {

bnb_status optimizer_update_32bit(const OptimizerUpdateArgs& args);
bnb_status optimizer_update_8bit_blockwise(const OptimizerUpdateArgs& args);

// The update rules: lamb is adam and lars is momentum, their clipping being a
// matter of max_unorm alone.
enum class UpdateRule { kAdam, kAdemamix, kMomentum, kRmsprop, kAdagrad, kLion };

constexpr UpdateRule update_rule(bnb_optimizer optimizer) {
    switch (optimizer) {
        case BNB_OPTIMIZER_ADAM:
        case BNB_OPTIMIZER_LAMB: return UpdateRule::kAdam;
        case BNB_OPTIMIZER_ADEMAMIX: return UpdateRule::kAdemamix;
        case BNB_OPTIMIZER_MOMENTUM:
        case BNB_OPTIMIZER_LARS: return UpdateRule::kMomentum;
        case BNB_OPTIMIZER_RMSPROP: return UpdateRule::kRmsprop;
        case BNB_OPTIMIZER_ADAGRAD: return UpdateRule::kAdagrad;
        case BNB_OPTIMIZER_LION: break;
    }
    return UpdateRule::kLion;
}

// Calls fn(std::integral_constant<UpdateRule, R>{}) for the optimizer's rule.
template <typename Fn>
void dispatch_update_rule(bnb_optimizer optimizer, Fn&& fn) {
    switch (update_rule(optimizer)) {
        case UpdateRule::kAdam: return fn(std::integral_constant<UpdateRule, UpdateRule::kAdam>{});
        case UpdateRule::kAdemamix: return fn(std::integral_constant<UpdateRule, UpdateRule::kAdemamix>{});
        case UpdateRule::kMomentum: return fn(std::integral_constant<UpdateRule, UpdateRule::kMomentum>{});
        case UpdateRule::kRmsprop: return fn(std::integral_constant<UpdateRule, UpdateRule::kRmsprop>{});
        case UpdateRule::kAdagrad: return fn(std::integral_constant<UpdateRule, UpdateRule::kAdagrad>{});
        case UpdateRule::kLion: return fn(std::integral_constant<UpdateRule, UpdateRule::kLion>{});
    }
}

// The float32 scalars of one call, derived once from the hyper-parameters (all
// flushed), so that every instruction set starts from the same values.
struct OptimizerScalars {
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float beta3, one_minus_beta3;
    float alpha, eps, weight_decay, lr, neg_lr, gnorm_scale;
    float correction1;       // 1 - beta1^step
    float correction2;       // sqrt(1 - beta2^step)
    float norm_correction2;  // 1 - beta2^step, of the clipping pass
    float rcp_correction1;   // rcp.approx(correction1): dividing by it is multiplying by this
    float rcp_correction2;   // rcp.approx(correction2)
    float step_size;         // -lr * correction2 / correction1
    float eps_correction2;   // eps * correction2
    float decay;             // 1 - lr * weight_decay
    bool first_step;
    bool skip_zeros;
};

// Elements [begin, end) of tensors[tensor]; 8-bit pieces start on a block.
struct OptimizerPiece {
    int64_t tensor;
    int64_t begin;
    int64_t end;
};

// The code searches of the 8-bit states: the maps with code[255] replaced by
// 1.0, which is what the optimizer kernels' search (formats.md 6.0) compares
// with where the quantizers' search substitutes code[255]; nothing else of the
// search reads code[255], and its lower start value never decides a result.
struct OptimizerCodeSearch {
    float code1[256];
    float code2[256];
    CodeSearchTables tables1;
    CodeSearchTables tables2;
    // Bit c set where qmap1[c] (as given) has its sign bit set: the sign fix
    // of the signed states reads a code's sign from it (fix_code_sign).
    alignas(32) uint32_t negative_code_bits1[8];
};

struct OptimizerKernels {
    // The sum over the piece of u^2 (lion: u) of the would-be update of the
    // clipping pass, added in element order so that it does not depend on the
    // instruction set.
    double (*update_norm_32bit)(const OptimizerUpdateArgs& args, const OptimizerScalars& scalars,
                                const OptimizerPiece& piece);
    void (*update_32bit)(const OptimizerUpdateArgs& args, const OptimizerScalars& scalars,
                         const OptimizerPiece& piece, float update_scale);
    void (*update_8bit_blockwise)(const OptimizerUpdateArgs& args, const OptimizerScalars& scalars,
                                  const OptimizerCodeSearch& search, const OptimizerPiece& piece);
};

BNB_CPU_DECLARE_ISA_KERNELS(OptimizerKernels, kOptimizerKernels)

}  // namespace bnb::cpu
