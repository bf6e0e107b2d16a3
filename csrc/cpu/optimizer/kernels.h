// The optimizer kernels, written once over the vector layer and compiled by
// scalar.cpp, avx2.cpp and avx512.cpp (common/isa_dispatch.h): the update
// rules of upstream's CUDA kernels (formats.md sections 6 and 7) in float32
// with CUDA's flush-to-zero, fast division as a * rcp.approx(b), and FMA
// exactly where formats.md observed one. Every instruction set gives the
// scalar path's bytes: each lane runs the same operations in the same order.
//
// Two fast-math functions are not emulated bit for bit: __powf (only in the
// per-call scalars) and the approximate sqrtf (here correctly rounded). Both
// differ from CUDA by an ulp or so, within the tolerance of formats.md 8.0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "common/float_types.h"
#include "common/kernel_helpers.h"
#include "ops/optimizer.h"
#include "optimizer/optimizer.h"

namespace bnb::cpu::BNB_CPU_ISA {

// float32 arithmetic of the CUDA build: operands are already flushed (every
// load and every result is), so flushing each result is all that ftz needs.
BNB_CPU_KERNEL inline Vec mul_ftz(Vec a, Vec b) { return flush(mul(a, b)); }
BNB_CPU_KERNEL inline Vec add_ftz(Vec a, Vec b) { return flush(add(a, b)); }
BNB_CPU_KERNEL inline Vec fma_ftz(Vec a, Vec b, Vec c) { return flush(fused_mul_add(a, b, c)); }
BNB_CPU_KERNEL inline Vec sqrt_ftz(Vec x) { return flush(square_root(x)); }
// __fdividef(a, b) and `a / b` under --use_fast_math: a * rcp.approx(b).
BNB_CPU_KERNEL inline Vec div_approx(Vec a, Vec b) { return mul_ftz(a, reciprocal_approx(b)); }
// The same division by a per-call scalar whose reciprocal was computed once.
BNB_CPU_KERNEL inline Vec div_by_scalar(Vec a, float reciprocal) { return mul_ftz(a, broadcast(reciprocal)); }

// The update rules divide by a per-element value through `divide(a, b)`, once
// per step at most (divides_per_element), and kernels run a rule twice over a
// stretch of elements: first recording its divisors, then, once their
// reciprocals were computed in a loop of their own, replaying them. Why:
// rcp.approx reads a 2 MiB table, a cache miss per element; within a rule's
// long loop body few of those misses are in flight at once, in a loop of
// reciprocals alone many overlap. The recording run's other results are
// unused, so the compiler drops their computation.
constexpr bool divides_per_element(UpdateRule rule) {
    return rule != UpdateRule::kMomentum && rule != UpdateRule::kLion;
}

// Stores the divisor of one step's lanes; the quotient it returns is unused.
struct RecordDivisor {
    float* divisor;
    BNB_CPU_KERNEL Vec operator()(Vec a, Vec b) const {
        store(divisor, b, Full{});
        return a;
    }
};

// Divides by the recorded divisor through its precomputed reciprocal.
struct ReplayReciprocal {
    const float* reciprocal;
    BNB_CPU_KERNEL Vec operator()(Vec a, Vec) const { return mul_ftz(a, load(reciprocal, Full{})); }
};

// values[i] = rcp.approx(values[i]) for i < count (a multiple of kLanes).
BNB_CPU_KERNEL inline void reciprocals_in_place(float* values, int64_t count) {
    for (int64_t i = 0; i < count; i += kLanes) store(values + i, reciprocal_approx(load(values + i, Full{})), Full{});
}
// s * beta + (1 - beta) * x, each operation rounded.
BNB_CPU_KERNEL inline Vec moving_average(Vec s, float beta, float one_minus_beta, Vec x) {
    return add_ftz(mul_ftz(s, broadcast(beta)), mul_ftz(broadcast(one_minus_beta), x));
}
// -1, 0 or +1 (0 for a NaN, as upstream's (x > 0) - (x < 0)).
BNB_CPU_KERNEL inline Vec sign_of(Vec x) {
    return select(is_greater(x, zero()), broadcast(1.0f), select(is_greater(zero(), x), broadcast(-1.0f), zero()));
}

// One element step's states: s1 (adam, ademamix: m1), s2 (nu) and ademamix's m2.
struct States {
    Vec s1, s2, m2;
};

// NaN results are stored as CUDA's canonical NaN (canonical_nan of the vector
// layer); besides, which NaN an x86 instruction passes on depends on its operand
// order, which the compiler may swap in one build and not in another.
BNB_CPU_KERNEL inline States canonical_nan(const States& s) {
    return {canonical_nan(s.s1), canonical_nan(s.s2), canonical_nan(s.m2)};
}

template <typename T, typename Lanes>
BNB_CPU_KERNEL inline Vec load_flushed(const T* p, Lanes lanes) {
    return flush(load(p, lanes));
}

// ---- 32-bit (formats.md section 7) ---------------------------------------------------

// g = gnorm_scale * grad, stored in the gradient dtype.
template <typename T, typename Lanes>
BNB_CPU_KERNEL inline Vec scaled_gradient_32bit(const OptimizerScalars& k, const T* g, Lanes lanes) {
    return rounded_to<T>(mul_ftz(load_flushed(g, lanes), broadcast(k.gnorm_scale)));
}

// The new parameter of one step; `states` are updated in place.
template <UpdateRule R, typename T, typename Divide>
BNB_CPU_KERNEL inline Vec update_32bit_lanes(const OptimizerScalars& k, float update_scale, Vec g, Vec p,
                                             States& states, const Divide& divide) {
    const bool decays = k.weight_decay > 0.0f;
    if constexpr (R == UpdateRule::kAdam || R == UpdateRule::kAdemamix) {
        states.s1 = moving_average(states.s1, k.beta1, k.one_minus_beta1, g);
        Vec update;
        if constexpr (R == UpdateRule::kAdam) {
            states.s2 = moving_average(states.s2, k.beta2, k.one_minus_beta2, mul_ftz(g, g));
            const Vec denominator = add_ftz(sqrt_ftz(states.s2), broadcast(k.eps_correction2));
            update = mul_ftz(broadcast(flush_denormal(update_scale * k.step_size)), divide(states.s1, denominator));
        } else {
            states.m2 = moving_average(states.m2, k.beta3, k.one_minus_beta3, g);
            states.s2 = add_ftz(mul_ftz(states.s2, broadcast(k.beta2)),
                                mul_ftz(mul_ftz(broadcast(k.one_minus_beta2), g), g));
            const Vec numerator =
                add_ftz(div_by_scalar(states.s1, k.rcp_correction1), mul_ftz(broadcast(k.alpha), states.m2));
            const Vec denominator =
                add_ftz(div_by_scalar(sqrt_ftz(states.s2), k.rcp_correction2), broadcast(k.eps));
            update = mul_ftz(broadcast(k.neg_lr), divide(numerator, denominator));
        }
        p = rounded_to<T>(add_ftz(p, update));
        if (decays) p = rounded_to<T>(mul_ftz(p, broadcast(k.decay)));
        return p;
    } else if constexpr (R == UpdateRule::kLion) {
        if (decays) p = rounded_to<T>(mul_ftz(p, broadcast(k.decay)));
        const Vec direction = sign_of(moving_average(states.s1, k.beta1, k.one_minus_beta1, g));
        p = rounded_to<T>(add_ftz(p, mul_ftz(broadcast(-update_scale), mul_ftz(broadcast(k.lr), direction))));
        states.s1 = moving_average(states.s1, k.beta2, k.one_minus_beta2, g);
        return p;
    } else {
        // Coupled decay, stored in the gradient dtype.
        if (decays) g = rounded_to<T>(add_ftz(g, mul_ftz(p, broadcast(k.weight_decay))));
        if constexpr (R == UpdateRule::kMomentum) {
            states.s1 = k.first_step ? g : fma_ftz(states.s1, broadcast(k.beta1), g);
            return rounded_to<T>(add_ftz(p, mul_ftz(broadcast(update_scale), mul_ftz(broadcast(k.neg_lr), states.s1))));
        } else {
            Vec scale;
            if constexpr (R == UpdateRule::kRmsprop) {
                states.s1 = add_ftz(mul_ftz(states.s1, broadcast(k.beta1)),
                                    mul_ftz(mul_ftz(broadcast(k.one_minus_beta1), g), g));
                scale = broadcast(-update_scale);
            } else {
                states.s1 = add_ftz(states.s1, mul_ftz(g, g));
                scale = broadcast(-1.0f);  // adagrad is never clipped
            }
            const Vec step = mul_ftz(broadcast(k.lr), divide(g, add_ftz(sqrt_ftz(states.s1), broadcast(k.eps))));
            return rounded_to<T>(add_ftz(p, mul_ftz(scale, step)));
        }
    }
}

// u of the clipping pass (lion: its new state, summed unsquared): no weight decay.
template <UpdateRule R>
BNB_CPU_KERNEL inline Vec norm_term_32bit(const OptimizerScalars& k, Vec g, States states) {
    if constexpr (R == UpdateRule::kAdam) {
        const Vec s1 = moving_average(states.s1, k.beta1, k.one_minus_beta1, g);
        const Vec s2 = moving_average(states.s2, k.beta2, k.one_minus_beta2, mul_ftz(g, g));
        const Vec u = div_approx(div_approx(s1, broadcast(k.correction1)),
                                 add_ftz(sqrt_ftz(div_approx(s2, broadcast(k.norm_correction2))), broadcast(k.eps)));
        return mul_ftz(u, u);
    } else if constexpr (R == UpdateRule::kMomentum) {
        const Vec s1 = k.first_step ? g : fma_ftz(states.s1, broadcast(k.beta1), g);
        return mul_ftz(s1, s1);
    } else if constexpr (R == UpdateRule::kRmsprop || R == UpdateRule::kAdagrad) {
        const Vec s1 = R == UpdateRule::kRmsprop ? add_ftz(mul_ftz(states.s1, broadcast(k.beta1)),
                                                           mul_ftz(mul_ftz(broadcast(k.one_minus_beta1), g), g))
                                                 : add_ftz(states.s1, mul_ftz(g, g));
        const Vec u = div_approx(g, add_ftz(sqrt_ftz(s1), broadcast(k.eps)));
        return mul_ftz(u, u);
    } else if constexpr (R == UpdateRule::kLion) {
        return moving_average(states.s1, k.beta2, k.one_minus_beta2, g);
    } else {
        return zero();  // ademamix is never clipped
    }
}

// The pointers of one tensor's float32 states at element `i`.
struct FloatStates {
    float* s1;
    float* s2;
    float* m2;
};

template <UpdateRule R, typename Lanes>
BNB_CPU_KERNEL inline States load_states(const FloatStates& at, int64_t i, Lanes lanes) {
    States states{zero(), zero(), zero()};
    states.s1 = load_flushed(at.s1 + i, lanes);
    if constexpr (R == UpdateRule::kAdam || R == UpdateRule::kAdemamix) states.s2 = load_flushed(at.s2 + i, lanes);
    if constexpr (R == UpdateRule::kAdemamix) states.m2 = load_flushed(at.m2 + i, lanes);
    return states;
}

template <UpdateRule R, typename Lanes>
BNB_CPU_KERNEL inline void store_states(const FloatStates& at, int64_t i, const States& states, Lanes lanes) {
    store(at.s1 + i, states.s1, lanes);
    if constexpr (R == UpdateRule::kAdam || R == UpdateRule::kAdemamix) store(at.s2 + i, states.s2, lanes);
    if constexpr (R == UpdateRule::kAdemamix) store(at.m2 + i, states.m2, lanes);
}

template <UpdateRule R>
FloatStates float_states(const bnb_optimizer_tensor& tensor) {
    float* const s1 = static_cast<float*>(tensor.state1);
    return {s1, static_cast<float*>(tensor.state2), R == UpdateRule::kAdemamix ? s1 + tensor.n : nullptr};
}

// Elements whose gradient is 0 are left untouched under skip_zeros (not for ademamix).
template <UpdateRule R>
BNB_CPU_KERNEL inline Mask skipped_lanes(const OptimizerScalars& k, Vec g) {
    if (R == UpdateRule::kAdemamix || !k.skip_zeros) return is_greater(zero(), broadcast(1.0f));  // none
    return is_zero(g);
}

// Elements whose divisors are recorded before their reciprocals are computed:
// the buffers stay in L1.
inline constexpr int64_t kDivisorStretch = 256;

template <UpdateRule R, typename T>
BNB_CPU_KERNEL void update_32bit_piece(const OptimizerUpdateArgs& args, const OptimizerScalars& k,
                                       const OptimizerPiece& piece, float update_scale) {
    const bnb_optimizer_tensor& tensor = args.tensors[piece.tensor];
    const T* const g = static_cast<const T*>(tensor.g) + piece.begin;
    T* const p = static_cast<T*>(tensor.p) + piece.begin;
    FloatStates at = float_states<R>(tensor);
    at.s1 += piece.begin;
    if (at.s2 != nullptr) at.s2 += piece.begin;
    if (at.m2 != nullptr) at.m2 += piece.begin;
    alignas(64) float reciprocals[kDivisorStretch];
    for (int64_t stretch = 0; stretch < piece.end - piece.begin; stretch += kDivisorStretch) {
        const int64_t count = std::min(kDivisorStretch, piece.end - piece.begin - stretch);
        if constexpr (divides_per_element(R)) {
            for_each_step(count, kLanes, [&](int64_t j, auto lanes) BNB_CPU_KERNEL {
                const int64_t i = stretch + j;
                States states = load_states<R>(at, i, lanes);
                update_32bit_lanes<R, T>(k, update_scale, scaled_gradient_32bit(k, g + i, lanes),
                                         load_flushed(p + i, lanes), states, RecordDivisor{reciprocals + j});
            });
            reciprocals_in_place(reciprocals, (count + kLanes - 1) / kLanes * kLanes);
        }
        for_each_step(count, kLanes, [&](int64_t j, auto lanes) BNB_CPU_KERNEL {
            const int64_t i = stretch + j;
            const Vec grad = scaled_gradient_32bit(k, g + i, lanes);
            const Vec param = load_flushed(p + i, lanes);
            const States old_states = load_states<R>(at, i, lanes);
            States states = old_states;
            Vec new_param = canonical_nan(
                update_32bit_lanes<R, T>(k, update_scale, grad, param, states, ReplayReciprocal{reciprocals + j}));
            states = canonical_nan(states);
            const Mask skipped = skipped_lanes<R>(k, grad);
            new_param = select(skipped, load(p + i, lanes), new_param);
            states = {select(skipped, old_states.s1, states.s1), select(skipped, old_states.s2, states.s2),
                      select(skipped, old_states.m2, states.m2)};
            store(p + i, new_param, lanes);
            store_states<R>(at, i, states, lanes);
        });
    }
}

template <UpdateRule R, typename T>
BNB_CPU_KERNEL double update_norm_32bit_piece(const OptimizerUpdateArgs& args, const OptimizerScalars& k,
                                              const OptimizerPiece& piece) {
    const bnb_optimizer_tensor& tensor = args.tensors[piece.tensor];
    const T* const g = static_cast<const T*>(tensor.g) + piece.begin;
    FloatStates at = float_states<R>(tensor);
    at.s1 += piece.begin;
    if (at.s2 != nullptr) at.s2 += piece.begin;
    if (at.m2 != nullptr) at.m2 += piece.begin;
    double sum = 0.0;
    for_each_step(piece.end - piece.begin, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
        float terms[kLanes];
        store(terms, norm_term_32bit<R>(k, scaled_gradient_32bit(k, g + i, lanes), load_states<R>(at, i, lanes)),
              Full{});
        const int64_t count = std::min<int64_t>(kLanes, piece.end - piece.begin - i);
        for (int64_t lane = 0; lane < count; ++lane) sum += terms[lane];
    });
    return sum;
}

