// The optimizer update kernels (formats.md sections 6 and 7): one fused pass per
// step over a whole list of tensors, each tensor's gradient, states and parameter
// read once and written once.
//
// Work is cut into units of 256 elements (an 8-bit quantization block), one warp
// per unit; lane l holds elements 4l..4l+3 and 128+4l..128+4l+3, so every load and
// store instruction of the warp covers one contiguous span. The list travels as a
// table in the kernel parameters with the prefix sum of each tensor's units; a warp
// finds its tensor by binary search. The expressions are upstream's, term by term,
// so that nvcc's fast-math code rounds as upstream's does.
#pragma once

#include <cfloat>
#include <type_traits>

#include "../quantize_common.cuh"
#include "launch.h"

namespace bnb::cuda::optimizer {

// ---- the unit a warp owns ------------------------------------------------------------

struct UnitRef {
    int tensor;
    int64_t unit;  // within the tensor
};

// The last tensor whose units start at or before `unit` (empty tensors own none).
__device__ __forceinline__ UnitRef locate_unit(const UpdateLaunch& launch, int64_t unit) {
    int low = 0;
    int high = launch.count;
    while (high - low > 1) {
        const int middle = (low + high) / 2;
        if (launch.unit_start[middle] <= unit) {
            low = middle;
        } else {
            high = middle;
        }
    }
    return {low, unit - launch.unit_start[low]};
}

// The first element of group j (0 or 1) of this lane in the unit.
__device__ __forceinline__ int64_t group_first(int64_t unit, int group, int lane) {
    return unit * kUnit + group * (kUnit / 2) + lane * kGroupSize;
}

// ---- loads and stores of one 4-element group ---------------------------------------------

// v[k] = src[first + k] as float32; elements at or past n read as `fill`.
template <typename T>
__device__ __forceinline__ void load_group(const T* src, int64_t first, int64_t n, bool vector_ok, float fill,
                                           float* v) {
    if (vector_ok && first + kGroupSize <= n) {
        if constexpr (sizeof(T) == 4) {
            const float4 x = *reinterpret_cast<const float4*>(src + first);
            v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
        } else {
            const uint2 x = *reinterpret_cast<const uint2*>(src + first);
            v[0] = Element<T>::low_of(x.x), v[1] = Element<T>::high_of(x.x);
            v[2] = Element<T>::low_of(x.y), v[3] = Element<T>::high_of(x.y);
        }
    } else {
#pragma unroll
        for (int k = 0; k < kGroupSize; ++k) v[k] = first + k < n ? Element<T>::to_float(src[first + k]) : fill;
    }
}

// dst[first + k] = v[k] rounded to T, for the elements below n.
template <typename T>
__device__ __forceinline__ void store_group(T* dst, int64_t first, int64_t n, bool vector_ok, const float* v) {
    if (vector_ok && first + kGroupSize <= n) {
        if constexpr (sizeof(T) == 4) {
            *reinterpret_cast<float4*>(dst + first) = make_float4(v[0], v[1], v[2], v[3]);
        } else {
            *reinterpret_cast<uint2*>(dst + first) = make_uint2(Element<T>::pack2(v[0], v[1]),
                                                                Element<T>::pack2(v[2], v[3]));
        }
    } else {
#pragma unroll
        for (int k = 0; k < kGroupSize; ++k) {
            if (first + k < n) dst[first + k] = Element<T>::from_float(v[k]);
        }
    }
}

__device__ __forceinline__ void load_codes(const uint8_t* src, int64_t first, int64_t n, bool vector_ok,
                                           uint32_t fill, uint32_t* codes) {
    if (vector_ok && first + kGroupSize <= n) {
        const uint32_t word = *reinterpret_cast<const uint32_t*>(src + first);
#pragma unroll
        for (int k = 0; k < kGroupSize; ++k) codes[k] = (word >> (8 * k)) & 0xffu;
    } else {
#pragma unroll
        for (int k = 0; k < kGroupSize; ++k) codes[k] = first + k < n ? src[first + k] : fill;
    }
}

__device__ __forceinline__ void store_codes(uint8_t* dst, int64_t first, int64_t n, bool vector_ok,
                                            const uint32_t* codes) {
    if (vector_ok && first + kGroupSize <= n) {
        *reinterpret_cast<uint32_t*>(dst + first) = codes[0] | (codes[1] << 8) | (codes[2] << 16) | (codes[3] << 24);
    } else {
#pragma unroll
        for (int k = 0; k < kGroupSize; ++k) {
            if (first + k < n) dst[first + k] = static_cast<uint8_t>(codes[k]);
        }
    }
}

// A value assigned to a variable of the parameter (or gradient) dtype in upstream's
// kernels: rounded to T and read back.
template <typename T>
__device__ __forceinline__ float round_to(float value) {
    if constexpr (std::is_same_v<T, float>) {
        return value;
    } else {
        return Element<T>::to_float(Element<T>::from_float(value));
    }
}

// upstream's sgn: -1, 0 or 1 (0 for NaN).
__device__ __forceinline__ int sign_of(float value) { return (0.0f < value) - (value < 0.0f); }

__device__ __forceinline__ float warp_max(float value) {
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
        value = fmaxf(value, __shfl_xor_sync(kFullWarp, value, offset));
    }
    return value;
}

