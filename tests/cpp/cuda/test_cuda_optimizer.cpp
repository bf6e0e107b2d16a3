// The optimizer updates and paged memory on a CUDA device through the C ABI alone.
//
// Every optimizer x dtype x state format against a host reference written from
// formats.md sections 6 and 7, step by step (each step's reference starts from the
// device's previous state, so that an allowed rounding difference does not grow
// over the steps): odd sizes, tail blocks, n < 256, a block of zero gradients, many
// tensors in one call. Upstream's golden trajectories (3 steps of its optimizer
// classes, each step from upstream's previous state). Then: a list gives the bytes of one call per tensor (also
// past the kernel-parameter table, 1000 tensors), unaligned pointers give the bytes
// of aligned ones, update-norm clipping, skip_zeros, NaN and inf gradients, a CUDA
// graph of a step, paged memory, and agreement with the CPU backend when it has the
// optimizer ops.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "cuda/device_buffer.h"
#include "support/abi_assertions.h"
#include "support/float16.h"
#include "support/golden.h"
#include "support/golden_params.h"

using namespace bnb_test;

namespace {

constexpr bnb_device kCuda = {BNB_DEVICE_CUDA, 0};
constexpr int64_t kBlock = 256;

// ---- the rules of formats.md, on the host ---------------------------------------------------

enum class Rule { kAdam, kMomentum, kRmsprop, kAdagrad, kLion, kAdemamix };

Rule rule_of(bnb_optimizer optimizer) {
    switch (optimizer) {
        case BNB_OPTIMIZER_ADAM:
        case BNB_OPTIMIZER_LAMB: return Rule::kAdam;
        case BNB_OPTIMIZER_MOMENTUM:
        case BNB_OPTIMIZER_LARS: return Rule::kMomentum;
        case BNB_OPTIMIZER_RMSPROP: return Rule::kRmsprop;
        case BNB_OPTIMIZER_ADAGRAD: return Rule::kAdagrad;
        case BNB_OPTIMIZER_LION: return Rule::kLion;
        case BNB_OPTIMIZER_ADEMAMIX: return Rule::kAdemamix;
    }
    return Rule::kAdam;
}

bool two_state(bnb_optimizer optimizer) {
    return rule_of(optimizer) == Rule::kAdam || rule_of(optimizer) == Rule::kAdemamix;
}
int64_t state1_factor(bnb_optimizer optimizer) { return optimizer == BNB_OPTIMIZER_ADEMAMIX ? 2 : 1; }
// The rules whose 32-bit update is scaled by the clipped update norm.
bool clips(bnb_optimizer optimizer) {
    const Rule rule = rule_of(optimizer);
    return rule == Rule::kAdam || rule == Rule::kMomentum || rule == Rule::kRmsprop;
}

size_t element_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

float round_to(float value, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT16) return half_to_float(float_to_half(value));
    if (dtype == BNB_DTYPE_BFLOAT16) return std::isnan(value) ? value : bf16_to_float(float_to_bf16(value));
    return value;
}

// One ulp of `dtype` at |value| (float32: 0, the tolerance covers it).
float dtype_ulp(float value, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT32) return 0.0f;
    int exponent = 0;
    std::frexp(std::fabs(value), &exponent);
    const int mantissa_bits = dtype == BNB_DTYPE_FLOAT16 ? 11 : 8;
    return std::ldexp(1.0f, std::max(exponent - mantissa_bits, dtype == BNB_DTYPE_FLOAT16 ? -24 : -133));
}

float sign_of(float value) { return static_cast<float>((0.0f < value) - (value < 0.0f)); }