// ---- 8-bit blockwise (formats.md section 6) -------------------------------------------

inline constexpr int64_t kBlock = kOptimizerBlocksize;

// The new parameter of one step; `states` are updated in place. g is the
// scaled gradient, raw the gradient element as stored.
template <UpdateRule R, typename T, typename Divide>
BNB_CPU_KERNEL inline Vec update_8bit_lanes(const OptimizerScalars& k, Vec raw, Vec g, Vec p, States& states,
                                            const Divide& divide) {
    const bool decays = k.weight_decay > 0.0f;
    if constexpr (R == UpdateRule::kAdam || R == UpdateRule::kAdemamix) {
        states.s2 = add_ftz(mul_ftz(states.s2, broadcast(k.beta2)),
                            mul_ftz(mul_ftz(broadcast(k.one_minus_beta2), g), g));
        states.s1 = moving_average(states.s1, k.beta1, k.one_minus_beta1, g);
        Vec update;
        if constexpr (R == UpdateRule::kAdam) {
            const Vec denominator = add_ftz(sqrt_ftz(states.s2), broadcast(k.eps_correction2));
            update = mul_ftz(broadcast(k.step_size), divide(states.s1, denominator));
        } else {
            states.m2 = moving_average(states.m2, k.beta3, k.one_minus_beta3, g);
            const Vec numerator =
                add_ftz(div_by_scalar(states.s1, k.rcp_correction1), mul_ftz(broadcast(k.alpha), states.m2));
            const Vec denominator =
                add_ftz(div_by_scalar(sqrt_ftz(states.s2), k.rcp_correction2), broadcast(k.eps));
            update = mul_ftz(broadcast(k.neg_lr), divide(numerator, denominator));
        }
        p = rounded_to<T>(add_ftz(p, update));
        if (decays) p = rounded_to<T>(mul_ftz(p, broadcast(k.decay)));
        return p;
    } else {
        if (decays) {
            if constexpr (R == UpdateRule::kLion) p = rounded_to<T>(mul_ftz(p, broadcast(k.decay)));
            else g = add_ftz(g, mul_ftz(p, broadcast(k.weight_decay)));
        }
        if constexpr (R == UpdateRule::kMomentum) {
            states.s1 = k.first_step ? g : add_ftz(mul_ftz(states.s1, broadcast(k.beta1)), g);
            return rounded_to<T>(fma_ftz(broadcast(k.neg_lr), states.s1, p));
        } else if constexpr (R == UpdateRule::kLion) {
            const Vec direction = sign_of(moving_average(states.s1, k.beta1, k.one_minus_beta1, g));
            const Vec step = rounded_to<T>(mul_ftz(broadcast(k.lr), direction));
            states.s1 = moving_average(states.s1, k.beta2, k.one_minus_beta2, g);
            return rounded_to<T>(add_ftz(p, mul_ftz(broadcast(-1.0f), step)));
        } else {
            if constexpr (R == UpdateRule::kRmsprop) {
                states.s1 = moving_average(states.s1, k.beta1, k.one_minus_beta1, mul_ftz(g, g));
            } else {
                states.s1 = add_ftz(states.s1, mul_ftz(g, g));
            }
            // Upstream's 8-bit kernels divide the gradient as stored (no scale, no decay).
            const Vec step = mul_ftz(broadcast(k.lr), divide(raw, add_ftz(sqrt_ftz(states.s1), broadcast(k.eps))));
            return rounded_to<T>(add_ftz(p, mul_ftz(broadcast(-1.0f), step)));
        }
    }
}