__device__ __forceinline__ float warp_sum(float value) {
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullWarp, value, offset);
    return value;
}

// The bias corrections and Adam's step size, as upstream computes them per thread.
struct StepConstants {
    float correction1;  // 1 - beta1^step
    float correction2;  // sqrt(1 - beta2^step)
    float step_size;    // -lr * correction2 / correction1
};

__device__ __forceinline__ StepConstants step_constants(const StepHparams& h) {
    StepConstants c;
    c.correction1 = 1.0f - __powf(h.beta1, h.step);
    c.correction2 = sqrtf(1.0f - __powf(h.beta2, h.step));
    c.step_size = __fdividef(-h.lr * c.correction2, c.correction1);
    return c;
}

// Runs body(tensor slot, unit within the tensor, lane) for every unit of the
// launch, one warp per unit, the warps of the grid striding over the units.
template <typename Body>
__device__ __forceinline__ void for_each_unit(const UpdateLaunch& launch, Body&& body) {
    const int warps_per_block = blockDim.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    const int64_t stride = int64_t{gridDim.x} * warps_per_block;
    const int64_t units = launch.unit_start[launch.count];
    for (int64_t unit = int64_t{blockIdx.x} * warps_per_block + threadIdx.x / kWarpSize; unit < units;
         unit += stride) {
        const UnitRef ref = locate_unit(launch, unit);
        body(launch.tensors[ref.tensor], ref.unit, lane);
    }
}

// ---- 32-bit states (formats.md section 7) ---------------------------------------------------

// The update-norm scale of a tensor (1 without clipping).
template <Rule R>
__device__ __forceinline__ float update_scale(const StepHparams& h, const TensorSlot& t) {
    if (!h.clip) return 1.0f;
    const float norm = sqrtf(*t.unorm_vec);
    // One-state rules add eps to the bound, two-state ones do not (upstream).
    const float bound = has_state2(R) ? h.max_unorm * t.param_norm : h.max_unorm * t.param_norm + h.eps;
    return norm > bound ? bound / norm : 1.0f;
}

