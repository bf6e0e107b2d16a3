// Host reference of the optimizer updates (formats.md sections 6 and 7), written
// from the spec and checked against upstream's golden trajectories by
// test_optimizer_reference.cpp; the backends' tests compare with it. Also the
// byte encodings of the float dtypes, the comparisons with the spec's tolerances
// (formats.md 8.0) and the hyper-parameters of the golden cases.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/cuda_float.h"
#include "support/float16.h"
#include "support/golden.h"

namespace bnb_test {

inline constexpr int64_t kOptimizerBlock = 256;

// ---- the rules of formats.md, on the host ---------------------------------------------------

enum class UpdateRule { kAdam, kMomentum, kRmsprop, kAdagrad, kLion, kAdemamix };

inline UpdateRule rule_of(bnb_optimizer optimizer) {
    switch (optimizer) {
        case BNB_OPTIMIZER_ADAM:
        case BNB_OPTIMIZER_LAMB: return UpdateRule::kAdam;
        case BNB_OPTIMIZER_MOMENTUM:
        case BNB_OPTIMIZER_LARS: return UpdateRule::kMomentum;
        case BNB_OPTIMIZER_RMSPROP: return UpdateRule::kRmsprop;
        case BNB_OPTIMIZER_ADAGRAD: return UpdateRule::kAdagrad;
        case BNB_OPTIMIZER_LION: return UpdateRule::kLion;
        case BNB_OPTIMIZER_ADEMAMIX: return UpdateRule::kAdemamix;
    }
    return UpdateRule::kAdam;
}

inline bool two_state(bnb_optimizer optimizer) {
    return rule_of(optimizer) == UpdateRule::kAdam || rule_of(optimizer) == UpdateRule::kAdemamix;
}
inline int64_t state1_factor(bnb_optimizer optimizer) { return optimizer == BNB_OPTIMIZER_ADEMAMIX ? 2 : 1; }
// The rules whose 32-bit update is scaled by the clipped update norm.
inline bool clips(bnb_optimizer optimizer) {
    const UpdateRule rule = rule_of(optimizer);
    return rule == UpdateRule::kAdam || rule == UpdateRule::kMomentum || rule == UpdateRule::kRmsprop;
}

inline size_t element_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

inline float round_to(float value, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT16) return half_to_float(float_to_half(value));
    if (dtype == BNB_DTYPE_BFLOAT16) return std::isnan(value) ? value : bf16_to_float(float_to_bf16(value));
    return value;
}

// One ulp of `dtype` at |value| (float32: 0, the tolerance covers it).
inline float dtype_ulp(float value, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT32) return 0.0f;
    int exponent = 0;
    std::frexp(std::fabs(value), &exponent);
    const int mantissa_bits = dtype == BNB_DTYPE_FLOAT16 ? 11 : 8;
    return std::ldexp(1.0f, std::max(exponent - mantissa_bits, dtype == BNB_DTYPE_FLOAT16 ? -24 : -133));
}

inline float sign_of(float value) { return static_cast<float>((0.0f < value) - (value < 0.0f)); }

// The code search of formats.md section 6.0 (upstream's descent with start values
// -1 or 0 below and 1 above, no end substitution), written from the description.
inline uint8_t search_code(const std::vector<float>& code, float x, bool is_signed) {
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = is_signed ? -1.0f : 0.0f, upper = 1.0f, value = code[127];
    for (int step = 64; step > 0; step >>= 1) {
        if (x > value) {
            lower_pivot = pivot, lower = value, pivot += step;
        } else {
            upper_pivot = pivot, upper = value, pivot -= step;
        }
        value = code[static_cast<size_t>(pivot)];
    }
    if (x > value) return static_cast<uint8_t>(x > (upper + value) * 0.5f ? upper_pivot : pivot);
    return static_cast<uint8_t>(x < (lower + value) * 0.5f ? lower_pivot : pivot);
}

inline uint8_t requantize_signed(const std::vector<float>& qmap1, float v, float absmax) {
    const uint8_t code = search_code(qmap1, fdiv(v, absmax), true);  // __fdividef (formats.md 6.0)
    if (std::signbit(qmap1[code]) == std::signbit(v)) return code;
    return static_cast<uint8_t>(v > 0.0f ? code + 1 : code - 1);
}