// One 8-bit state of a block: its codes, map and absmax, and the float32
// values (old, then new) of its 256 lanes.
struct BlockState {
    uint8_t* codes;
    float* absmax;
    uint8_t padding_code;                // lanes past n: 128 for signed states, 0 for state2
    const uint32_t* negative_code_bits;  // signed states: their sign fix; state2: nullptr
    alignas(64) float values[kBlock];
};

// Dequantizes the block's codes (padding lanes as their padding code) into values.
BNB_CPU_KERNEL inline void dequantize_block_state(BlockState& state, const CodeLookup& lookup, int64_t count) {
    alignas(64) uint8_t codes[kBlock];
    std::memcpy(codes, state.codes, static_cast<size_t>(count));
    std::memset(codes + count, state.padding_code, static_cast<size_t>(kBlock - count));
    const Vec scale = broadcast(flush_denormal(*state.absmax));
    for (int64_t i = 0; i < kBlock; i += kCodeStep) {
        const CodeValues values = lookup_codes(lookup, codes + i, Full{});
        for (int64_t part = 0; part < kCodeStep / kLanes; ++part) {
            store(state.values + i + part * kLanes, mul_ftz(values.part[part], scale), Full{});
        }
    }
}

// New absmax over all 256 lanes (padding included), then the codes of the
// block's elements, with the sign fix of the signed map (fix_code_sign).
BNB_CPU_KERNEL inline void requantize_block_state(BlockState& state, const CodeSearch& search, int64_t count) {
    const float absmax = block_absmax(state.values, kBlock);
    *state.absmax = absmax;
    const Vec reciprocal = broadcast(rcp_approx_ftz(absmax));
    for_each_step(count, kLanes, [&](int64_t i, auto lanes) BNB_CPU_KERNEL {
        const Vec values = load(state.values + i, lanes);
        Ints codes = search_codes(search, ftz_mul_flushed(values, reciprocal));
        if (state.negative_code_bits != nullptr) codes = fix_code_sign(codes, values, state.negative_code_bits);
        store_code_bytes(state.codes + i, codes, lanes);
    });
}