template <typename T, Rule R>
__global__ void __launch_bounds__(tune::kThreads) update_32bit_kernel(const __grid_constant__ UpdateLaunch launch) {
    const StepHparams& h = launch.hparams;
    [[maybe_unused]] const StepConstants c = step_constants(h);
    for_each_unit(launch, [&](const TensorSlot& t, int64_t unit, int lane) {
        const int64_t n = t.n;
        const bool vector_ok = t.vector_ok != 0;
        const T* g_src = static_cast<const T*>(t.g);
        T* p_dst = static_cast<T*>(t.p);
        float* s1_dst = static_cast<float*>(t.state1);
        [[maybe_unused]] float* s2_dst = static_cast<float*>(t.state2);
        [[maybe_unused]] float* s3_dst = s1_dst + n;  // ademamix: m2 after m1
        float g[kPerLane], p[kPerLane], s1[kPerLane];
        [[maybe_unused]] float s2[kPerLane], s3[kPerLane];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int64_t first = group_first(unit, j, lane);
            load_group(g_src, first, n, vector_ok, 0.0f, g + 4 * j);
            load_group(p_dst, first, n, vector_ok, 0.0f, p + 4 * j);
            load_group(s1_dst, first, n, vector_ok, 0.0f, s1 + 4 * j);
            if constexpr (has_state2(R)) load_group(s2_dst, first, n, vector_ok, 0.0f, s2 + 4 * j);
            if constexpr (R == Rule::kAdemamix) load_group(s3_dst, first, n, vector_ok, 0.0f, s3 + 4 * j);
        }
        [[maybe_unused]] const float scale = clips_update_norm(R) ? update_scale<R>(h, t) : 1.0f;
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) {
            float grad = round_to<T>(h.gnorm_scale * g[e]);
            if constexpr (R == Rule::kAdemamix) {
                s1[e] = (s1[e] * h.beta1) + ((1.0f - h.beta1) * grad);
                s3[e] = (s3[e] * h.beta3) + ((1.0f - h.beta3) * grad);
                s2[e] = (s2[e] * h.beta2) + ((1.0f - h.beta2) * grad * grad);
                p[e] = round_to<T>(p[e] - h.lr * (((s1[e] / c.correction1) + (h.alpha * s3[e])) /
                                                  ((sqrtf(s2[e]) / c.correction2) + h.eps)));
                if (h.weight_decay > 0.0f) p[e] = round_to<T>(p[e] * (1.0f - (h.lr * h.weight_decay)));
            } else if constexpr (R == Rule::kAdam) {
                if (!h.skip_zeros || grad != 0.0f) {
                    s1[e] = s1[e] * h.beta1 + ((1.0f - h.beta1) * grad);
                    s2[e] = s2[e] * h.beta2 + ((1.0f - h.beta2) * (grad * grad));
                    p[e] = round_to<T>(p[e] + (scale * c.step_size * (s1[e] / (sqrtf(s2[e]) + (h.eps * c.correction2)))));
                    if (h.weight_decay > 0.0f) p[e] = round_to<T>(p[e] * (1.0f - (h.lr * h.weight_decay)));
                }
            } else {
                // Coupled (L2) decay enters the gradient, except for lion's decoupled decay.
                if (h.weight_decay > 0.0f && R != Rule::kLion) grad = round_to<T>(grad + (p[e] * h.weight_decay));
                if (!h.skip_zeros || grad != 0.0f) {
                    if constexpr (R == Rule::kMomentum) {
                        s1[e] = h.first_step ? grad : s1[e] * h.beta1 + grad;
                        p[e] = round_to<T>(p[e] + scale * (-h.lr * (s1[e])));
                    } else if constexpr (R == Rule::kLion) {
                        if (h.weight_decay > 0.0f) p[e] = round_to<T>(p[e] * (1.0f - h.lr * h.weight_decay));
                        p[e] = round_to<T>(p[e] - scale * (h.lr * sign_of(s1[e] * h.beta1 + ((1.0f - h.beta1) * grad))));
                        s1[e] = s1[e] * h.beta2 + ((1.0f - h.beta2) * grad);
                    } else if constexpr (R == Rule::kRmsprop) {
                        s1[e] = s1[e] * h.beta1 + ((1.0f - h.beta1) * grad * grad);
                        p[e] = round_to<T>(p[e] - scale * (h.lr * __fdividef(grad, sqrtf(s1[e]) + h.eps)));
                    } else {
                        static_assert(R == Rule::kAdagrad);
                        s1[e] = s1[e] + grad * grad;
                        p[e] = round_to<T>(p[e] - h.lr * __fdividef(grad, sqrtf(s1[e]) + h.eps));
                    }
                }
            }
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int64_t first = group_first(unit, j, lane);
            store_group(p_dst, first, n, vector_ok, p + 4 * j);
            store_group(s1_dst, first, n, vector_ok, s1 + 4 * j);
            if constexpr (has_state2(R)) store_group(s2_dst, first, n, vector_ok, s2 + 4 * j);
            if constexpr (R == Rule::kAdemamix) store_group(s3_dst, first, n, vector_ok, s3 + 4 * j);
        }
    });
}