// The code search of formats.md section 6.0 (upstream's descent with start values
// -1 or 0 below and 1 above, no end substitution), written from the description.
uint8_t search_code(const std::vector<float>& code, float x, bool is_signed) {
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

uint8_t requantize_signed(const std::vector<float>& qmap1, float v, float absmax) {
    const uint8_t code = search_code(qmap1, v / absmax, true);
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

HostTensor zero_tensor(int64_t n, bnb_optimizer optimizer, bool blockwise) {
    HostTensor t;
    t.n = n;
    t.g.assign(static_cast<size_t>(n), 0.0f);
    t.p.assign(static_cast<size_t>(n), 0.0f);
    const size_t states = static_cast<size_t>(n * state1_factor(optimizer));
    const size_t blocks = static_cast<size_t>((n + kBlock - 1) / kBlock);
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

Corrections corrections(const bnb_optimizer_hparams& h) {
    const float step = static_cast<float>(h.step);
    const float c1 = 1.0f - std::pow(h.beta1, step);
    const float c2 = std::sqrt(1.0f - std::pow(h.beta2, step));
    return {c1, c2, -h.lr * c2 / c1};
}

void reference_32bit(bnb_optimizer optimizer, bnb_dtype dtype, const bnb_optimizer_hparams& h, HostTensor& t) {
    const Rule rule = rule_of(optimizer);
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
            if (rule == Rule::kAdam) {
                const float m = t.s1[i] * h.beta1 + (1.0f - h.beta1) * g;
                const float v = t.s2[i] * h.beta2 + (1.0f - h.beta2) * g * g;
                u = (m / norm_c1) / (std::sqrt(v / norm_c2) + h.eps);
            } else if (rule == Rule::kMomentum) {
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
        if (rule == Rule::kAdemamix) {
            float& m2 = t.s1[n + i];
            float& s2 = t.s2[i];
            s1 = s1 * h.beta1 + (1.0f - h.beta1) * g;
            m2 = m2 * h.beta3 + (1.0f - h.beta3) * g;
            s2 = s2 * h.beta2 + (1.0f - h.beta2) * g * g;
            p = P(p - h.lr * ((s1 / c.correction1 + h.alpha * m2) / (std::sqrt(s2) / c.correction2 + h.eps)));
            if (h.weight_decay > 0.0f) p = P(p * (1.0f - h.lr * h.weight_decay));
        } else if (rule == Rule::kAdam) {
            if (h.skip_zeros && g == 0.0f) continue;
            float& s2 = t.s2[i];
            s1 = s1 * h.beta1 + (1.0f - h.beta1) * g;
            s2 = s2 * h.beta2 + (1.0f - h.beta2) * g * g;
            p = P(p + scale * c.step_size * (s1 / (std::sqrt(s2) + h.eps * c.correction2)));
            if (h.weight_decay > 0.0f) p = P(p * (1.0f - h.lr * h.weight_decay));
        } else {
            if (h.weight_decay > 0.0f && rule != Rule::kLion) g = P(g + p * h.weight_decay);
            if (h.skip_zeros && g == 0.0f) continue;
            if (rule == Rule::kMomentum) {
                s1 = h.step == 1 ? g : s1 * h.beta1 + g;
                p = P(p + scale * (-h.lr * s1));
            } else if (rule == Rule::kLion) {
                if (h.weight_decay > 0.0f) p = P(p * (1.0f - h.lr * h.weight_decay));
                p = P(p - h.lr * sign_of(s1 * h.beta1 + (1.0f - h.beta1) * g));
                s1 = s1 * h.beta2 + (1.0f - h.beta2) * g;
            } else if (rule == Rule::kRmsprop) {
                s1 = s1 * h.beta1 + (1.0f - h.beta1) * g * g;
                p = P(p - scale * (h.lr * (g / (std::sqrt(s1) + h.eps))));
            } else {
                s1 = s1 + g * g;
                p = P(p - h.lr * (g / (std::sqrt(s1) + h.eps)));
            }
        }
    }
}

void reference_8bit(bnb_optimizer optimizer, bnb_dtype dtype, const bnb_optimizer_hparams& h,
                    const std::vector<float>& qmap1, const std::vector<float>& qmap2, HostTensor& t) {
    const Rule rule = rule_of(optimizer);
    const bool has_s2 = two_state(optimizer);
    const Corrections c = corrections(h);
    const int64_t n = t.n;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const auto P = [&](float value) { return round_to(value, dtype); };
    for (int64_t b = 0; b < blocks; ++b) {
        std::array<float, kBlock> s1{}, s2{}, m2{}, p{}, lion_step{};
        std::array<bool, kBlock> updated{};
        float max1 = -3.4e38f, max2 = -3.4e38f, max3 = -3.4e38f;
        const float a1 = t.absmax1[static_cast<size_t>(b)];
        const float a2 = has_s2 ? t.absmax2[static_cast<size_t>(b)] : 0.0f;
        const float a3 = rule == Rule::kAdemamix ? t.absmax1[static_cast<size_t>(blocks + b)] : 0.0f;
        for (int64_t lane = 0; lane < kBlock; ++lane) {
            const int64_t i = b * kBlock + lane;
            const bool valid = i < n;
            // Padding lanes: g = 0, p = 0, state1 code 128, state2 code 0.
            const float raw = valid ? t.g[static_cast<size_t>(i)] : 0.0f;
            float& pv = p[static_cast<size_t>(lane)];
            pv = valid ? t.p[static_cast<size_t>(i)] : 0.0f;
            const uint8_t c1 = valid ? t.c1[static_cast<size_t>(i)] : 128;
            float& v1 = s1[static_cast<size_t>(lane)];
            if (has_s2) {
                const uint8_t c2 = valid ? t.c2[static_cast<size_t>(i)] : 0;
                const uint8_t c3 = rule == Rule::kAdemamix && valid ? t.c1[static_cast<size_t>(n + i)] : 128;
                updated[static_cast<size_t>(lane)] = std::isfinite(raw);
                float& v2 = s2[static_cast<size_t>(lane)];
                float& v3 = m2[static_cast<size_t>(lane)];
                if (std::isfinite(raw)) {
                    const float g = raw * h.gnorm_scale;
                    v2 = qmap2[c2] * a2 * h.beta2 + (1.0f - h.beta2) * g * g;
                    v1 = qmap1[c1] * a1 * h.beta1 + (1.0f - h.beta1) * g;
                    if (rule == Rule::kAdemamix) v3 = qmap1[c3] * a3 * h.beta3 + (1.0f - h.beta3) * g;
                }
                max2 = std::fmax(max2, std::fabs(v2));
                if (rule == Rule::kAdemamix) max3 = std::fmax(max3, std::fabs(v3));
            } else {
                const bool update = !h.skip_zeros || raw != 0.0f;
                updated[static_cast<size_t>(lane)] = update;
                v1 = qmap1[c1] * a1;
                if (update) {
                    float g = raw * h.gnorm_scale;
                    if (h.weight_decay > 0.0f) {
                        if (rule == Rule::kLion) {
                            pv = P(pv * (1.0f - h.lr * h.weight_decay));
                        } else {
                            g += pv * h.weight_decay;
                        }
                    }
                    if (rule == Rule::kMomentum) {
                        v1 = h.step == 1 ? g : v1 * h.beta1 + g;
                    } else if (rule == Rule::kLion) {
                        lion_step[static_cast<size_t>(lane)] = P(h.lr * sign_of(v1 * h.beta1 + (1.0f - h.beta1) * g));
                        v1 = v1 * h.beta2 + (1.0f - h.beta2) * g;
                    } else if (rule == Rule::kRmsprop) {
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
        if (rule == Rule::kAdemamix) t.absmax1[static_cast<size_t>(blocks + b)] = max3;
        for (int64_t lane = 0; lane < kBlock && b * kBlock + lane < n; ++lane) {
            const size_t i = static_cast<size_t>(b * kBlock + lane);
            const size_t l = static_cast<size_t>(lane);
            float pv = p[l];
            if (updated[l]) {
                const float raw = t.g[i];
                if (rule == Rule::kAdemamix) {
                    pv = P(pv - h.lr * ((s1[l] / c.correction1 + h.alpha * m2[l]) /
                                        (std::sqrt(s2[l]) / c.correction2 + h.eps)));
                } else if (rule == Rule::kAdam) {
                    pv = P(pv + c.step_size * (s1[l] / (std::sqrt(s2[l]) + c.correction2 * h.eps)));
                } else if (rule == Rule::kMomentum) {
                    pv = P(pv - h.lr * s1[l]);
                } else if (rule == Rule::kLion) {
                    pv = P(pv - lion_step[l]);
                } else {
                    pv = P(pv - h.lr * (raw / (std::sqrt(s1[l]) + h.eps)));  // the raw gradient (upstream)
                }
                if (has_s2 && h.weight_decay > 0.0f) pv = P(pv * (1.0f - h.lr * h.weight_decay));
            }
            t.p[i] = pv;
            t.c1[i] = requantize_signed(qmap1, s1[l], max1);
            if (has_s2) t.c2[i] = search_code(qmap2, s2[l] / max2, false);
            if (rule == Rule::kAdemamix) t.c1[static_cast<size_t>(t.n) + i] = requantize_signed(qmap1, m2[l], max3);
        }
    }
}

// ---- tensors on the device (or in host memory for the CPU backend) ---------------------------

std::vector<uint8_t> encode(const std::vector<float>& values, bnb_dtype dtype) {
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

std::vector<float> decode(const uint8_t* bytes, size_t count, bnb_dtype dtype) {
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
std::vector<uint8_t> raw_bytes(const std::vector<V>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(V));
    if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
}

template <typename V>
std::vector<V> from_bytes(const std::vector<uint8_t>& bytes) {
    std::vector<V> values(bytes.size() / sizeof(V));
    if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
    return values;
}

// The buffers of one bnb_optimizer_tensor as bytes, in this order.
enum Part { kG, kP, kState1, kState2, kAbsmax1, kAbsmax2, kUnorm, kParts };
using TensorBytes = std::array<std::vector<uint8_t>, kParts>;

TensorBytes to_bytes(const HostTensor& t, bnb_dtype dtype, bool blockwise) {
    TensorBytes bytes;
    bytes[kG] = encode(t.g, dtype);
    bytes[kP] = encode(t.p, dtype);
    bytes[kState1] = blockwise ? t.c1 : raw_bytes(t.s1);
    bytes[kState2] = blockwise ? t.c2 : raw_bytes(t.s2);
    bytes[kAbsmax1] = raw_bytes(t.absmax1);
    bytes[kAbsmax2] = raw_bytes(t.absmax2);
    bytes[kUnorm] = raw_bytes(std::vector<float>{t.unorm});
    return bytes;
}

void from_bytes(const TensorBytes& bytes, bnb_dtype dtype, bool blockwise, HostTensor& t) {
    t.g = decode(bytes[kG].data(), static_cast<size_t>(t.n), dtype);
    t.p = decode(bytes[kP].data(), static_cast<size_t>(t.n), dtype);
    if (blockwise) {
        t.c1 = bytes[kState1];
        t.c2 = bytes[kState2];
    } else {
        t.s1 = from_bytes<float>(bytes[kState1]);
        t.s2 = from_bytes<float>(bytes[kState2]);
    }
    t.absmax1 = from_bytes<float>(bytes[kAbsmax1]);
    t.absmax2 = from_bytes<float>(bytes[kAbsmax2]);
    t.unorm = from_bytes<float>(bytes[kUnorm])[0];
}

// The parts of one tensor in device memory, each `offset` elements past a
// cudaMalloc'd base (offset 1: no part is aligned for vector access).
class DeviceTensor {
public:
    DeviceTensor(const TensorBytes& bytes, const std::array<size_t, kParts>& itemsize, int offset) {
        for (int part = 0; part < kParts; ++part) {
            sizes_[part] = bytes[part].size();
            shift_[part] = static_cast<size_t>(offset) * itemsize[part];
            buffers_[part] = std::make_unique<DeviceBuffer>(sizes_[part] + shift_[part] + 16);
        }
        upload(bytes);
    }
    void upload(const TensorBytes& bytes) {
        for (int part = 0; part < kParts; ++part) {
            if (sizes_[part] == 0) continue;
            EXPECT_TRUE(cuda_ok(cudaMemcpy(at(part), bytes[part].data(), sizes_[part], cudaMemcpyHostToDevice)));
        }
    }
    TensorBytes download() const {
        TensorBytes bytes;
        for (int part = 0; part < kParts; ++part) {
            bytes[part].resize(sizes_[part]);
            if (sizes_[part] == 0) continue;
            EXPECT_TRUE(cuda_ok(cudaMemcpy(bytes[part].data(), at(part), sizes_[part], cudaMemcpyDeviceToHost)));
        }
        return bytes;
    }
    uint8_t* at(int part) const { return buffers_[part]->get<uint8_t>() + shift_[part]; }

private:
    std::array<std::unique_ptr<DeviceBuffer>, kParts> buffers_;
    std::array<size_t, kParts> sizes_{};
    std::array<size_t, kParts> shift_{};
};

bnb_optimizer_tensor view(int64_t n, float param_norm, const std::array<uint8_t*, kParts>& at) {
    bnb_optimizer_tensor t{};
    t.n = n;
    t.g = at[kG];
    t.p = at[kP];
    t.state1 = at[kState1];
    t.state2 = at[kState2];
    t.absmax1 = reinterpret_cast<float*>(at[kAbsmax1]);
    t.absmax2 = reinterpret_cast<float*>(at[kAbsmax2]);
    t.unorm_vec = reinterpret_cast<float*>(at[kUnorm]);
    t.param_norm = param_norm;
    return t;
}

std::vector<float> codebook(bnb_codebook which) {
    std::vector<float> values(static_cast<size_t>(bnb_codebook_size(which)));
    EXPECT_TRUE(succeeded(bnb_codebook_copy(which, values.data(), static_cast<int64_t>(values.size()))));
    return values;
}

// The case's map of `role` (upstream's qmap), else the library's.
std::vector<float> qmap_or_default(const GoldenCase& golden, const std::string& role, bnb_codebook fallback) {
    if (!golden.has(role)) return codebook(fallback);
    const TensorView& view = golden.tensor(role);
    return decode(view.data, static_cast<size_t>(view.numel()), BNB_DTYPE_FLOAT32);
}

// ---- one problem: a list of tensors, stepped on the device ---------------------------------

// Weight decay 2^-7: p * wd is exact, so the coupled decay g + p * wd rounds once
// whether or not the compiler fuses it (upstream's kernels fuse it for some
// elements only, formats.md 0), and fp16/bf16 gradients round identically.
constexpr float kWeightDecay = 0.0078125f;

bnb_optimizer_hparams preset(bnb_optimizer optimizer, bnb_dtype dtype) {
    bnb_optimizer_hparams h{};
    h.gnorm_scale = 1.0f;
    h.step = 1;
    // bf16 parameters need a step above their resolution to move at all.
    const float lr_scale = dtype == BNB_DTYPE_BFLOAT16 ? 10.0f : 1.0f;
    switch (rule_of(optimizer)) {
        case Rule::kAdam: h.beta1 = 0.9f, h.beta2 = 0.999f, h.eps = 1e-8f, h.weight_decay = kWeightDecay, h.lr = 1e-3f; break;
        case Rule::kAdemamix:
            h.beta1 = 0.9f, h.beta2 = 0.999f, h.beta3 = 0.9999f, h.alpha = 5.0f, h.eps = 1e-8f;
            h.weight_decay = kWeightDecay, h.lr = 1e-3f;
            break;
        case Rule::kMomentum: h.beta1 = 0.9f, h.weight_decay = kWeightDecay, h.lr = 1e-2f; break;
        case Rule::kRmsprop: h.beta1 = 0.99f, h.eps = 1e-8f, h.weight_decay = kWeightDecay, h.lr = 1e-3f; break;
        case Rule::kAdagrad: h.eps = 1e-10f, h.weight_decay = kWeightDecay, h.lr = 1e-2f; break;
        case Rule::kLion: h.beta1 = 0.9f, h.beta2 = 0.99f, h.weight_decay = kWeightDecay, h.lr = 1e-4f; break;
    }
    h.lr *= lr_scale;
    return h;
}

struct Problem {
    bnb_optimizer optimizer;
    bnb_dtype dtype;
    bool blockwise;
    bnb_optimizer_hparams hparams;
    std::vector<int64_t> sizes;
    float zero_fraction = 0.0f;  // of gradient elements set to 0 (skip_zeros)
    int offset = 0;              // elements each device pointer is shifted by
    bool expect_clipping = false;  // the update norm exceeds its bound on every step
};

// Every tensor of the problem on the host and on the device.
class ProblemState {
public:
    ProblemState(const Problem& problem, uint32_t seed) : problem_(problem), rng_(seed) {
        for (int64_t n : problem.sizes) {
            HostTensor t = zero_tensor(n, problem.optimizer, problem.blockwise);
            std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
            for (float& p : t.p) p = round_to(uniform(rng_), problem.dtype);
            host_.push_back(std::move(t));
        }
        for (const HostTensor& t : host_) {
            device_.push_back(std::make_unique<DeviceTensor>(to_bytes(t, problem.dtype, problem.blockwise),
                                                             itemsizes(), problem.offset));
        }
    }

    std::array<size_t, kParts> itemsizes() const {
        const size_t state = problem_.blockwise ? 1 : 4;
        return {element_size(problem_.dtype), element_size(problem_.dtype), state, state, 4, 4, 4};
    }

    // New gradients (normal, sd 0.1; elements [256, 512) of tensors that have them
    // stay 0, a zero block; zero_fraction of the rest 0) and ||p|| for clipping.
    void next_gradients() {
        std::normal_distribution<float> normal(0.0f, 0.1f);
        std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
        for (size_t k = 0; k < host_.size(); ++k) {
            HostTensor& t = host_[k];
            for (int64_t i = 0; i < t.n; ++i) {
                const bool zero_block = t.n >= 2 * kBlock && i >= kBlock && i < 2 * kBlock;
                const bool zero = zero_block || uniform(rng_) < problem_.zero_fraction;
                t.g[static_cast<size_t>(i)] = zero ? 0.0f : round_to(normal(rng_), problem_.dtype);
            }
            double norm = 0.0;
            for (float p : t.p) norm += static_cast<double>(p) * p;
            t.param_norm = static_cast<float>(std::sqrt(norm));
        }
        upload();
    }

    // The host values (gradients, parameters, states) onto the device.
    void upload() {
        for (size_t k = 0; k < host_.size(); ++k) device_[k]->upload(to_bytes(host_[k], problem_.dtype, problem_.blockwise));
    }

    std::vector<bnb_optimizer_tensor> views() const {
        std::vector<bnb_optimizer_tensor> list;
        for (size_t k = 0; k < host_.size(); ++k) {
            std::array<uint8_t*, kParts> at{};
            for (int part = 0; part < kParts; ++part) at[part] = device_[k]->at(part);
            list.push_back(view(host_[k].n, host_[k].param_norm, at));
        }
        return list;
    }

    // The device's tensors after the last call, as host values.
    std::vector<HostTensor> device_values() const {
        std::vector<HostTensor> values = host_;
        for (size_t k = 0; k < host_.size(); ++k) {
            from_bytes(device_[k]->download(), problem_.dtype, problem_.blockwise, values[k]);
        }
        return values;
    }

    std::vector<TensorBytes> device_bytes() const {
        std::vector<TensorBytes> bytes;
        for (const auto& d : device_) bytes.push_back(d->download());
        return bytes;
    }

    std::vector<HostTensor>& host() { return host_; }
    const Problem& problem() const { return problem_; }

private:
    Problem problem_;
    std::mt19937 rng_;
    std::vector<HostTensor> host_;
    std::vector<std::unique_ptr<DeviceTensor>> device_;
};

bnb_status update(bnb_device device, const Problem& problem, const bnb_optimizer_hparams& h,
                  const bnb_optimizer_tensor* tensors, int64_t count, const float* qmap1, const float* qmap2,
                  void* stream = nullptr) {
    if (problem.blockwise) {
        return bnb_optimizer_update_8bit_blockwise(device, stream, problem.optimizer, problem.dtype, tensors, count,
                                                   qmap1, qmap2, &h);
    }
    return bnb_optimizer_update_32bit(device, stream, problem.optimizer, problem.dtype, tensors, count, &h);
}

// ---- comparisons --------------------------------------------------------------------------

// got matches want: within rel * |want| + abs, or (fp16/bf16 values) one ulp of
// the dtype for at most max(2, 0.1%) of the elements: a float32 difference of one
// ulp may round the other way.
::testing::AssertionResult values_close(const std::vector<float>& got, const std::vector<float>& want, float rel,
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
::testing::AssertionResult codes_close(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                                       const std::string& what) {
    int64_t off_by_one = 0, bad = 0;
    std::string first;
    for (size_t i = 0; i < got.size(); ++i) {
        const int diff = std::abs(int{got[i]} - int{want[i]});
        if (diff == 0) continue;
        if (diff == 1) {
            ++off_by_one;
            continue;
        }
        if (++bad <= 3) {
            first += "\n  [" + std::to_string(i) + "] got " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
        }
    }
    const int64_t allowed = std::max<int64_t>(2, static_cast<int64_t>(got.size()) / 1000);
    if (bad == 0 && off_by_one <= allowed) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": " << bad << " codes differ by more than 1, " << off_by_one
                                         << " by 1 (allowed " << allowed << ")" << first;
}

// The largest |v| of finite values (0 for none).
float max_magnitude(const std::vector<float>& values) {
    float largest = 0.0f;
    for (float v : values) largest = std::isfinite(v) ? std::max(largest, std::fabs(v)) : largest;
    return largest;
}

// After one step from `before`. The parameter's tolerance is mostly relative to the
// step: the device's __powf makes the bias corrections (1 - beta^t, a cancellation)
// differ from the host's by up to ~1e-4 relative at small t.
void expect_tensors_close(const HostTensor& got, const HostTensor& want, const HostTensor& before,
                          const Problem& problem, const std::string& where) {
    float largest_step = 0.0f;
    for (size_t i = 0; i < want.p.size(); ++i) {
        const float step = std::fabs(want.p[i] - before.p[i]);
        if (std::isfinite(step)) largest_step = std::max(largest_step, step);
    }
    const float p_abs = 1e-7f * max_magnitude(want.p) + 5e-4f * largest_step;
    EXPECT_TRUE(values_close(got.p, want.p, 1e-5f, p_abs, problem.dtype, where + " p"));
    if (problem.blockwise) {
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

void reference_step(const Problem& problem, const bnb_optimizer_hparams& h, const std::vector<float>& qmap1,
                    const std::vector<float>& qmap2, HostTensor& t) {
    if (problem.blockwise) {
        reference_8bit(problem.optimizer, problem.dtype, h, qmap1, qmap2, t);
    } else {
        reference_32bit(problem.optimizer, problem.dtype, h, t);
    }
}

std::string name_of(bnb_optimizer optimizer) {
    static const char* const names[] = {"adam", "momentum", "rmsprop", "adagrad", "lion", "lamb", "lars", "ademamix"};
    return names[optimizer];
}

std::string name_of(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? "fp32" : dtype == BNB_DTYPE_FLOAT16 ? "fp16" : "bf16";
}

class CudaOptimizerTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
        if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
        qmap1_host_ = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
        qmap2_host_ = codebook(BNB_CODEBOOK_DYNAMIC_UNSIGNED);
        qmap1_ = std::make_unique<DeviceBuffer>(qmap1_host_.data(), qmap1_host_.size() * 4);
        qmap2_ = std::make_unique<DeviceBuffer>(qmap2_host_.data(), qmap2_host_.size() * 4);
    }

    const float* qmap1() const { return qmap1_->get<float>(); }
    const float* qmap2() const { return qmap2_->get<float>(); }

    // `steps` steps of the whole list in one call each, every step compared with
    // the reference run from the device's previous state.
    void check_against_reference(const Problem& problem, int steps) {
        ProblemState state(problem, 1234);
        bnb_optimizer_hparams h = problem.hparams;
        for (int step = 1; step <= steps; ++step) {
            h.step = step;
            state.next_gradients();
            std::vector<HostTensor> expected = state.host();
            for (HostTensor& t : expected) reference_step(problem, h, qmap1_host_, qmap2_host_, t);
            const std::vector<bnb_optimizer_tensor> list = state.views();
            ASSERT_TRUE(succeeded(update(kCuda, problem, h, list.data(), static_cast<int64_t>(list.size()), qmap1(),
                                         qmap2())));
            ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
            const std::vector<HostTensor> got = state.device_values();
            for (size_t k = 0; k < got.size(); ++k) {
                const std::string where = "step " + std::to_string(step) + " tensor " + std::to_string(k) + " (n " +
                                          std::to_string(got[k].n) + ")";
                expect_tensors_close(got[k], expected[k], state.host()[k], problem, where);
                if (!problem.blockwise && h.max_unorm > 0.0f && clips(problem.optimizer)) {
                    EXPECT_TRUE(values_close({got[k].unorm}, {expected[k].unorm}, 1e-3f, 0.0f, BNB_DTYPE_FLOAT32,
                                             where + " unorm_vec"));
                    if (problem.expect_clipping) {
                        EXPECT_GT(std::sqrt(expected[k].unorm), h.max_unorm * expected[k].param_norm) << where;
                    }
                }
            }
            if (HasFailure()) return;
            state.host() = got;
        }
    }

    // The bytes after `steps` steps of the list in one call and of one call per
    // tensor (two problems of the same seed).
    void expect_list_equals_single_calls(const Problem& problem, int steps) {
        ProblemState listed(problem, 99);
        ProblemState single(problem, 99);
        bnb_optimizer_hparams h = problem.hparams;
        for (int step = 1; step <= steps; ++step) {
            h.step = step;
            listed.next_gradients();
            single.next_gradients();
            const std::vector<bnb_optimizer_tensor> list = listed.views();
            ASSERT_TRUE(succeeded(update(kCuda, problem, h, list.data(), static_cast<int64_t>(list.size()), qmap1(),
                                         qmap2())));
            for (const bnb_optimizer_tensor& t : single.views()) {
                ASSERT_TRUE(succeeded(update(kCuda, problem, h, &t, 1, qmap1(), qmap2())));
            }
            ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
            // Carry the device's values forward as the next gradients' host base.
            listed.host() = listed.device_values();
            single.host() = single.device_values();
        }
        const std::vector<TensorBytes> a = listed.device_bytes();
        const std::vector<TensorBytes> b = single.device_bytes();
        for (size_t k = 0; k < a.size(); ++k) {
            for (int part = 0; part < kParts; ++part) {
                EXPECT_TRUE(bits_equal(a[k][part].data(), b[k][part].data(), static_cast<int64_t>(a[k][part].size()), 1))
                    << "tensor " << k << " part " << part;
            }
        }
    }

    std::vector<float> qmap1_host_, qmap2_host_;
    std::unique_ptr<DeviceBuffer> qmap1_, qmap2_;
};

// Odd sizes, tail blocks, n < 256, a zero-gradient block (n >= 512), an empty tensor.
const std::vector<int64_t> kSizes = {1, 3, 255, 256, 257, 0, 1000, 4099, 70001};

using ReferenceParam = std::tuple<bnb_optimizer, bnb_dtype, bool>;

class CudaOptimizerReference : public CudaOptimizerTest, public ::testing::WithParamInterface<ReferenceParam> {};

TEST_P(CudaOptimizerReference, MatchesHostReferenceOverSteps) {
    const auto [optimizer, dtype, blockwise] = GetParam();
    check_against_reference({optimizer, dtype, blockwise, preset(optimizer, dtype), kSizes}, 4);
}

TEST_P(CudaOptimizerReference, UnalignedPointersGiveAlignedBytes) {
    const auto [optimizer, dtype, blockwise] = GetParam();
    Problem problem{optimizer, dtype, blockwise, preset(optimizer, dtype), {5, 300, 1029}};
    ProblemState aligned(problem, 7);
    problem.offset = 1;
    ProblemState shifted(problem, 7);
    bnb_optimizer_hparams h = problem.hparams;
    for (int step = 1; step <= 2; ++step) {
        h.step = step;
        aligned.next_gradients();
        shifted.next_gradients();
        for (ProblemState* state : {&aligned, &shifted}) {
            const std::vector<bnb_optimizer_tensor> list = state->views();
            ASSERT_TRUE(succeeded(update(kCuda, problem, h, list.data(), static_cast<int64_t>(list.size()), qmap1(),
                                         qmap2())));
            ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
            state->host() = state->device_values();
        }
    }
    const std::vector<TensorBytes> a = aligned.device_bytes();
    const std::vector<TensorBytes> b = shifted.device_bytes();
    for (size_t k = 0; k < a.size(); ++k) {
        for (int part = 0; part < kParts; ++part) {
            EXPECT_TRUE(bits_equal(a[k][part].data(), b[k][part].data(), static_cast<int64_t>(a[k][part].size()), 1))
                << "tensor " << k << " part " << part;
        }
    }
}

// The same inputs through the CPU backend, when it has the op: the same rules
// (formats.md), so the same tolerances as against the reference.
TEST_P(CudaOptimizerReference, AgreesWithCpuBackend) {
    const auto [optimizer, dtype, blockwise] = GetParam();
    const char* op = blockwise ? "optimizer_update_8bit_blockwise" : "optimizer_update_32bit";
    if (!bnb_backend_supports(BNB_DEVICE_CPU, op)) GTEST_SKIP() << "the CPU backend lacks " << op;
    const Problem problem{optimizer, dtype, blockwise, preset(optimizer, dtype), kSizes};
    ProblemState state(problem, 4321);
    bnb_optimizer_hparams h = problem.hparams;
    for (int step = 1; step <= 3; ++step) {
        h.step = step;
        state.next_gradients();
        // The CPU call updates host copies of the pre-step bytes.
        std::vector<TensorBytes> cpu_bytes;
        for (const HostTensor& t : state.host()) cpu_bytes.push_back(to_bytes(t, dtype, blockwise));
        std::vector<bnb_optimizer_tensor> cpu_list;
        for (size_t k = 0; k < cpu_bytes.size(); ++k) {
            std::array<uint8_t*, kParts> at{};
            for (int part = 0; part < kParts; ++part) at[part] = cpu_bytes[k][part].data();
            cpu_list.push_back(view(state.host()[k].n, state.host()[k].param_norm, at));
        }
        ASSERT_TRUE(succeeded(update(kCpu, problem, h, cpu_list.data(), static_cast<int64_t>(cpu_list.size()),
                                     qmap1_host_.data(), qmap2_host_.data())));
        const std::vector<bnb_optimizer_tensor> list = state.views();
        ASSERT_TRUE(succeeded(update(kCuda, problem, h, list.data(), static_cast<int64_t>(list.size()), qmap1(),
                                     qmap2())));
        ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
        const std::vector<HostTensor> got = state.device_values();
        for (size_t k = 0; k < got.size(); ++k) {
            HostTensor cpu = state.host()[k];
            from_bytes(cpu_bytes[k], dtype, blockwise, cpu);
            expect_tensors_close(got[k], cpu, state.host()[k], problem,
                                 "step " + std::to_string(step) + " tensor " + std::to_string(k));
        }
        if (HasFailure()) return;
        state.host() = got;
    }
}

std::string reference_name(const ::testing::TestParamInfo<ReferenceParam>& info) {
    const auto [optimizer, dtype, blockwise] = info.param;
    return name_of(optimizer) + "_" + name_of(dtype) + (blockwise ? "_8bit" : "_32bit");
}

INSTANTIATE_TEST_SUITE_P(
    EveryOptimizer, CudaOptimizerReference,
    ::testing::Combine(::testing::Values(BNB_OPTIMIZER_ADAM, BNB_OPTIMIZER_MOMENTUM, BNB_OPTIMIZER_RMSPROP,
                                         BNB_OPTIMIZER_ADAGRAD, BNB_OPTIMIZER_LION, BNB_OPTIMIZER_LAMB,
                                         BNB_OPTIMIZER_LARS, BNB_OPTIMIZER_ADEMAMIX),
                       ::testing::Values(BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16),
                       ::testing::Bool()),
    reference_name);

// ---- upstream's trajectories (golden_optim: 64 x 64 fp32 parameters, 3 steps) ------------------

struct GoldenOptimizer {
    const char* name;
    bnb_optimizer optimizer;
    bool blockwise;
    bnb_optimizer_hparams hparams;  // the class defaults (formats.md 8.2), step filled per step
};

// The classes' defaults, except where the case does not record the lr its producer
// passed: RMSprop8bit's first step moves every element by 10 lr (lr = 1e-3, not the
// default 1e-2) and SGD8bit's by lr * |g| (lr = 1e-2, momentum 0.9).
const GoldenOptimizer* golden_optimizer(const std::string& name) {
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

class CudaGoldenOptimizer : public GoldenCaseTest {
protected:
    void SetUp() override {
        if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
        if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
        GoldenCaseTest::SetUp();
    }
};

// Each step from upstream's state after the previous one (zeros before the first):
// 8-bit codes and absmax as upstream's (rare +-1 codes allowed), parameters and
// 32-bit states within 1e-5 relative (FMA contraction, formats.md 8.0).
TEST_P(CudaGoldenOptimizer, StepsMatchUpstream) {
    const GoldenCase& golden = GetParam();
    const GoldenOptimizer* setup = golden_optimizer(golden.name);
    if (setup == nullptr) GTEST_SKIP() << golden.name << ": hyper-parameters not recorded in the case";
    const int64_t n = golden.tensor("param0").numel();
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const bool has_s2 = two_state(setup->optimizer);
    const size_t state_bytes = static_cast<size_t>(n * state1_factor(setup->optimizer)) * (setup->blockwise ? 1 : 4);
    const size_t state2_bytes = has_s2 ? static_cast<size_t>(n) * (setup->blockwise ? 1 : 4) : 0;
    const size_t absmax1_bytes = setup->blockwise ? static_cast<size_t>(blocks * state1_factor(setup->optimizer)) * 4 : 0;
    const size_t absmax2_bytes = setup->blockwise && has_s2 ? static_cast<size_t>(blocks) * 4 : 0;
    DeviceBuffer g(static_cast<size_t>(n) * 4), p(static_cast<size_t>(n) * 4), state1(state_bytes),
        state2(state2_bytes), absmax1(absmax1_bytes), absmax2(absmax2_bytes);
    const auto upload = [](const DeviceBuffer& buffer, const void* host, size_t bytes) {
        if (bytes > 0) EXPECT_TRUE(cuda_ok(cudaMemcpy(buffer.get(), host, bytes, cudaMemcpyHostToDevice)));
    };
    const auto download = [](const DeviceBuffer& buffer, size_t bytes) {
        std::vector<uint8_t> host(bytes);
        if (bytes > 0) EXPECT_TRUE(cuda_ok(cudaMemcpy(host.data(), buffer.get(), bytes, cudaMemcpyDeviceToHost)));
        return host;
    };
    const std::vector<uint8_t> zeros(std::max({state_bytes, state2_bytes, absmax1_bytes}), 0);
    const DeviceBuffer qmap1(qmap_or_default(golden, "state1.qmap1", BNB_CODEBOOK_DYNAMIC_SIGNED).data(), 256 * 4);
    const DeviceBuffer qmap2(qmap_or_default(golden, "state1.qmap2", BNB_CODEBOOK_DYNAMIC_UNSIGNED).data(), 256 * 4);
    bnb_optimizer_tensor tensor{};
    tensor.n = n;
    tensor.g = g.get();
    tensor.p = p.get();
    tensor.state1 = state1.get();
    tensor.state2 = has_s2 ? state2.get() : nullptr;
    tensor.absmax1 = setup->blockwise ? absmax1.get<float>() : nullptr;
    tensor.absmax2 = setup->blockwise && has_s2 ? absmax2.get<float>() : nullptr;
    for (int step = 1; golden.has("param" + std::to_string(step)); ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const std::string before = "state" + std::to_string(step - 1) + ".";
        const std::string after = "state" + std::to_string(step) + ".";
        const auto state_of = [&](const std::string& prefix, const char* name) -> const void* {
            return step == 1 ? static_cast<const void*>(zeros.data()) : golden.tensor(prefix + name).data;
        };
        upload(g, golden.tensor("grad" + std::to_string(step - 1)).data, static_cast<size_t>(n) * 4);
        upload(p, golden.tensor("param" + std::to_string(step - 1)).data, static_cast<size_t>(n) * 4);
        upload(state1, state_of(before, "state1"), state_bytes);
        upload(state2, has_s2 ? state_of(before, "state2") : nullptr, state2_bytes);
        upload(absmax1, setup->blockwise ? state_of(before, "absmax1") : nullptr, absmax1_bytes);
        upload(absmax2, setup->blockwise && has_s2 ? state_of(before, "absmax2") : nullptr, absmax2_bytes);
        bnb_optimizer_hparams h = setup->hparams;
        h.step = step;
        const bnb_status status =
            setup->blockwise
                ? bnb_optimizer_update_8bit_blockwise(kCuda, nullptr, setup->optimizer, BNB_DTYPE_FLOAT32, &tensor, 1,
                                                      qmap1.get<float>(), qmap2.get<float>(), &h)
                : bnb_optimizer_update_32bit(kCuda, nullptr, setup->optimizer, BNB_DTYPE_FLOAT32, &tensor, 1, &h);
        ASSERT_TRUE(succeeded(status));
        ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
        const auto floats = [](const std::vector<uint8_t>& bytes) { return from_bytes<float>(bytes); };
        const auto golden_floats = [&](const std::string& role) {
            const TensorView& view = golden.tensor(role);
            return decode(view.data, static_cast<size_t>(view.numel()), BNB_DTYPE_FLOAT32);
        };
        EXPECT_TRUE(values_close(floats(download(p, static_cast<size_t>(n) * 4)),
                                 golden_floats("param" + std::to_string(step)), 1e-5f, 0.0f, BNB_DTYPE_FLOAT32, "p"));
        if (setup->blockwise) {
            const TensorView& codes1 = golden.tensor(after + "state1");
            EXPECT_TRUE(codes_close(download(state1, state_bytes),
                                    std::vector<uint8_t>(codes1.data, codes1.data + codes1.bytes), "state1"));
            EXPECT_TRUE(values_close(floats(download(absmax1, absmax1_bytes)), golden_floats(after + "absmax1"), 1e-6f,
                                     0.0f, BNB_DTYPE_FLOAT32, "absmax1"));
            if (has_s2) {
                const TensorView& codes2 = golden.tensor(after + "state2");
                EXPECT_TRUE(codes_close(download(state2, state2_bytes),
                                        std::vector<uint8_t>(codes2.data, codes2.data + codes2.bytes), "state2"));
                EXPECT_TRUE(values_close(floats(download(absmax2, absmax2_bytes)), golden_floats(after + "absmax2"),
                                         1e-6f, 0.0f, BNB_DTYPE_FLOAT32, "absmax2"));
            }
        } else {
            EXPECT_TRUE(values_close(floats(download(state1, state_bytes)), golden_floats(after + "state1"), 1e-5f, 0.0f,
                                     BNB_DTYPE_FLOAT32, "state1"));
            EXPECT_TRUE(values_close(floats(download(state2, state2_bytes)), golden_floats(after + "state2"), 1e-5f, 0.0f,
                                     BNB_DTYPE_FLOAT32, "state2"));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Upstream, CudaGoldenOptimizer, ::testing::ValuesIn(golden_cases_with_role("optim", "param0")),
                         golden_case_name);

// ---- lists ------------------------------------------------------------------------------------

TEST_F(CudaOptimizerTest, ListEqualsOneCallPerTensor) {
    const std::vector<Problem> problems = {
        {BNB_OPTIMIZER_ADAM, BNB_DTYPE_BFLOAT16, true, preset(BNB_OPTIMIZER_ADAM, BNB_DTYPE_BFLOAT16), kSizes},
        {BNB_OPTIMIZER_ADEMAMIX, BNB_DTYPE_FLOAT32, true, preset(BNB_OPTIMIZER_ADEMAMIX, BNB_DTYPE_FLOAT32), kSizes},
        {BNB_OPTIMIZER_LION, BNB_DTYPE_FLOAT16, true, preset(BNB_OPTIMIZER_LION, BNB_DTYPE_FLOAT16), kSizes},
        {BNB_OPTIMIZER_MOMENTUM, BNB_DTYPE_FLOAT16, false, preset(BNB_OPTIMIZER_MOMENTUM, BNB_DTYPE_FLOAT16), kSizes},
        {BNB_OPTIMIZER_ADEMAMIX, BNB_DTYPE_BFLOAT16, false, preset(BNB_OPTIMIZER_ADEMAMIX, BNB_DTYPE_BFLOAT16), kSizes},
    };
    for (const Problem& problem : problems) {
        SCOPED_TRACE(name_of(problem.optimizer) + " " + name_of(problem.dtype) + (problem.blockwise ? " 8-bit" : " 32-bit"));
        expect_list_equals_single_calls(problem, 3);
    }
}

// 1000 tensors exceed one launch's table (tens of tensors): several launches,
// the same bytes and the same values as the reference.
std::vector<int64_t> many_small_sizes() {
    std::vector<int64_t> sizes;
    for (int64_t i = 0; i < 1000; ++i) sizes.push_back(1 + (i * 37) % 300);
    return sizes;
}

TEST_F(CudaOptimizerTest, LongListsSpanSeveralLaunches) {
    Problem adam8{BNB_OPTIMIZER_ADAM, BNB_DTYPE_FLOAT16, true, preset(BNB_OPTIMIZER_ADAM, BNB_DTYPE_FLOAT16),
                  many_small_sizes()};
    expect_list_equals_single_calls(adam8, 2);
    check_against_reference(adam8, 2);
    Problem lamb32{BNB_OPTIMIZER_LAMB, BNB_DTYPE_FLOAT32, false, preset(BNB_OPTIMIZER_LAMB, BNB_DTYPE_FLOAT32),
                   many_small_sizes()};
    lamb32.hparams.max_unorm = 0.001f;  // every tensor's own norm, cleared per launch
    expect_list_equals_single_calls(lamb32, 2);
    check_against_reference(lamb32, 2);
}

// ---- update-norm clipping (32-bit) ------------------------------------------------------------

class CudaOptimizerClipping : public CudaOptimizerTest,
                              public ::testing::WithParamInterface<std::tuple<bnb_optimizer, bnb_dtype>> {};

TEST_P(CudaOptimizerClipping, ScalesByTheClippedNorm) {
    const auto [optimizer, dtype] = GetParam();
    Problem problem{optimizer, dtype, false, preset(optimizer, dtype), {300, 5000, 70001}};
    // About a third of the unclipped update norm relative to ||p|| (adam's u is ~1
    // per element, momentum's ~0.1, rmsprop's ~10; p is uniform in [-1, 1]): every
    // step clips, and the scaled update stays large enough to check the scale.
    const Rule rule = rule_of(optimizer);
    problem.hparams.max_unorm = rule == Rule::kAdam ? 0.5f : rule == Rule::kMomentum ? 0.05f : 5.0f;
    problem.expect_clipping = true;
    check_against_reference(problem, 3);
}

INSTANTIATE_TEST_SUITE_P(ClippingRules, CudaOptimizerClipping,
                         ::testing::Combine(::testing::Values(BNB_OPTIMIZER_LAMB, BNB_OPTIMIZER_LARS, BNB_OPTIMIZER_ADAM,
                                                              BNB_OPTIMIZER_MOMENTUM, BNB_OPTIMIZER_RMSPROP),
                                            ::testing::Values(BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16)),
                         [](const auto& info) {
                             return name_of(std::get<0>(info.param)) + "_" + name_of(std::get<1>(info.param));
                         });

// ---- skip_zeros, NaN and inf ---------------------------------------------------------------------

TEST_F(CudaOptimizerTest, SkipZerosLeavesZeroGradientElementsUntouched) {
    for (bool blockwise : {false, true}) {
        for (bnb_optimizer optimizer : {BNB_OPTIMIZER_ADAM, BNB_OPTIMIZER_MOMENTUM, BNB_OPTIMIZER_RMSPROP,
                                        BNB_OPTIMIZER_ADAGRAD, BNB_OPTIMIZER_LION}) {
            SCOPED_TRACE(name_of(optimizer) + (blockwise ? " 8-bit" : " 32-bit"));
            Problem problem{optimizer, BNB_DTYPE_FLOAT32, blockwise, preset(optimizer, BNB_DTYPE_FLOAT32), {257, 3001}};
            problem.hparams.skip_zeros = 1;
            problem.hparams.weight_decay = 0.0f;  // coupled decay would make the gradient nonzero
            problem.zero_fraction = 0.2f;
            check_against_reference(problem, 3);
            // Untouched: the parameter bit for bit (the 8-bit two-state kernel ignores skip_zeros).
            if (blockwise && two_state(optimizer)) continue;
            ProblemState state(problem, 5);
            bnb_optimizer_hparams h = problem.hparams;
            for (int step = 1; step <= 2; ++step) {
                h.step = step;
                state.next_gradients();
                const std::vector<HostTensor> before = state.host();
                const std::vector<bnb_optimizer_tensor> list = state.views();
                ASSERT_TRUE(succeeded(update(kCuda, problem, h, list.data(), static_cast<int64_t>(list.size()),
                                             qmap1(), qmap2())));
                ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
                const std::vector<HostTensor> after = state.device_values();
                for (size_t k = 0; k < after.size(); ++k) {
                    for (size_t i = 0; i < after[k].p.size(); ++i) {
                        if (before[k].g[i] != 0.0f) continue;
                        EXPECT_EQ(after[k].p[i], before[k].p[i]) << "tensor " << k << " element " << i;
                        if (!blockwise) EXPECT_EQ(after[k].s1[i], before[k].s1[i]) << "tensor " << k << " element " << i;
                    }
                }
                state.host() = after;
            }
        }
    }
}

// Adam and AdEMAMix 8-bit reset the state of a non-finite gradient's element and
// leave its parameter; the block's other elements are unaffected.
TEST_F(CudaOptimizerTest, NonFiniteGradientsResetTwoStateElements) {
    for (bnb_optimizer optimizer : {BNB_OPTIMIZER_ADAM, BNB_OPTIMIZER_ADEMAMIX}) {
        SCOPED_TRACE(name_of(optimizer));
        const Problem problem{optimizer, BNB_DTYPE_FLOAT32, true, preset(optimizer, BNB_DTYPE_FLOAT32), {600}};
        ProblemState state(problem, 11);
        bnb_optimizer_hparams h = problem.hparams;
        for (int step = 1; step <= 3; ++step) {
            h.step = step;
            state.next_gradients();
            HostTensor& t = state.host()[0];
            // Gradients of the first step are finite: the states are nonzero when the NaN comes.
            if (step >= 2) {
                t.g[10] = NAN;
                t.g[300] = INFINITY;
                t.g[301] = -INFINITY;
            }
            state.upload();
            const std::vector<HostTensor> before = state.host();
            HostTensor expected = t;
            reference_step(problem, h, qmap1_host_, qmap2_host_, expected);
            const std::vector<bnb_optimizer_tensor> list = state.views();
            ASSERT_TRUE(succeeded(update(kCuda, problem, h, list.data(), 1, qmap1(), qmap2())));
            ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
            const std::vector<HostTensor> got = state.device_values();
            expect_tensors_close(got[0], expected, before[0], problem, "step " + std::to_string(step));
            if (step >= 2) {
                for (size_t i : {size_t{10}, size_t{300}, size_t{301}}) {
                    EXPECT_EQ(got[0].p[i], before[0].p[i]) << "element " << i;
                    EXPECT_EQ(got[0].c1[i], expected.c1[i]) << "element " << i;
                    EXPECT_EQ(got[0].c2[i], expected.c2[i]) << "element " << i;
                }
            }
            state.host() = got;
        }
    }
}

// ---- capture: no allocation, no synchronisation inside a step ---------------------------------

TEST_F(CudaOptimizerTest, StepReplaysFromACudaGraph) {
    for (bool blockwise : {true, false}) {
        SCOPED_TRACE(blockwise ? "8-bit" : "32-bit");
        Problem problem{BNB_OPTIMIZER_LAMB, BNB_DTYPE_BFLOAT16, blockwise, preset(BNB_OPTIMIZER_LAMB, BNB_DTYPE_BFLOAT16),
                        many_small_sizes()};
        problem.hparams.max_unorm = blockwise ? 0.0f : 1e-3f;  // 32-bit: the three launches per table
        ProblemState direct(problem, 21);
        ProblemState replayed(problem, 21);
        direct.next_gradients();
        replayed.next_gradients();
        const std::vector<bnb_optimizer_tensor> list = direct.views();
        ASSERT_TRUE(succeeded(update(kCuda, problem, problem.hparams, list.data(), static_cast<int64_t>(list.size()),
                                     qmap1(), qmap2())));
        cudaStream_t stream = nullptr;
        ASSERT_TRUE(cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)));
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        const std::vector<bnb_optimizer_tensor> replay_list = replayed.views();
        ASSERT_TRUE(cuda_ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal)));
        const bnb_status status = update(kCuda, problem, problem.hparams, replay_list.data(),
                                         static_cast<int64_t>(replay_list.size()), qmap1(), qmap2(), stream);
        ASSERT_TRUE(cuda_ok(cudaStreamEndCapture(stream, &graph)));
        ASSERT_TRUE(succeeded(status));
        ASSERT_TRUE(cuda_ok(cudaGraphInstantiate(&exec, graph, 0)));
        ASSERT_TRUE(cuda_ok(cudaGraphLaunch(exec, stream)));
        ASSERT_TRUE(cuda_ok(cudaStreamSynchronize(stream)));
        ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
        const std::vector<TensorBytes> a = direct.device_bytes();
        const std::vector<TensorBytes> b = replayed.device_bytes();
        for (size_t k = 0; k < a.size(); ++k) {
            for (int part = 0; part < kParts; ++part) {
                ASSERT_TRUE(bits_equal(a[k][part].data(), b[k][part].data(), static_cast<int64_t>(a[k][part].size()), 1))
                    << "tensor " << k << " part " << part;
            }
        }
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
        cudaStreamDestroy(stream);
    }
}

// ---- paged memory ---------------------------------------------------------------------------------

TEST_F(CudaOptimizerTest, PagedMemoryIsZeroedPrefetchableAndFreed) {
    constexpr int64_t kBytes = int64_t{3} << 20;
    void* memory = nullptr;
    ASSERT_TRUE(succeeded(bnb_paged_alloc(kCuda, kBytes, &memory)));
    ASSERT_NE(memory, nullptr);
    const auto* bytes = static_cast<const uint8_t*>(memory);
    EXPECT_TRUE(std::all_of(bytes, bytes + kBytes, [](uint8_t b) { return b == 0; }));
    cudaStream_t stream = nullptr;
    ASSERT_TRUE(cuda_ok(cudaStreamCreate(&stream)));
    EXPECT_TRUE(succeeded(bnb_paged_prefetch(kCuda, stream, memory, kBytes, 1)));
    EXPECT_TRUE(cuda_ok(cudaMemsetAsync(memory, 0x5a, kBytes, stream)));
    EXPECT_TRUE(succeeded(bnb_paged_prefetch(kCuda, stream, memory, kBytes, 0)));
    ASSERT_TRUE(cuda_ok(cudaStreamSynchronize(stream)));
    EXPECT_TRUE(std::all_of(bytes, bytes + kBytes, [](uint8_t b) { return b == 0x5a; }));
    EXPECT_TRUE(succeeded(bnb_paged_prefetch(kCuda, nullptr, memory, 4096, 1)));  // part of it, default stream
    ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
    EXPECT_TRUE(succeeded(bnb_paged_free(kCuda, memory)));
    cudaStreamDestroy(stream);
}

TEST_F(CudaOptimizerTest, PagedAllocRefusesMoreThanTheDeviceHasFree) {
    size_t free_bytes = 0, total_bytes = 0;
    ASSERT_TRUE(cuda_ok(cudaMemGetInfo(&free_bytes, &total_bytes)));
    void* memory = reinterpret_cast<void*>(0x1);
    EXPECT_TRUE(failed_with(bnb_paged_alloc(kCuda, static_cast<int64_t>(free_bytes) + (int64_t{1} << 30), &memory),
                            BNB_STATUS_OUT_OF_MEMORY, {"paged_alloc", "free"}));
    EXPECT_EQ(memory, nullptr);
    EXPECT_TRUE(failed_with(bnb_paged_alloc(kCuda, static_cast<int64_t>(total_bytes) * 2, &memory),
                            BNB_STATUS_OUT_OF_MEMORY, {"paged_alloc"}));
}

// Optimizer states in paged memory (as the paged optimizers keep them) update as
// device memory does.
TEST_F(CudaOptimizerTest, PagedStatesUpdateAsDeviceStates) {
    const Problem problem{BNB_OPTIMIZER_ADAM, BNB_DTYPE_FLOAT32, true, preset(BNB_OPTIMIZER_ADAM, BNB_DTYPE_FLOAT32),
                          {100003}};
    ProblemState state(problem, 3);
    state.next_gradients();
    bnb_optimizer_tensor device_tensor = state.views()[0];
    const int64_t n = problem.sizes[0];
    void* paged1 = nullptr;
    void* paged2 = nullptr;
    ASSERT_TRUE(succeeded(bnb_paged_alloc(kCuda, n, &paged1)));
    ASSERT_TRUE(succeeded(bnb_paged_alloc(kCuda, n, &paged2)));
    // A copy of p and the absmax, so that both runs start from the same values.
    DeviceBuffer p_copy(static_cast<size_t>(n) * 4);
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    DeviceBuffer absmax1(static_cast<size_t>(blocks) * 4), absmax2(static_cast<size_t>(blocks) * 4);
    ASSERT_TRUE(cuda_ok(cudaMemcpy(p_copy.get(), device_tensor.p, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice)));
    ASSERT_TRUE(cuda_ok(cudaMemset(absmax1.get(), 0, static_cast<size_t>(blocks) * 4)));
    ASSERT_TRUE(cuda_ok(cudaMemset(absmax2.get(), 0, static_cast<size_t>(blocks) * 4)));
    bnb_optimizer_tensor paged_tensor = device_tensor;
    paged_tensor.p = p_copy.get();
    paged_tensor.state1 = paged1;
    paged_tensor.state2 = paged2;
    paged_tensor.absmax1 = absmax1.get<float>();
    paged_tensor.absmax2 = absmax2.get<float>();
    bnb_optimizer_hparams h = problem.hparams;
    for (int step = 1; step <= 2; ++step) {
        h.step = step;
        ASSERT_TRUE(succeeded(bnb_paged_prefetch(kCuda, nullptr, paged1, n, 1)));
        ASSERT_TRUE(succeeded(bnb_paged_prefetch(kCuda, nullptr, paged2, n, 1)));
        ASSERT_TRUE(succeeded(update(kCuda, problem, h, &device_tensor, 1, qmap1(), qmap2())));
        ASSERT_TRUE(succeeded(update(kCuda, problem, h, &paged_tensor, 1, qmap1(), qmap2())));
    }
    ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
    const TensorBytes device_bytes = state.device_bytes()[0];
    EXPECT_TRUE(bits_equal(paged1, device_bytes[kState1].data(), n, 1));
    EXPECT_TRUE(bits_equal(paged2, device_bytes[kState2].data(), n, 1));
    std::vector<uint8_t> p_bytes(static_cast<size_t>(n) * 4);
    ASSERT_TRUE(cuda_ok(cudaMemcpy(p_bytes.data(), p_copy.get(), p_bytes.size(), cudaMemcpyDeviceToHost)));
    EXPECT_TRUE(bits_equal(p_bytes.data(), device_bytes[kP].data(), n, 4));
    EXPECT_TRUE(succeeded(bnb_paged_free(kCuda, paged1)));
    EXPECT_TRUE(succeeded(bnb_paged_free(kCuda, paged2)));
}

}  // namespace

// ---- timings for the device session (disabled: they measure, they do not check) -------------
// Run with --gtest_also_run_disabled_tests --gtest_filter='*TimesSteps*'. Targets of
// the issue on an H200: AdamW8bit over 269M fp32 parameters <= 1.2 ms per step; a
// LoRA-shaped list (448 tensors of 16 x 4096 bf16) <= 0.2 ms per step.

// Milliseconds per call of `step`, averaged over `repeats` after a warm-up.
template <typename Step>
float milliseconds_per_step(Step&& step, int repeats) {
    step();
    cudaEvent_t start = nullptr, stop = nullptr;
    EXPECT_TRUE(cuda_ok(cudaEventCreate(&start)));
    EXPECT_TRUE(cuda_ok(cudaEventCreate(&stop)));
    EXPECT_TRUE(cuda_ok(cudaEventRecord(start)));
    for (int i = 0; i < repeats; ++i) step();
    EXPECT_TRUE(cuda_ok(cudaEventRecord(stop)));
    EXPECT_TRUE(cuda_ok(cudaEventSynchronize(stop)));
    float total = 0.0f;
    EXPECT_TRUE(cuda_ok(cudaEventElapsedTime(&total, start, stop)));
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return total / static_cast<float>(repeats);
}

// `count` tensors of n elements in zeroed device memory (one allocation per part).
struct ZeroedTensors {
    ZeroedTensors(int64_t count, int64_t n, bnb_dtype dtype, bool blockwise)
        : element(element_size(dtype)),
          state(blockwise ? 1 : 4),
          blocks((n + kBlock - 1) / kBlock),
          g(static_cast<size_t>(count * n) * element),
          p(static_cast<size_t>(count * n) * element),
          state1(static_cast<size_t>(count * n) * state),
          state2(static_cast<size_t>(count * n) * state),
          absmax1(static_cast<size_t>(count * blocks) * 4),
          absmax2(static_cast<size_t>(count * blocks) * 4) {
        const size_t values = static_cast<size_t>(count * n);
        const size_t absmax = static_cast<size_t>(count * blocks) * 4;
        EXPECT_TRUE(cuda_ok(cudaMemset(g.get(), 0, values * element)));
        EXPECT_TRUE(cuda_ok(cudaMemset(p.get(), 0, values * element)));
        EXPECT_TRUE(cuda_ok(cudaMemset(state1.get(), 0, values * state)));
        EXPECT_TRUE(cuda_ok(cudaMemset(state2.get(), 0, values * state)));
        EXPECT_TRUE(cuda_ok(cudaMemset(absmax1.get(), 0, absmax)));
        EXPECT_TRUE(cuda_ok(cudaMemset(absmax2.get(), 0, absmax)));
        for (int64_t k = 0; k < count; ++k) {
            bnb_optimizer_tensor t{};
            t.n = n;
            t.g = g.get<uint8_t>() + static_cast<size_t>(k * n) * element;
            t.p = p.get<uint8_t>() + static_cast<size_t>(k * n) * element;
            t.state1 = state1.get<uint8_t>() + static_cast<size_t>(k * n) * state;
            t.state2 = state2.get<uint8_t>() + static_cast<size_t>(k * n) * state;
            t.absmax1 = absmax1.get<float>() + k * blocks;
            t.absmax2 = absmax2.get<float>() + k * blocks;
            list.push_back(t);
        }
    }
    size_t element, state;
    int64_t blocks;
    DeviceBuffer g, p, state1, state2, absmax1, absmax2;
    std::vector<bnb_optimizer_tensor> list;
};

TEST_F(CudaOptimizerTest, DISABLED_TimesStepsAgainstTheTargets) {
    struct Shape {
        const char* name;
        bnb_dtype dtype;
        bool blockwise;
        int64_t count;
        int64_t n;
    };
    const Shape shapes[] = {
        {"AdamW8bit, 269M fp32 params, 1 tensor", BNB_DTYPE_FLOAT32, true, 1, 269'000'000},
        {"AdamW8bit, 269M bf16 params, 1 tensor", BNB_DTYPE_BFLOAT16, true, 1, 269'000'000},
        {"AdamW 32-bit, 269M fp32 params, 1 tensor", BNB_DTYPE_FLOAT32, false, 1, 269'000'000},
        {"AdamW8bit, LoRA 448 x 16x4096 bf16", BNB_DTYPE_BFLOAT16, true, 448, 16 * 4096},
        {"AdamW 32-bit, LoRA 448 x 16x4096 bf16", BNB_DTYPE_BFLOAT16, false, 448, 16 * 4096},
    };
    for (const Shape& shape : shapes) {
        ZeroedTensors tensors(shape.count, shape.n, shape.dtype, shape.blockwise);
        const Problem problem{BNB_OPTIMIZER_ADAM, shape.dtype, shape.blockwise,
                              preset(BNB_OPTIMIZER_ADAM, shape.dtype), {}};
        const float ms = milliseconds_per_step(
            [&] {
                EXPECT_TRUE(succeeded(update(kCuda, problem, problem.hparams, tensors.list.data(), shape.count,
                                             qmap1(), qmap2())));
            },
            20);
        const double bytes_per_element = 2.0 * 2 * element_size(shape.dtype) - element_size(shape.dtype) +
                                         2.0 * 2 * (shape.blockwise ? 1 : 4);  // g read; p, 2 states read + written
        const double gbps = bytes_per_element * static_cast<double>(shape.count * shape.n) / (ms * 1e6);
        std::printf("%-45s %8.3f ms/step  %7.0f GB/s\n", shape.name, ms, gbps);
    }
}