template <UpdateRule R, typename T>
BNB_CPU_KERNEL void update_8bit_piece(const OptimizerUpdateArgs& args, const OptimizerScalars& k,
                                      const OptimizerCodeSearch& code_search, const OptimizerPiece& piece) {
    constexpr bool kTwoState = R == UpdateRule::kAdam || R == UpdateRule::kAdemamix;
    const bnb_optimizer_tensor& tensor = args.tensors[piece.tensor];
    const int64_t n = tensor.n;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const T* const g = static_cast<const T*>(tensor.g);
    T* const p = static_cast<T*>(tensor.p);
    uint8_t* const codes1 = static_cast<uint8_t*>(tensor.state1);
    uint8_t* const codes2 = static_cast<uint8_t*>(tensor.state2);
    const CodeLookup lookup1 = load_code_lookup(args.qmap1);
    const CodeSearch search1 = load_code_search(code_search.code1, code_search.tables1);
    CodeLookup lookup2{};
    CodeSearch search2{};
    if constexpr (kTwoState) {
        lookup2 = load_code_lookup(args.qmap2);
        search2 = load_code_search(code_search.code2, code_search.tables2);
    }
    BlockState s1{}, s2{}, m2{};
    alignas(64) float reciprocals[kBlock];
    for (int64_t begin = piece.begin; begin < piece.end; begin += kBlock) {
        const int64_t block = begin / kBlock;
        const int64_t count = std::min(kBlock, n - begin);
        s1.codes = codes1 + begin;
        s1.absmax = tensor.absmax1 + block;
        s1.padding_code = 128;
        s1.negative_code_bits = code_search.negative_code_bits1;
        dequantize_block_state(s1, lookup1, count);
        if constexpr (kTwoState) {
            s2.codes = codes2 + begin;
            s2.absmax = tensor.absmax2 + block;
            s2.padding_code = 0;
            s2.negative_code_bits = nullptr;
            dequantize_block_state(s2, lookup2, count);
        }
        if constexpr (R == UpdateRule::kAdemamix) {
            // m2 at flat offset n, its absmax in the second row of absmax1.
            m2.codes = codes1 + n + begin;
                m2.absmax = tensor.absmax1 + blocks + block;
            m2.padding_code = 128;
            m2.negative_code_bits = code_search.negative_code_bits1;
            dequantize_block_state(m2, lookup1, count);
        }
        // Padding lanes run the update with g = 0 (their absmax contribution
        // is observable); their parameters are neither read nor written.
        const auto run_update = [&](int64_t i, auto lanes, const auto& divide) BNB_CPU_KERNEL {
            const Vec raw = load_flushed(g + begin + i, lanes);
            States states{load(s1.values + i, Full{}), load(s2.values + i, Full{}), load(m2.values + i, Full{})};
            const Vec new_param = update_8bit_lanes<R, T>(k, raw, mul_ftz(raw, broadcast(k.gnorm_scale)),
                                                          load_flushed(p + begin + i, lanes), states, divide);
            return std::pair{new_param, states};
        };
        const auto for_each_block_step = [&](const auto& step) BNB_CPU_KERNEL {
            for (int64_t i = 0; i < kBlock; i += kLanes) {
                if (count - i >= kLanes) step(i, Full{});
                else step(i, Partial{std::max<int64_t>(0, count - i)});
            }
        };
        if constexpr (divides_per_element(R)) {
            for_each_block_step([&](int64_t i, auto lanes) BNB_CPU_KERNEL {
                run_update(i, lanes, RecordDivisor{reciprocals + i});
            });
            reciprocals_in_place(reciprocals, kBlock);
        }
        for_each_block_step([&](int64_t i, auto lanes) BNB_CPU_KERNEL {
            const Vec raw = load_flushed(g + begin + i, lanes);
            const Vec grad = mul_ftz(raw, broadcast(k.gnorm_scale));
            const States old_states{load(s1.values + i, Full{}), load(s2.values + i, Full{}),
                                    load(m2.values + i, Full{})};
            auto [new_param, states] = run_update(i, lanes, ReplayReciprocal{reciprocals + i});
            new_param = canonical_nan(new_param);
            states = canonical_nan(states);
            if constexpr (kTwoState) {
                // A NaN or infinite gradient resets the element's states and keeps p.
                const Mask finite = is_finite(grad);
                states = {select(finite, states.s1, zero()), select(finite, states.s2, zero()),
                          select(finite, states.m2, zero())};
                new_param = select(finite, new_param, load(p + begin + i, lanes));
            } else {
                // A skipped state keeps its value, a zero as +0 (code 0 under absmax 0
                // dequantizes to -0, which the sign fix would turn into a negative code,
                // and rmsprop's or adagrad's next step into a NaN).
                const Mask skipped = skipped_lanes<R>(k, raw);
                states.s1 = select(skipped, add(old_states.s1, zero()), states.s1);
                new_param = select(skipped, load(p + begin + i, lanes), new_param);
            }
            store(p + begin + i, new_param, lanes);
            store(s1.values + i, states.s1, Full{});
            if constexpr (kTwoState) store(s2.values + i, states.s2, Full{});
            if constexpr (R == UpdateRule::kAdemamix) store(m2.values + i, states.m2, Full{});
        });
        requantize_block_state(s1, search1, count);
        if constexpr (kTwoState) requantize_block_state(s2, search2, count);
        if constexpr (R == UpdateRule::kAdemamix) requantize_block_state(m2, search1, count);
    }
}