// The clipping pass: adds each tensor's sum of squared would-be updates (new
// states, no weight decay) to its unorm_vec, cleared before.
template <typename T, Rule R>
__global__ void __launch_bounds__(tune::kThreads) update_norm_32bit_kernel(const __grid_constant__ UpdateLaunch launch) {
    static_assert(clips_update_norm(R));
    const StepHparams& h = launch.hparams;
    const float correction1 = 1.0f / (1.0f - __powf(h.beta1, h.step));
    const float correction2 = 1.0f / (1.0f - __powf(h.beta2, h.step));
    for_each_unit(launch, [&](const TensorSlot& t, int64_t unit, int lane) {
        const int64_t n = t.n;
        const bool vector_ok = t.vector_ok != 0;
        float g[kPerLane], s1[kPerLane];
        [[maybe_unused]] float s2[kPerLane];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int64_t first = group_first(unit, j, lane);
            load_group(static_cast<const T*>(t.g), first, n, vector_ok, 0.0f, g + 4 * j);
            load_group(static_cast<const float*>(t.state1), first, n, vector_ok, 0.0f, s1 + 4 * j);
            if constexpr (has_state2(R)) {
                load_group(static_cast<const float*>(t.state2), first, n, vector_ok, 0.0f, s2 + 4 * j);
            }
        }
        float sum = 0.0f;
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) {
            const float grad = round_to<T>(h.gnorm_scale * g[e]);
            float update;
            if constexpr (R == Rule::kAdam) {
                const float m = (s1[e] * h.beta1 + ((1.0f - h.beta1) * grad)) * correction1;
                const float v = (s2[e] * h.beta2 + ((1.0f - h.beta2) * (grad * grad))) * correction2;
                update = m / (sqrtf(v) + h.eps);
            } else if constexpr (R == Rule::kMomentum) {
                update = h.first_step ? grad : s1[e] * h.beta1 + grad;
            } else {
                static_assert(R == Rule::kRmsprop);
                const float v = s1[e] * h.beta1 + ((1.0f - h.beta1) * grad * grad);
                update = __fdividef(grad, sqrtf(v) + h.eps);
            }
            // Elements past n hold zeros and add 0 for every rule; skipping them keeps
            // the sum independent of that argument.
            if (group_first(unit, e / kGroupSize, lane) + e % kGroupSize < n) sum += update * update;
        }
        sum = warp_sum(sum);
        if (lane == 0) atomicAdd(t.unorm_vec, sum);
    });
}

// ---- 8-bit blockwise states (formats.md section 6) ---------------------------------------------

// The dynamic maps with their search trees and buckets, per block in shared memory.
struct CodeTables {
    float map1[kCodeSize];
    float tree1[kTreeNodes];
    float map2[kCodeSize];
    float tree2[kTreeNodes];
    CodeBuckets buckets1;
    CodeBuckets buckets2;
};

template <bool kTwoMaps>
__device__ __forceinline__ void fill_code_tables(CodeTables& tables, const float* qmap1, const float* qmap2) {
    for (int i = threadIdx.x; i < kCodeSize; i += blockDim.x) {
        tables.map1[i] = qmap1[i];
        if constexpr (kTwoMaps) tables.map2[i] = qmap2[i];
    }
    for (int i = threadIdx.x; i < kTreeNodes; i += blockDim.x) {
        tables.tree1[i] = qmap1[tree_pivot(i)];
        if constexpr (kTwoMaps) tables.tree2[i] = qmap2[tree_pivot(i)];
    }
    __syncthreads();
    build_code_buckets<TopBracket::kOne>(tables.buckets1, tables.map1);
    if constexpr (kTwoMaps) build_code_buckets<TopBracket::kOne>(tables.buckets2, tables.map2);
}

// The code of v in the signed map, then upstream's sign fix: a code whose value has
// the other sign moves one step towards v's side (uint8 arithmetic, so +0.0 in a
// zero block becomes 255).
__device__ __forceinline__ uint32_t requantize_signed(const CodeTables& tables, float v, float absmax) {
    const CodeBuckets& buckets = tables.buckets1;
    const uint32_t code = find_code<TopBracket::kOne>(buckets, tables.tree1, tables.map1, __fdividef(v, absmax));
    // An increasing map holds its sign-bit codes first: no table read for the sign.
    const uint32_t code_sign = buckets.exact ? code < static_cast<uint32_t>(buckets.sign_prefix)
                                             : __float_as_uint(tables.map1[code]) >> 31;
    if (code_sign == (__float_as_uint(v) >> 31)) return code;
    return (v > 0.0f ? code + 1u : code - 1u) & 0xffu;
}