// A tensor's values on the host: g and p as the float values of their dtype,
// 32-bit states in s1/s2 (ademamix: s1 holds m1 then m2), 8-bit codes in c1/c2.
struct HostTensor {
    int64_t n = 0;
    std::vector<float> g, p, s1, s2, absmax1, absmax2;
    std::vector<uint8_t> c1, c2;
    float unorm = 0.0f;
    float param_norm = 0.0f;
};

inline HostTensor zero_tensor(int64_t n, bnb_optimizer optimizer, bool blockwise) {
    HostTensor t;
    t.n = n;
    t.g.assign(static_cast<size_t>(n), 0.0f);
    t.p.assign(static_cast<size_t>(n), 0.0f);
    const size_t states = static_cast<size_t>(n * state1_factor(optimizer));
    const size_t blocks = static_cast<size_t>((n + kOptimizerBlock - 1) / kOptimizerBlock);
    if (blockwise) {
        t.c1.assign(states, 0);
        t.absmax1.assign(blocks * static_cast<size_t>(state1_factor(optimizer)), 0.0f);
        if (two_state(optimizer)) {
            t.c2.assign(static_cast<size_t>(n), 0);
            t.absmax2.assign(blocks, 0.0f);
        }
    } else {
        t.s1.assign(states, 0.0f);
        if (two_state(optimizer)) t.s2.assign(static_cast<size_t>(n), 0.0f);
    }
    return t;
}

struct Corrections {
    float correction1, correction2, step_size;
};

inline Corrections corrections(const bnb_optimizer_hparams& h) {
    const float step = static_cast<float>(h.step);
    const float c1 = 1.0f - std::pow(h.beta1, step);
    const float c2 = std::sqrt(1.0f - std::pow(h.beta2, step));
    return {c1, c2, -h.lr * c2 / c1};
}

inline void reference_32bit(bnb_optimizer optimizer, bnb_dtype dtype, const bnb_optimizer_hparams& h, HostTensor& t) {
    const UpdateRule rule = rule_of(optimizer);
    const Corrections c = corrections(h);
    const size_t n = static_cast<size_t>(t.n);
    float scale = 1.0f;
    if (h.max_unorm > 0.0f && clips(optimizer)) {
        const float step = static_cast<float>(h.step);
        const float norm_c1 = 1.0f - std::pow(h.beta1, step);
        const float norm_c2 = 1.0f - std::pow(h.beta2, step);
        double sum = 0.0;
        for (size_t i = 0; i < n; ++i) {
            const float g = round_to(h.gnorm_scale * t.g[i], dtype);
            float u = 0.0f;
            if (rule == UpdateRule::kAdam) {
                const float m = t.s1[i] * h.beta1 + (1.0f - h.beta1) * g;
                const float v = t.s2[i] * h.beta2 + (1.0f - h.beta2) * g * g;
                u = (m / norm_c1) / (std::sqrt(v / norm_c2) + h.eps);
            } else if (rule == UpdateRule::kMomentum) {
                u = h.step == 1 ? g : t.s1[i] * h.beta1 + g;
            } else {
                const float v = t.s1[i] * h.beta1 + (1.0f - h.beta1) * g * g;
                u = g / (std::sqrt(v) + h.eps);
            }
            sum += static_cast<double>(u) * u;
        }
        t.unorm = static_cast<float>(sum);
        const float norm = std::sqrt(t.unorm);
        const float bound = two_state(optimizer) ? h.max_unorm * t.param_norm : h.max_unorm * t.param_norm + h.eps;
        scale = norm > bound ? bound / norm : 1.0f;
    }
    const auto P = [&](float value) { return round_to(value, dtype); };
    for (size_t i = 0; i < n; ++i) {
        float g = P(h.gnorm_scale * t.g[i]);
        float& p = t.p[i];
        float& s1 = t.s1[i];
        if (rule == UpdateRule::kAdemamix) {
            float& m2 = t.s1[n + i];
            float& s2 = t.s2[i];
            s1 = s1 * h.beta1 + (1.0f - h.beta1) * g;
            m2 = m2 * h.beta3 + (1.0f - h.beta3) * g;
            s2 = s2 * h.beta2 + (1.0f - h.beta2) * g * g;
            p = P(p - h.lr * ((s1 / c.correction1 + h.alpha * m2) / (std::sqrt(s2) / c.correction2 + h.eps)));
            if (h.weight_decay > 0.0f) p = P(p * (1.0f - h.lr * h.weight_decay));
        } else if (rule == UpdateRule::kAdam) {
            if (h.skip_zeros && g == 0.0f) continue;
            float& s2 = t.s2[i];
            s1 = s1 * h.beta1 + (1.0f - h.beta1) * g;
            s2 = s2 * h.beta2 + (1.0f - h.beta2) * g * g;
            p = P(p + scale * c.step_size * (s1 / (std::sqrt(s2) + h.eps * c.correction2)));
            if (h.weight_decay > 0.0f) p = P(p * (1.0f - h.lr * h.weight_decay));
        } else {
            if (h.weight_decay > 0.0f && rule != UpdateRule::kLion) g = P(g + p * h.weight_decay);
            if (h.skip_zeros && g == 0.0f) continue;
            if (rule == UpdateRule::kMomentum) {
                s1 = h.step == 1 ? g : s1 * h.beta1 + g;
                p = P(p + scale * (-h.lr * s1));
            } else if (rule == UpdateRule::kLion) {
                if (h.weight_decay > 0.0f) p = P(p * (1.0f - h.lr * h.weight_decay));
                p = P(p - h.lr * sign_of(s1 * h.beta1 + (1.0f - h.beta1) * g));
                s1 = s1 * h.beta2 + (1.0f - h.beta2) * g;
            } else if (rule == UpdateRule::kRmsprop) {
                s1 = s1 * h.beta1 + (1.0f - h.beta1) * g * g;
                p = P(p - scale * (h.lr * (g / (std::sqrt(s1) + h.eps))));
            } else {
                s1 = s1 + g * g;
                p = P(p - h.lr * (g / (std::sqrt(s1) + h.eps)));
            }
        }
    }
}