void update_32bit_range(const OptimizerUpdateArgs& args, const OptimizerScalars& scalars, const OptimizerPiece& piece,
                        float update_scale) {
    dispatch_update_rule(args.optimizer, [&](auto rule) {
        dispatch_float(args.dtype, [&](auto tag) {
            update_32bit_piece<decltype(rule)::value, decltype(tag)>(args, scalars, piece, update_scale);
        });
    });
}

double update_norm_32bit_range(const OptimizerUpdateArgs& args, const OptimizerScalars& scalars,
                               const OptimizerPiece& piece) {
    double sum = 0.0;
    dispatch_update_rule(args.optimizer, [&](auto rule) {
        dispatch_float(args.dtype, [&](auto tag) {
            sum = update_norm_32bit_piece<decltype(rule)::value, decltype(tag)>(args, scalars, piece);
        });
    });
    return sum;
}

void update_8bit_blockwise_range(const OptimizerUpdateArgs& args, const OptimizerScalars& scalars,
                                 const OptimizerCodeSearch& search, const OptimizerPiece& piece) {
    dispatch_update_rule(args.optimizer, [&](auto rule) {
        dispatch_float(args.dtype, [&](auto tag) {
            update_8bit_piece<decltype(rule)::value, decltype(tag)>(args, scalars, search, piece);
        });
    });
}

const OptimizerKernels kOptimizerKernels = {update_norm_32bit_range, update_32bit_range, update_8bit_blockwise_range};

}  // namespace bnb::cpu::BNB_CPU_ISA