__device__ __forceinline__ uint32_t requantize_unsigned(const CodeTables& tables, float v, float absmax) {
    return find_code<TopBracket::kOne>(tables.buckets2, tables.tree2, tables.map2, __fdividef(v, absmax));
}

// Elements past n (the tail block's padding lanes) take part in the absmax as
// upstream's: gradient 0, parameter 0, state1 code 128, state2 code 0.
constexpr uint32_t kState1PaddingCode = 128;
constexpr uint32_t kState2PaddingCode = 0;

template <typename T, Rule R>
__global__ void __launch_bounds__(tune::kThreads, tune::kBlocksPerSm8bit)
    update_8bit_kernel(const __grid_constant__ UpdateLaunch launch) {
    __shared__ CodeTables tables;
    fill_code_tables<has_state2(R)>(tables, launch.qmap1, launch.qmap2);
    const StepHparams& h = launch.hparams;
    [[maybe_unused]] const StepConstants c = step_constants(h);
    for_each_unit(launch, [&](const TensorSlot& t, int64_t unit, int lane) {
        const int64_t n = t.n;
        [[maybe_unused]] const int64_t blocks = (n + kUnit - 1) / kUnit;
        const bool vector_ok = t.vector_ok != 0;
        const T* g_src = static_cast<const T*>(t.g);
        T* p_dst = static_cast<T*>(t.p);
        uint8_t* c1_dst = static_cast<uint8_t*>(t.state1);
        [[maybe_unused]] uint8_t* c2_dst = static_cast<uint8_t*>(t.state2);
        [[maybe_unused]] uint8_t* c3_dst = c1_dst + n;  // ademamix: m2's codes after m1's
        float g[kPerLane], p[kPerLane];
        uint32_t c1[kPerLane];
        [[maybe_unused]] uint32_t c2[kPerLane], c3[kPerLane];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int64_t first = group_first(unit, j, lane);
            load_group(g_src, first, n, vector_ok, 0.0f, g + 4 * j);
            load_group(p_dst, first, n, vector_ok, 0.0f, p + 4 * j);
            load_codes(c1_dst, first, n, vector_ok, kState1PaddingCode, c1 + 4 * j);
            if constexpr (has_state2(R)) load_codes(c2_dst, first, n, vector_ok, kState2PaddingCode, c2 + 4 * j);
            if constexpr (R == Rule::kAdemamix) {
                load_codes(c3_dst, first, n, vector_ok, kState1PaddingCode, c3 + 4 * j);
            }
        }
        // AdEMAMix's m2 keeps its absmax in the second row of absmax1 (formats.md 6.2).
        const float absmax1 = t.absmax1[unit];
        [[maybe_unused]] const float absmax2 = has_state2(R) ? t.absmax2[unit] : 0.0f;
        [[maybe_unused]] const float absmax3 = R == Rule::kAdemamix ? t.absmax1[blocks + unit] : 0.0f;
        float s1[kPerLane];
        [[maybe_unused]] float s2[kPerLane], s3[kPerLane], lion_step[kPerLane];
        bool updated[kPerLane];
        // From 0, not upstream's -FLT_MAX: a block whose values are all NaN (an
        // infinite gradient times a zero code in a one-state rule) gets absmax 0, as on
        // the CPU, and the next step restarts it from zero instead of -FLT_MAX * code.
        float max1 = 0.0f;
        [[maybe_unused]] float max2 = 0.0f, max3 = 0.0f;
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) {
            if constexpr (has_state2(R)) {
                // A NaN or infinite gradient resets the element's states and leaves p.
                updated[e] = !isnan(g[e]) && !isinf(g[e]);
                s1[e] = s2[e] = s3[e] = 0.0f;
                if (updated[e]) {
                    const float grad = g[e] * h.gnorm_scale;
                    s2[e] = tables.map2[c2[e]] * absmax2;
                    s2[e] = (s2[e] * h.beta2) + (((1.0f - h.beta2) * grad * grad));
                    s1[e] = tables.map1[c1[e]] * absmax1;
                    s1[e] = (s1[e] * h.beta1) + (((1.0f - h.beta1) * grad));
                    if constexpr (R == Rule::kAdemamix) {
                        s3[e] = tables.map1[c3[e]] * absmax3;
                        s3[e] = (s3[e] * h.beta3) + (((1.0f - h.beta3) * grad));
                    }
                }
                max2 = fmaxf(max2, fabsf(s2[e]));
                if constexpr (R == Rule::kAdemamix) max3 = fmaxf(max3, fabsf(s3[e]));
            } else {
                // Skipped elements (skip_zeros, zero gradient) keep their state value,
                // requantized with the block's new absmax.
                updated[e] = !h.skip_zeros || g[e] != 0.0f;
                s1[e] = tables.map1[c1[e]] * absmax1;
                if (updated[e]) {
                    float grad = g[e] * h.gnorm_scale;
                    if (h.weight_decay > 0.0f) {
                        if constexpr (R == Rule::kLion) {
                            p[e] = round_to<T>(p[e] * (1.0f - h.lr * h.weight_decay));
                        } else {
                            grad += p[e] * h.weight_decay;
                        }
                    }
                    if constexpr (R == Rule::kMomentum) {
                        s1[e] = h.first_step ? grad : (s1[e] * h.beta1) + grad;
                    } else if constexpr (R == Rule::kLion) {
                        // Upstream keeps this step in the gradient's variable: rounded to T.
                        lion_step[e] = round_to<T>(h.lr * sign_of(s1[e] * h.beta1 + ((1.0f - h.beta1) * grad)));
                        s1[e] = s1[e] * h.beta2 + ((1.0f - h.beta2) * grad);
                    } else if constexpr (R == Rule::kRmsprop) {
                        s1[e] = s1[e] * h.beta1 + ((1.0f - h.beta1) * (grad * grad));
                    } else {
                        static_assert(R == Rule::kAdagrad);
                        s1[e] = s1[e] + (grad * grad);
                    }
                }
            }
            max1 = fmaxf(max1, fabsf(s1[e]));
        }
        max1 = warp_max(max1);
        if constexpr (has_state2(R)) max2 = warp_max(max2);
        if constexpr (R == Rule::kAdemamix) max3 = warp_max(max3);
        if (lane == 0) {
            t.absmax1[unit] = max1;
            if constexpr (has_state2(R)) t.absmax2[unit] = max2;
            if constexpr (R == Rule::kAdemamix) t.absmax1[blocks + unit] = max3;
        }
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) {
            if (!updated[e]) continue;
            if constexpr (R == Rule::kAdemamix) {
                p[e] = round_to<T>(p[e] - h.lr * (((s1[e] / c.correction1) + (h.alpha * s3[e])) /
                                                  ((sqrtf(s2[e]) / c.correction2) + h.eps)));
            } else if constexpr (R == Rule::kAdam) {
                p[e] = round_to<T>(p[e] + ((c.step_size * (__fdividef(s1[e], (sqrtf(s2[e]) + (c.correction2 * h.eps)))))));
            } else if constexpr (R == Rule::kMomentum) {
                p[e] = round_to<T>(p[e] - h.lr * (s1[e]));
            } else if constexpr (R == Rule::kLion) {
                p[e] = round_to<T>(p[e] - lion_step[e]);
            } else {
                // rmsprop, adagrad: the raw gradient (no scale, no decay), as upstream.
                p[e] = round_to<T>(p[e] - h.lr * (__fdividef(g[e], sqrtf(s1[e]) + h.eps)));
            }
            if constexpr (has_state2(R)) {
                if (h.weight_decay > 0.0f) p[e] = round_to<T>(p[e] * (1.0f - (h.lr * h.weight_decay)));
            }
        }
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) {
            c1[e] = requantize_signed(tables, s1[e], max1);
            if constexpr (has_state2(R)) c2[e] = requantize_unsigned(tables, s2[e], max2);
            if constexpr (R == Rule::kAdemamix) c3[e] = requantize_signed(tables, s3[e], max3);
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int64_t first = group_first(unit, j, lane);
            store_group(p_dst, first, n, vector_ok, p + 4 * j);
            store_codes(c1_dst, first, n, vector_ok, c1 + 4 * j);
            if constexpr (has_state2(R)) store_codes(c2_dst, first, n, vector_ok, c2 + 4 * j);
            if constexpr (R == Rule::kAdemamix) store_codes(c3_dst, first, n, vector_ok, c3 + 4 * j);
        }
    });
}

}  // namespace bnb::cuda::optimizer