inline void reference_8bit(bnb_optimizer optimizer, bnb_dtype dtype, const bnb_optimizer_hparams& h,
                    const std::vector<float>& qmap1, const std::vector<float>& qmap2, HostTensor& t) {
    const UpdateRule rule = rule_of(optimizer);
    const bool has_s2 = two_state(optimizer);
    const Corrections c = corrections(h);
    const int64_t n = t.n;
    const int64_t blocks = (n + kOptimizerBlock - 1) / kOptimizerBlock;
    const auto P = [&](float value) { return round_to(value, dtype); };
    for (int64_t b = 0; b < blocks; ++b) {
        std::array<float, kOptimizerBlock> s1{}, s2{}, m2{}, p{}, lion_step{};
        std::array<bool, kOptimizerBlock> updated{};
        float max1 = 0.0f, max2 = 0.0f, max3 = 0.0f;  // an all-NaN block: 0 (fmax ignores NaN)
        const float a1 = t.absmax1[static_cast<size_t>(b)];
        const float a2 = has_s2 ? t.absmax2[static_cast<size_t>(b)] : 0.0f;
        const float a3 = rule == UpdateRule::kAdemamix ? t.absmax1[static_cast<size_t>(blocks + b)] : 0.0f;
        for (int64_t lane = 0; lane < kOptimizerBlock; ++lane) {
            const int64_t i = b * kOptimizerBlock + lane;
            const bool valid = i < n;
            // Padding lanes: g = 0, p = 0, state1 code 128, state2 code 0.
            const float raw = valid ? t.g[static_cast<size_t>(i)] : 0.0f;
            float& pv = p[static_cast<size_t>(lane)];
            pv = valid ? t.p[static_cast<size_t>(i)] : 0.0f;
            const uint8_t c1 = valid ? t.c1[static_cast<size_t>(i)] : 128;
            float& v1 = s1[static_cast<size_t>(lane)];
            if (has_s2) {
                const uint8_t c2 = valid ? t.c2[static_cast<size_t>(i)] : 0;
                const uint8_t c3 = rule == UpdateRule::kAdemamix && valid ? t.c1[static_cast<size_t>(n + i)] : 128;
                updated[static_cast<size_t>(lane)] = std::isfinite(raw);
                float& v2 = s2[static_cast<size_t>(lane)];
                float& v3 = m2[static_cast<size_t>(lane)];
                if (std::isfinite(raw)) {
                    const float g = raw * h.gnorm_scale;
                    v2 = qmap2[c2] * a2 * h.beta2 + (1.0f - h.beta2) * g * g;
                    v1 = qmap1[c1] * a1 * h.beta1 + (1.0f - h.beta1) * g;
                    if (rule == UpdateRule::kAdemamix) v3 = qmap1[c3] * a3 * h.beta3 + (1.0f - h.beta3) * g;
                }
                max2 = std::fmax(max2, std::fabs(v2));
                if (rule == UpdateRule::kAdemamix) max3 = std::fmax(max3, std::fabs(v3));
            } else {
                const bool update = !h.skip_zeros || raw != 0.0f;
                updated[static_cast<size_t>(lane)] = update;
                v1 = qmap1[c1] * a1;
                if (update) {
                    float g = raw * h.gnorm_scale;
                    if (h.weight_decay > 0.0f) {
                        if (rule == UpdateRule::kLion) {
                            pv = P(pv * (1.0f - h.lr * h.weight_decay));
                        } else {
                            g += pv * h.weight_decay;
                        }
                    }
                    if (rule == UpdateRule::kMomentum) {
                        v1 = h.step == 1 ? g : v1 * h.beta1 + g;
                    } else if (rule == UpdateRule::kLion) {
                        lion_step[static_cast<size_t>(lane)] = P(h.lr * sign_of(v1 * h.beta1 + (1.0f - h.beta1) * g));
                        v1 = v1 * h.beta2 + (1.0f - h.beta2) * g;
                    } else if (rule == UpdateRule::kRmsprop) {
                        v1 = v1 * h.beta1 + (1.0f - h.beta1) * g * g;
                    } else {
                        v1 = v1 + g * g;
                    }
                }
            }
            max1 = std::fmax(max1, std::fabs(v1));
        }
        t.absmax1[static_cast<size_t>(b)] = max1;
        if (has_s2) t.absmax2[static_cast<size_t>(b)] = max2;
        if (rule == UpdateRule::kAdemamix) t.absmax1[static_cast<size_t>(blocks + b)] = max3;
        for (int64_t lane = 0; lane < kOptimizerBlock && b * kOptimizerBlock + lane < n; ++lane) {
            const size_t i = static_cast<size_t>(b * kOptimizerBlock + lane);
            const size_t l = static_cast<size_t>(lane);
            float pv = p[l];
            if (updated[l]) {
                const float raw = t.g[i];
                if (rule == UpdateRule::kAdemamix) {
                    pv = P(pv - h.lr * ((s1[l] / c.correction1 + h.alpha * m2[l]) /
                                        (std::sqrt(s2[l]) / c.correction2 + h.eps)));
                } else if (rule == UpdateRule::kAdam) {
                    pv = P(pv + c.step_size * (s1[l] / (std::sqrt(s2[l]) + c.correction2 * h.eps)));
                } else if (rule == UpdateRule::kMomentum) {
                    pv = P(pv - h.lr * s1[l]);
                } else if (rule == UpdateRule::kLion) {
                    pv = P(pv - lion_step[l]);
                } else {
                    pv = P(pv - h.lr * (raw / (std::sqrt(s1[l]) + h.eps)));  // the raw gradient (upstream)
                }
                if (has_s2 && h.weight_decay > 0.0f) pv = P(pv * (1.0f - h.lr * h.weight_decay));
            }
            t.p[i] = pv;
            t.c1[i] = requantize_signed(qmap1, s1[l], max1);
            if (has_s2) t.c2[i] = search_code(qmap2, fdiv(s2[l], max2), false);
            if (rule == UpdateRule::kAdemamix) t.c1[static_cast<size_t>(t.n) + i] = requantize_signed(qmap1, m2[l], max3);
        }
    }
}

inline std::vector<uint8_t> encode(const std::vector<float>& values, bnb_dtype dtype) {
    std::vector<uint8_t> bytes(values.size() * element_size(dtype));
    for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(bytes.data() + 4 * i, &values[i], 4);
        } else {
            const uint16_t bits = dtype == BNB_DTYPE_FLOAT16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
            std::memcpy(bytes.data() + 2 * i, &bits, 2);
        }
    }
    return bytes;
}

inline std::vector<float> decode(const uint8_t* bytes, size_t count, bnb_dtype dtype) {
    std::vector<float> values(count);
    for (size_t i = 0; i < count; ++i) {
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(&values[i], bytes + 4 * i, 4);
        } else {
            uint16_t bits;
            std::memcpy(&bits, bytes + 2 * i, 2);
            values[i] = dtype == BNB_DTYPE_FLOAT16 ? half_to_float(bits) : bf16_to_float(bits);
        }
    }
    return values;
}

template <typename V>
inline std::vector<uint8_t> raw_bytes(const std::vector<V>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(V));
    if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
}

template <typename V>
inline std::vector<V> values_of_bytes(const std::vector<uint8_t>& bytes) {
    std::vector<V> values(bytes.size() / sizeof(V));
    if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
    return values;
}

// The case's map of `role` (upstream's qmap), else the library's.
inline std::vector<float> qmap_or_default(const GoldenCase& golden, const std::string& role, bnb_codebook fallback) {
    if (!golden.has(role)) return codebook(fallback);
    const TensorView& view = golden.tensor(role);
    return decode(view.data, static_cast<size_t>(view.numel()), BNB_DTYPE_FLOAT32);
}

// One step of the rules on `t`.
inline void reference_step(bnb_optimizer optimizer, bnb_dtype dtype, bool blockwise, const bnb_optimizer_hparams& h,
                           const std::vector<float>& qmap1, const std::vector<float>& qmap2, HostTensor& t) {
    if (blockwise) {
        reference_8bit(optimizer, dtype, h, qmap1, qmap2, t);
    } else {
        reference_32bit(optimizer, dtype, h, t);
    }
}

// ---- comparisons --------------------------------------------------------------------------

// got matches want: within rel * |want| + abs, or (fp16/bf16 values) one ulp of
// the dtype for at most max(2, 0.1%) of the elements: a float32 difference of one
// ulp may round the other way.
inline ::testing::AssertionResult values_close(const std::vector<float>& got, const std::vector<float>& want, float rel,
                                        float abs, bnb_dtype rounding, const std::string& what) {
    if (got.size() != want.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
    int64_t flips = 0, bad = 0;
    std::string first;
    for (size_t i = 0; i < got.size(); ++i) {
        const float g = got[i], w = want[i];
        if (g == w || (std::isnan(g) && std::isnan(w))) continue;
        const float diff = std::fabs(g - w);
        if (diff <= rel * std::fabs(w) + abs) continue;
        if (rounding != BNB_DTYPE_FLOAT32 && diff <= 1.01f * dtype_ulp(w, rounding)) {
            ++flips;
            continue;
        }
        if (++bad <= 3) first += "\n  [" + std::to_string(i) + "] got " + std::to_string(g) + ", want " + std::to_string(w);
    }
    const int64_t allowed = std::max<int64_t>(2, static_cast<int64_t>(got.size()) / 1000);
    if (bad == 0 && flips <= allowed) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": " << bad << " of " << got.size() << " differ, " << flips
                                         << " dtype-rounding flips (allowed " << allowed << ")" << first;
}

// 8-bit codes: equal, except rare +-1 differences at rounding boundaries.
inline ::testing::AssertionResult codes_close(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                                       const std::string& what) {
    int64_t off_by_one = 0, bad = 0;
    std::string first;
    for (size_t i = 0; i < got.size(); ++i) {
        const int diff = std::abs(int{got[i]} - int{want[i]});
        if (diff == 0) continue;
        const int64_t listed = off_by_one + bad;
        if (diff == 1) {
            ++off_by_one;
        } else {
            ++bad;
        }
        if (listed < 6) {
            first += "\n  [" + std::to_string(i) + "] got " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
        }
    }
    const int64_t allowed = std::max<int64_t>(2, static_cast<int64_t>(got.size()) / 1000);
    if (bad == 0 && off_by_one <= allowed) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": " << bad << " codes differ by more than 1, " << off_by_one
                                         << " by 1 (allowed " << allowed << ")" << first;
}

// The largest |v| of finite values (0 for none).
inline float max_magnitude(const std::vector<float>& values) {
    float largest = 0.0f;
    for (float v : values) largest = std::isfinite(v) ? std::max(largest, std::fabs(v)) : largest;
    return largest;
}

// After one step from `before`. The parameter's tolerance is mostly relative to the
// step: the device's __powf makes the bias corrections (1 - beta^t, a cancellation)
// differ from the host's by up to ~1e-4 relative at small t.
inline void expect_tensors_close(const HostTensor& got, const HostTensor& want, const HostTensor& before, bnb_dtype dtype,
                          bool blockwise, const std::string& where) {
    float largest_step = 0.0f;
    for (size_t i = 0; i < want.p.size(); ++i) {
        const float step = std::fabs(want.p[i] - before.p[i]);
        if (std::isfinite(step)) largest_step = std::max(largest_step, step);
    }
    const float p_abs = 1e-7f * max_magnitude(want.p) + 5e-4f * largest_step;
    EXPECT_TRUE(values_close(got.p, want.p, 1e-5f, p_abs, dtype, where + " p"));
    if (blockwise) {
        EXPECT_TRUE(codes_close(got.c1, want.c1, where + " state1"));
        EXPECT_TRUE(codes_close(got.c2, want.c2, where + " state2"));
        EXPECT_TRUE(values_close(got.absmax1, want.absmax1, 1e-5f, 0.0f, BNB_DTYPE_FLOAT32, where + " absmax1"));
        EXPECT_TRUE(values_close(got.absmax2, want.absmax2, 1e-5f, 0.0f, BNB_DTYPE_FLOAT32, where + " absmax2"));
    } else {
        EXPECT_TRUE(values_close(got.s1, want.s1, 1e-5f, 1e-6f * max_magnitude(want.s1), BNB_DTYPE_FLOAT32,
                                 where + " state1"));
        EXPECT_TRUE(values_close(got.s2, want.s2, 1e-5f, 1e-6f * max_magnitude(want.s2), BNB_DTYPE_FLOAT32,
                                 where + " state2"));
    }
}

struct GoldenOptimizer {
    const char* name;
    bnb_optimizer optimizer;
    bool blockwise;
    bnb_optimizer_hparams hparams;  // the class defaults (formats.md 8.2), step filled per step
};

// The classes' defaults, except where the case does not record the lr its producer
// passed: RMSprop8bit's first step moves every element by 10 lr (lr = 1e-3, not the
// default 1e-2) and SGD8bit's by lr * |g| (lr = 1e-2, momentum 0.9).
inline const GoldenOptimizer* golden_optimizer(const std::string& name) {
    static const GoldenOptimizer known[] = {
        {"Adam8bit", BNB_OPTIMIZER_ADAM, true, {0.9f, 0.999f, 0.0f, 0.0f, 1e-8f, 0.0f, 1e-3f, 1.0f, 0.0f, 1, 0}},
        {"AdamW8bit", BNB_OPTIMIZER_ADAM, true, {0.9f, 0.999f, 0.0f, 0.0f, 1e-8f, 1e-2f, 1e-3f, 1.0f, 0.0f, 1, 0}},
        {"PagedAdamW8bit", BNB_OPTIMIZER_ADAM, true, {0.9f, 0.999f, 0.0f, 0.0f, 1e-8f, 1e-2f, 1e-3f, 1.0f, 0.0f, 1, 0}},
        {"Lion8bit", BNB_OPTIMIZER_LION, true, {0.9f, 0.99f, 0.0f, 0.0f, 0.0f, 0.0f, 1e-4f, 1.0f, 0.0f, 1, 0}},
        {"SGD8bit_momentum", BNB_OPTIMIZER_MOMENTUM, true, {0.9f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1e-2f, 1.0f, 0.0f, 1, 0}},
        {"RMSprop8bit", BNB_OPTIMIZER_RMSPROP, true, {0.99f, 0.0f, 0.0f, 0.0f, 1e-8f, 0.0f, 1e-3f, 1.0f, 0.0f, 1, 0}},
        {"AdEMAMix8bit", BNB_OPTIMIZER_ADEMAMIX, true,
         {0.9f, 0.999f, 0.9999f, 5.0f, 1e-8f, 1e-2f, 1e-3f, 1.0f, 0.0f, 1, 0}},
        {"Adam32bit", BNB_OPTIMIZER_ADAM, false, {0.9f, 0.999f, 0.0f, 0.0f, 1e-8f, 0.0f, 1e-3f, 1.0f, 0.0f, 1, 0}},
    };
    for (const GoldenOptimizer& entry : known) {
        if (name == entry.name) return &entry;
    }
    return nullptr;
}


// Upstream's tensor of the case after `step` steps (0: the initial parameter and
// zero states), with the gradient of the next step when the case has it.
inline HostTensor golden_optimizer_state(const GoldenCase& golden, const GoldenOptimizer& setup, int step) {
    const auto floats = [&](const std::string& role) {
        const TensorView& view = golden.tensor(role);
        return decode(view.data, static_cast<size_t>(view.numel()), BNB_DTYPE_FLOAT32);
    };
    const auto bytes = [&](const std::string& role) {
        const TensorView& view = golden.tensor(role);
        return std::vector<uint8_t>(view.data, view.data + view.bytes);
    };
    HostTensor t = zero_tensor(golden.tensor("param0").numel(), setup.optimizer, setup.blockwise);
    t.p = floats("param" + std::to_string(step));
    if (golden.has("grad" + std::to_string(step))) t.g = floats("grad" + std::to_string(step));
    if (step == 0) return t;
    const std::string prefix = "state" + std::to_string(step) + ".";
    const bool has_state2 = two_state(setup.optimizer);
    if (setup.blockwise) {
        t.c1 = bytes(prefix + "state1");
        t.absmax1 = floats(prefix + "absmax1");
        if (has_state2) {
            t.c2 = bytes(prefix + "state2");
            t.absmax2 = floats(prefix + "absmax2");
        }
    } else {
        t.s1 = floats(prefix + "state1");
        if (has_state2) t.s2 = floats(prefix + "state2");
    }
    return t;
}

// A step from `before` against upstream's: codes as upstream's but for rare +-1,
// absmax within 1e-6, the parameter and 32-bit states within 1e-5 relative
// (formats.md 8.0; states also 1e-6 of their largest). The parameter may also differ by `step_fraction` of the
// largest step: the host reference's exact bias corrections against upstream's
// __powf (about 1e-4 relative at small steps; 0 for a CUDA backend).
inline void expect_golden_step(const HostTensor& got, const HostTensor& want, const HostTensor& before,
                               const GoldenOptimizer& setup, float step_fraction) {
    float largest_step = 0.0f;
    for (size_t i = 0; i < want.p.size(); ++i) largest_step = std::max(largest_step, std::fabs(want.p[i] - before.p[i]));
    EXPECT_TRUE(values_close(got.p, want.p, 1e-5f, step_fraction * largest_step, BNB_DTYPE_FLOAT32, "p"));
    if (setup.blockwise) {
        EXPECT_TRUE(codes_close(got.c1, want.c1, "state1"));
        EXPECT_TRUE(codes_close(got.c2, want.c2, "state2"));
        EXPECT_TRUE(values_close(got.absmax1, want.absmax1, 1e-6f, 0.0f, BNB_DTYPE_FLOAT32, "absmax1"));
        EXPECT_TRUE(values_close(got.absmax2, want.absmax2, 1e-6f, 0.0f, BNB_DTYPE_FLOAT32, "absmax2"));
    } else {
        // States that cancel to near 0 keep an absolute floor (FMA contraction).
        EXPECT_TRUE(values_close(got.s1, want.s1, 1e-5f, 1e-6f * max_magnitude(want.s1), BNB_DTYPE_FLOAT32, "state1"));
        EXPECT_TRUE(values_close(got.s2, want.s2, 1e-5f, 1e-6f * max_magnitude(want.s2), BNB_DTYPE_FLOAT32, "state2"));
    }
}

}  // namespace bnb_test
