// The optimizer updates on the CPU, once per kernel variant (scalar, AVX2,
// AVX-512): every optimizer x dtype x (32-bit, 8-bit blockwise) over several
// steps against a straightforward scalar reference written here from
// formats.md sections 6 and 7 (fast division as a * rcp.approx(b) from the
// measured table, flush-to-zero, FMA where formats.md says fma), byte for byte;
// every variant byte-identical to the scalar one; a list of tensors the same
// bytes as one call per tensor; and upstream's golden 8-bit trajectories.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/cpu_variants.h"
#include "support/cuda_float.h"
#include "support/float16.h"
#include "support/golden.h"

namespace {

using namespace bnb_test;

constexpr int64_t kBlock = 256;
constexpr bnb_dtype kFloatDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};
constexpr bnb_optimizer kOptimizers[] = {BNB_OPTIMIZER_ADAM,    BNB_OPTIMIZER_MOMENTUM, BNB_OPTIMIZER_RMSPROP,
                                         BNB_OPTIMIZER_ADAGRAD, BNB_OPTIMIZER_LION,     BNB_OPTIMIZER_LAMB,
                                         BNB_OPTIMIZER_LARS,    BNB_OPTIMIZER_ADEMAMIX};

bool two_state(bnb_optimizer o) {
    return o == BNB_OPTIMIZER_ADAM || o == BNB_OPTIMIZER_LAMB || o == BNB_OPTIMIZER_ADEMAMIX;
}
size_t dtype_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }
const char* dtype_label(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? "fp32" : dtype == BNB_DTYPE_FLOAT16 ? "fp16" : "bf16";
}

float round_to(float x, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT16) return half_to_float(float_to_half(x));
    if (dtype == BNB_DTYPE_BFLOAT16) return bf16_to_float(float_to_bf16(x));
    return x;
}

float decode(const std::vector<uint8_t>& raw, int64_t i, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT32) {
        float v;
        std::memcpy(&v, raw.data() + i * 4, 4);
        return v;
    }
    uint16_t bits;
    std::memcpy(&bits, raw.data() + i * 2, 2);
    return dtype == BNB_DTYPE_FLOAT16 ? half_to_float(bits) : bf16_to_float(bits);
}

void encode(std::vector<uint8_t>& raw, int64_t i, bnb_dtype dtype, float v) {
    if (dtype == BNB_DTYPE_FLOAT32) {
        std::memcpy(raw.data() + i * 4, &v, 4);
        return;
    }
    const uint16_t bits = dtype == BNB_DTYPE_FLOAT16 ? float_to_half(v) : float_to_bf16(v);
    std::memcpy(raw.data() + i * 2, &bits, 2);
}

// NaN results as CUDA's canonical NaN, as the kernels store them.
float canonical(float x) { return std::isnan(x) ? std::bit_cast<float>(0x7fffffffu) : x; }

float sign_of(float x) { return static_cast<float>((x > 0.0f) - (x < 0.0f)); }

// formats.md 2 step 4 as the optimizers search (6.0): lower start -1 (signed)
// or 0 (unsigned), upper start 1, no code[0]/code[255] substitution.
uint8_t search(const float* code, float s, bool is_signed) {
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float upper = 1.0f, lower = is_signed ? -1.0f : 0.0f;
    for (int step = 64; step > 0; step /= 2) {
        if (s > code[pivot]) {
            lower_pivot = pivot;
            lower = code[pivot];
            pivot += step;
        } else {
            upper_pivot = pivot;
            upper = code[pivot];
            pivot -= step;
        }
    }
    const float value = code[pivot];
    if (s > value) return static_cast<uint8_t>(s > (upper + value) * 0.5f ? upper_pivot : pivot);
    return static_cast<uint8_t>(s < (lower + value) * 0.5f ? lower_pivot : pivot);
}

// ---- the problem ------------------------------------------------------------------

struct Tensor {
    int64_t n = 0;
    std::vector<uint8_t> g, p;
    std::vector<uint8_t> state1, state2;  // float32 or uint8 codes
    std::vector<float> absmax1, absmax2;
    float unorm = 0.0f;
    float param_norm = 0.0f;
};

struct OptimCase {
    bnb_optimizer optimizer;
    bnb_dtype dtype;
    bool blockwise;
    bnb_optimizer_hparams h;
};

bnb_optimizer_hparams default_hparams(bnb_optimizer o, bool blockwise) {
    bnb_optimizer_hparams h{.beta1 = 0.9f, .beta2 = 0.999f, .beta3 = 0.0f, .alpha = 0.0f, .eps = 1e-8f,
                            .weight_decay = 0.01f, .lr = 1e-3f, .gnorm_scale = 0.75f, .max_unorm = 0.0f,
                            .step = 1, .skip_zeros = 0};
    switch (o) {
        case BNB_OPTIMIZER_MOMENTUM: h.lr = 0.01f; h.eps = 0.0f; break;
        case BNB_OPTIMIZER_LARS: h.lr = 0.01f; h.eps = 0.0f; h.max_unorm = blockwise ? 0.0f : 0.02f; break;
        case BNB_OPTIMIZER_RMSPROP: h.beta1 = 0.99f; h.lr = 0.01f; break;
        case BNB_OPTIMIZER_ADAGRAD: h.beta1 = 0.0f; h.beta2 = 0.0f; h.eps = 1e-10f; h.lr = 0.01f; break;
        case BNB_OPTIMIZER_LION: h.beta2 = 0.99f; h.lr = 1e-4f; h.eps = 0.0f; break;
        case BNB_OPTIMIZER_LAMB: h.max_unorm = blockwise ? 0.0f : 1.0f; break;
        case BNB_OPTIMIZER_ADEMAMIX: h.beta3 = 0.9999f; h.alpha = 5.0f; break;
        default: break;
    }
    return h;
}

Tensor make_tensor(const OptimCase& s, int64_t n, std::mt19937& rng) {
    Tensor t;
    t.n = n;
    const size_t e = dtype_size(s.dtype);
    const int64_t factor = s.optimizer == BNB_OPTIMIZER_ADEMAMIX ? 2 : 1;
    const size_t state_e = s.blockwise ? 1 : 4;
    t.g.assign(static_cast<size_t>(n) * e, 0);
    t.p.assign(static_cast<size_t>(n) * e, 0);
    t.state1.assign(static_cast<size_t>(n * factor) * state_e, 0);
    t.state2.assign(two_state(s.optimizer) ? static_cast<size_t>(n) * state_e : 0, 0);
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    if (s.blockwise) {
        t.absmax1.assign(static_cast<size_t>(blocks * factor), 0.0f);
        if (two_state(s.optimizer)) t.absmax2.assign(static_cast<size_t>(blocks), 0.0f);
    }
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) encode(t.p, i, s.dtype, normal(rng));
    return t;
}

// A new gradient: normal values of mixed scales, some exact zeros, and with
// `nonfinite` a NaN and infinities.
void new_gradient(const OptimCase& s, Tensor& t, std::mt19937& rng, bool nonfinite) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> kind(0, 15);
    for (int64_t i = 0; i < t.n; ++i) {
        const int k = kind(rng);
        const float v = k == 0 ? 0.0f : k == 1 ? 1e-3f * normal(rng) : normal(rng);
        encode(t.g, i, s.dtype, v);
    }
    if (nonfinite && t.n > 2) {
        encode(t.g, 0, s.dtype, std::numeric_limits<float>::quiet_NaN());
        encode(t.g, t.n / 2, s.dtype, std::numeric_limits<float>::infinity());
        encode(t.g, t.n - 1, s.dtype, -std::numeric_limits<float>::infinity());
    }
    if (s.h.max_unorm > 0.0f) {
        double sum = 0.0;
        for (int64_t i = 0; i < t.n; ++i) sum += static_cast<double>(decode(t.p, i, s.dtype)) * decode(t.p, i, s.dtype);
        t.param_norm = static_cast<float>(std::sqrt(sum));
    }
}

// ---- the reference -------------------------------------------------------------

struct Scalars {
    float c1, c2, step_size;
};

Scalars scalars_of(const bnb_optimizer_hparams& h) {
    const float step = static_cast<float>(h.step);
    const float c1 = ftz(1.0f - std::pow(h.beta1, step));
    const float c2 = fsqrt(1.0f - std::pow(h.beta2, step));
    return {c1, c2, fdiv(fmul(-h.lr, c2), c1)};
}

float* floats(std::vector<uint8_t>& raw) { return reinterpret_cast<float*>(raw.data()); }

void reference_32bit(const OptimCase& s, Tensor& t) {
    const auto& h = s.h;
    const Scalars k = scalars_of(h);
    const bnb_optimizer o = s.optimizer;
    float* s1 = floats(t.state1);
    float* s2 = floats(t.state2);
    float* m2 = o == BNB_OPTIMIZER_ADEMAMIX ? s1 + t.n : nullptr;
    const auto grad = [&](int64_t i) { return round_to(fmul(decode(t.g, i, s.dtype), h.gnorm_scale), s.dtype); };
    float update_scale = 1.0f;
    if (h.max_unorm > 0.0f) {
        double sum = 0.0;
        const float nc2 = ftz(1.0f - std::pow(h.beta2, static_cast<float>(h.step)));
        for (int64_t i = 0; i < t.n && o != BNB_OPTIMIZER_ADEMAMIX; ++i) {
            const float g = grad(i);
            float u = 0.0f;
            if (o == BNB_OPTIMIZER_ADAM || o == BNB_OPTIMIZER_LAMB) {
                const float a = fadd(fmul(s1[i], h.beta1), fmul(1.0f - h.beta1, g));
                const float b = fadd(fmul(s2[i], h.beta2), fmul(1.0f - h.beta2, fmul(g, g)));
                u = fdiv(fdiv(a, k.c1), fadd(fsqrt(fdiv(b, nc2)), h.eps));
            } else if (o == BNB_OPTIMIZER_MOMENTUM || o == BNB_OPTIMIZER_LARS) {
                u = h.step == 1 ? g : ffma(s1[i], h.beta1, g);
            } else if (o == BNB_OPTIMIZER_RMSPROP || o == BNB_OPTIMIZER_ADAGRAD) {
                const float a = o == BNB_OPTIMIZER_RMSPROP ? fadd(fmul(s1[i], h.beta1), fmul(fmul(1.0f - h.beta1, g), g))
                                                           : fadd(s1[i], fmul(g, g));
                u = fdiv(g, fadd(fsqrt(a), h.eps));
            }
            if (o == BNB_OPTIMIZER_LION) sum += fadd(fmul(s1[i], h.beta2), fmul(1.0f - h.beta2, g));
            else sum += fmul(u, u);
        }
        t.unorm = static_cast<float>(sum);
        if (o != BNB_OPTIMIZER_ADEMAMIX) {
            const float norm = fsqrt(t.unorm);
            float limit = fmul(h.max_unorm, t.param_norm);
            if (!two_state(o)) limit = fadd(limit, h.eps);
            if (norm > limit) update_scale = fdiv(limit, norm);
        }
    }
    for (int64_t i = 0; i < t.n; ++i) {
        float g = grad(i);
        float p = decode(t.p, i, s.dtype);
        const auto set_p = [&](float v) { p = round_to(v, s.dtype); };
        if (h.skip_zeros && g == 0.0f && o != BNB_OPTIMIZER_ADEMAMIX) continue;
        if (o == BNB_OPTIMIZER_ADAM || o == BNB_OPTIMIZER_LAMB) {
            s1[i] = fadd(fmul(s1[i], h.beta1), fmul(1.0f - h.beta1, g));
            s2[i] = fadd(fmul(s2[i], h.beta2), fmul(1.0f - h.beta2, fmul(g, g)));
            set_p(fadd(p, fmul(fmul(update_scale, k.step_size), fdiv(s1[i], fadd(fsqrt(s2[i]), fmul(h.eps, k.c2))))));
            if (h.weight_decay > 0.0f) set_p(fmul(p, 1.0f - fmul(h.lr, h.weight_decay)));
        } else if (o == BNB_OPTIMIZER_ADEMAMIX) {
            s1[i] = fadd(fmul(s1[i], h.beta1), fmul(1.0f - h.beta1, g));
            m2[i] = fadd(fmul(m2[i], h.beta3), fmul(1.0f - h.beta3, g));
            s2[i] = fadd(fmul(s2[i], h.beta2), fmul(fmul(1.0f - h.beta2, g), g));
            const float num = fadd(fdiv(s1[i], k.c1), fmul(h.alpha, m2[i]));
            const float den = fadd(fdiv(fsqrt(s2[i]), k.c2), h.eps);
            set_p(fsub(p, fmul(h.lr, fdiv(num, den))));
            if (h.weight_decay > 0.0f) set_p(fmul(p, 1.0f - fmul(h.lr, h.weight_decay)));
        } else if (o == BNB_OPTIMIZER_LION) {
            if (h.weight_decay > 0.0f) set_p(fmul(p, 1.0f - fmul(h.lr, h.weight_decay)));
            const float direction = sign_of(fadd(fmul(s1[i], h.beta1), fmul(1.0f - h.beta1, g)));
            set_p(fsub(p, fmul(update_scale, fmul(h.lr, direction))));
            s1[i] = fadd(fmul(s1[i], h.beta2), fmul(1.0f - h.beta2, g));
        } else {
            if (h.weight_decay > 0.0f) g = round_to(fadd(g, fmul(p, h.weight_decay)), s.dtype);
            if (o == BNB_OPTIMIZER_MOMENTUM || o == BNB_OPTIMIZER_LARS) {
                s1[i] = h.step == 1 ? g : ffma(s1[i], h.beta1, g);
                set_p(fadd(p, fmul(update_scale, fmul(-h.lr, s1[i]))));
            } else if (o == BNB_OPTIMIZER_RMSPROP) {
                s1[i] = fadd(fmul(s1[i], h.beta1), fmul(fmul(1.0f - h.beta1, g), g));
                set_p(fsub(p, fmul(update_scale, fmul(h.lr, fdiv(g, fadd(fsqrt(s1[i]), h.eps))))));
            } else {
                s1[i] = fadd(s1[i], fmul(g, g));
                set_p(fsub(p, fmul(h.lr, fdiv(g, fadd(fsqrt(s1[i]), h.eps)))));
            }
        }
        if (o == BNB_OPTIMIZER_ADEMAMIX) m2[i] = canonical(m2[i]);
        if (two_state(o)) s2[i] = canonical(s2[i]);
        s1[i] = canonical(s1[i]);
        encode(t.p, i, s.dtype, canonical(p));
    }
}

void reference_8bit(const OptimCase& s, Tensor& t, const float* qmap1, const float* qmap2) {
    const auto& h = s.h;
    const Scalars k = scalars_of(h);
    const bnb_optimizer o = s.optimizer;
    const bool adam = o == BNB_OPTIMIZER_ADAM || o == BNB_OPTIMIZER_LAMB;
    const bool ademamix = o == BNB_OPTIMIZER_ADEMAMIX;
    const int64_t blocks = (t.n + kBlock - 1) / kBlock;
    for (int64_t b = 0; b < blocks; ++b) {
        float v1[kBlock], v2[kBlock], v3[kBlock];
        for (int64_t j = 0; j < kBlock; ++j) {
            const int64_t i = b * kBlock + j;
            const bool valid = i < t.n;
            const float raw = valid ? ftz(decode(t.g, i, s.dtype)) : 0.0f;
            float g = fmul(raw, h.gnorm_scale);
            float p = valid ? decode(t.p, i, s.dtype) : 0.0f;
            const auto set_p = [&](float v) { p = round_to(v, s.dtype); };
            float s1 = fmul(qmap1[valid ? t.state1[i] : 128], t.absmax1[b]);
            float s2 = two_state(o) ? fmul(qmap2[valid ? t.state2[i] : 0], t.absmax2[b]) : 0.0f;
            float m2 = ademamix ? fmul(qmap1[valid ? t.state1[t.n + i] : 128], t.absmax1[blocks + b]) : 0.0f;
            if (adam || ademamix) {
                if (std::isfinite(g)) {
                    s2 = fadd(fmul(s2, h.beta2), fmul(fmul(1.0f - h.beta2, g), g));
                    s1 = fadd(fmul(s1, h.beta1), fmul(1.0f - h.beta1, g));
                    if (adam) {
                        set_p(fadd(p, fmul(k.step_size, fdiv(s1, fadd(fsqrt(s2), fmul(k.c2, h.eps))))));
                    } else {
                        m2 = fadd(fmul(m2, h.beta3), fmul(1.0f - h.beta3, g));
                        const float num = fadd(fdiv(s1, k.c1), fmul(h.alpha, m2));
                        const float den = fadd(fdiv(fsqrt(s2), k.c2), h.eps);
                        set_p(fsub(p, fmul(h.lr, fdiv(num, den))));
                    }
                    if (h.weight_decay > 0.0f) set_p(fmul(p, 1.0f - fmul(h.lr, h.weight_decay)));
                } else {
                    s1 = s2 = m2 = 0.0f;
                }
            } else if (h.skip_zeros && raw == 0.0f) {
                s1 += 0.0f;  // the state keeps its value, a zero as +0
            } else {
                if (h.weight_decay > 0.0f) {
                    if (o == BNB_OPTIMIZER_LION) set_p(fmul(p, 1.0f - fmul(h.lr, h.weight_decay)));
                    else g = fadd(g, fmul(p, h.weight_decay));
                }
                if (o == BNB_OPTIMIZER_MOMENTUM || o == BNB_OPTIMIZER_LARS) {
                    s1 = h.step == 1 ? g : fadd(fmul(s1, h.beta1), g);
                    set_p(ffma(-h.lr, s1, p));
                } else if (o == BNB_OPTIMIZER_LION) {
                    const float u = round_to(fmul(h.lr, sign_of(fadd(fmul(s1, h.beta1), fmul(1.0f - h.beta1, g)))),
                                             s.dtype);
                    s1 = fadd(fmul(s1, h.beta2), fmul(1.0f - h.beta2, g));
                    set_p(fsub(p, u));
                } else {
                    s1 = o == BNB_OPTIMIZER_RMSPROP ? fadd(fmul(s1, h.beta1), fmul(1.0f - h.beta1, fmul(g, g)))
                                                    : fadd(s1, fmul(g, g));
                    set_p(fsub(p, fmul(h.lr, fdiv(raw, fadd(fsqrt(s1), h.eps)))));
                }
            }
            v1[j] = canonical(s1);
            v2[j] = canonical(s2);
            v3[j] = canonical(m2);
            if (valid) encode(t.p, i, s.dtype, canonical(p));
        }
        const auto requantize = [&](const float* v, uint8_t* codes, float* absmax, const float* map, bool is_signed) {
            float m = 0.0f;
            for (int64_t j = 0; j < kBlock; ++j) m = std::fmax(m, std::fabs(v[j]));
            *absmax = m;
            const float r = rcp_approx(m);
            for (int64_t j = 0; j < kBlock && b * kBlock + j < t.n; ++j) {
                uint8_t c = search(map, fmul(v[j], r), is_signed);
                if (is_signed && std::signbit(map[c]) != std::signbit(v[j])) c = static_cast<uint8_t>(v[j] > 0 ? c + 1 : c - 1);
                codes[b * kBlock + j] = c;
            }
        };
        requantize(v1, t.state1.data(), &t.absmax1[b], qmap1, true);
        if (two_state(o)) requantize(v2, t.state2.data(), &t.absmax2[b], qmap2, false);
        if (ademamix) requantize(v3, t.state1.data() + t.n, &t.absmax1[blocks + b], qmap1, true);
    }
}

// ---- the op --------------------------------------------------------------------

struct Maps {
    float signed_map[256];
    float unsigned_map[256];
    Maps() {
        bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, signed_map, 256);
        bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_UNSIGNED, unsigned_map, 256);
    }
};

const Maps& maps() {
    static const Maps m;
    return m;
}

bnb_optimizer_tensor abi_tensor(Tensor& t) {
    return {.n = t.n, .g = t.g.data(), .p = t.p.data(), .state1 = t.state1.data(),
            .state2 = t.state2.empty() ? nullptr : t.state2.data(),
            .absmax1 = t.absmax1.empty() ? nullptr : t.absmax1.data(),
            .absmax2 = t.absmax2.empty() ? nullptr : t.absmax2.data(), .unorm_vec = &t.unorm,
            .param_norm = t.param_norm};
}

bnb_status run_op(const OptimCase& s, std::vector<Tensor*> tensors) {
    std::vector<bnb_optimizer_tensor> list;
    for (Tensor* t : tensors) list.push_back(abi_tensor(*t));
    const auto count = static_cast<int64_t>(list.size());
    if (s.blockwise) {
        return bnb_optimizer_update_8bit_blockwise(kCpu, nullptr, s.optimizer, s.dtype, list.data(), count,
                                                   maps().signed_map, maps().unsigned_map, &s.h);
    }
    return bnb_optimizer_update_32bit(kCpu, nullptr, s.optimizer, s.dtype, list.data(), count, &s.h);
}

::testing::AssertionResult same_tensor(const Tensor& a, const Tensor& b, const OptimCase& s) {
    const auto compare = [](const auto& x, const auto& y, size_t itemsize) {
        return bits_equal(x.data(), y.data(), static_cast<int64_t>(x.size() * sizeof(x[0]) / itemsize), itemsize);
    };
    const size_t state_e = s.blockwise ? 1 : 4;
    for (const auto& r : {compare(a.p, b.p, dtype_size(s.dtype)), compare(a.state1, b.state1, state_e),
                          compare(a.state2, b.state2, state_e), compare(a.absmax1, b.absmax1, 4),
                          compare(a.absmax2, b.absmax2, 4)}) {
        if (!r) return r;
    }
    if (!s.blockwise && s.h.max_unorm > 0.0f && std::bit_cast<uint32_t>(a.unorm) != std::bit_cast<uint32_t>(b.unorm)) {
        return ::testing::AssertionFailure() << "unorm " << a.unorm << " vs " << b.unorm;
    }
    return ::testing::AssertionSuccess();
}

std::string label(const OptimCase& s) {
    const char* names[] = {"adam", "momentum", "rmsprop", "adagrad", "lion", "lamb", "lars", "ademamix"};
    return std::string(names[s.optimizer]) + "/" + dtype_label(s.dtype) + (s.blockwise ? "/8bit" : "/32bit") +
           (s.h.skip_zeros ? "/skip_zeros" : "") + (s.h.weight_decay > 0.0f ? "/wd" : "") +
           (s.h.max_unorm > 0.0f ? "/clipped" : "");
}

// Steps every (optimizer, dtype, bits) case with the op and the reference and
// returns the op's tensors after the last step.
std::vector<Tensor> run_against_reference(const OptimCase& optim_case, const std::vector<int64_t>& sizes, bool nonfinite) {
    std::mt19937 rng(1234);
    OptimCase s = optim_case;
    std::vector<Tensor> op_tensors;
    for (int64_t n : sizes) op_tensors.push_back(make_tensor(s, n, rng));
    std::vector<Tensor> ref_tensors = op_tensors;
    for (int64_t step = 1; step <= 3; ++step) {
        s.h.step = step;
        for (size_t t = 0; t < op_tensors.size(); ++t) {
            new_gradient(s, op_tensors[t], rng, nonfinite && step == 2);
            ref_tensors[t].g = op_tensors[t].g;
            ref_tensors[t].param_norm = op_tensors[t].param_norm;
            EXPECT_TRUE(succeeded(run_op(s, {&op_tensors[t]}))) << label(s);
            if (s.blockwise) reference_8bit(s, ref_tensors[t], maps().signed_map, maps().unsigned_map);
            else reference_32bit(s, ref_tensors[t]);
            EXPECT_TRUE(same_tensor(op_tensors[t], ref_tensors[t], s))
                << label(s) << " n=" << op_tensors[t].n << " step " << step;
        }
    }
    return op_tensors;
}

std::vector<OptimCase> all_cases() {
    std::vector<OptimCase> cases;
    for (bool blockwise : {false, true}) {
        for (bnb_optimizer o : kOptimizers) {
            for (bnb_dtype dtype : kFloatDtypes) {
                cases.push_back({o, dtype, blockwise, default_hparams(o, blockwise)});
                OptimCase skipping = cases.back();
                skipping.h.skip_zeros = 1;
                skipping.h.weight_decay = 0.0f;
                cases.push_back(skipping);
                // Update-norm clipping for every rule (the classes clip only lamb and lars).
                if (!blockwise && cases[cases.size() - 2].h.max_unorm == 0.0f) {
                    OptimCase clipped = cases[cases.size() - 2];
                    clipped.h.max_unorm = 0.05f;
                    cases.push_back(clipped);
                }
            }
        }
    }
    return cases;
}

class CpuOptimizer : public CpuVariantTest {};

TEST_P(CpuOptimizer, MatchesReferenceAndScalarVariant) {
    ASSERT_EQ(rcp_table().size(), size_t{1} << 21) << BNB_RCP_TABLE_PATH;
    const std::vector<int64_t> sizes = {1000, 257, 1, 256, 20000};
    for (const OptimCase& s : all_cases()) {
        const std::vector<Tensor> here = run_against_reference(s, sizes, false);
        ASSERT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, "scalar")));
        const std::vector<Tensor> scalar = run_against_reference(s, sizes, false);
        ASSERT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, GetParam().c_str())));
        for (size_t t = 0; t < here.size(); ++t) EXPECT_TRUE(same_tensor(here[t], scalar[t], s)) << label(s);
    }
}

TEST_P(CpuOptimizer, NonFiniteGradientsResetAdamStates) {
    for (const OptimCase& s : all_cases()) {
        if (!two_state(s.optimizer) || !s.blockwise) continue;
        run_against_reference(s, {1000, 300}, true);
    }
    // Element 0 gets a NaN at step 2: its parameter stays.
    OptimCase s{BNB_OPTIMIZER_ADAM, BNB_DTYPE_FLOAT32, true, default_hparams(BNB_OPTIMIZER_ADAM, true)};
    std::mt19937 rng(7);
    Tensor t = make_tensor(s, 300, rng);
    new_gradient(s, t, rng, false);
    ASSERT_TRUE(succeeded(run_op(s, {&t})));
    const std::vector<uint8_t> p_before = t.p;
    s.h.step = 2;
    new_gradient(s, t, rng, true);
    ASSERT_TRUE(succeeded(run_op(s, {&t})));
    EXPECT_EQ(std::memcmp(t.p.data(), p_before.data(), 4), 0);  // p[0] unchanged
}

// Gradients of every magnitude class with eps = 0, so that the fast divisions
// see zero, subnormal-producing, huge, infinite and NaN denominators: every
// variant gives the scalar variant's bytes.
TEST_P(CpuOptimizer, ExtremeValuesMatchTheScalarVariant) {
    const float extremes[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-20f, 1e30f, -1e30f, 3e38f,
                              std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), 1.0f, -0.5f};
    for (OptimCase s : all_cases()) {
        s.h.eps = 0.0f;
        std::mt19937 rng(5);
        std::vector<Tensor> runs;
        for (const char* variant : {GetParam().c_str(), "scalar"}) {
            ASSERT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, variant)));
            std::mt19937 values(11);
            Tensor t = make_tensor(s, 777, rng);
            rng.seed(5);
            for (int64_t step = 1; step <= 3; ++step) {
                s.h.step = step;
                for (int64_t i = 0; i < t.n; ++i) {
                    encode(t.g, i, s.dtype, extremes[values() % std::size(extremes)]);
                    if (step == 1) encode(t.p, i, s.dtype, extremes[values() % std::size(extremes)]);
                }
                t.param_norm = 1.0f;
                ASSERT_TRUE(succeeded(run_op(s, {&t})));
            }
            runs.push_back(std::move(t));
        }
        ASSERT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, GetParam().c_str())));
        EXPECT_TRUE(same_tensor(runs[0], runs[1], s)) << label(s);
    }
}

TEST_P(CpuOptimizer, ListEqualsOneCallPerTensor) {
    const std::vector<int64_t> sizes = {1000, 257, 3, 70000, 256, 1};
    for (const OptimCase& s0 : all_cases()) {
        OptimCase s = s0;
        std::mt19937 rng(99);
        std::vector<Tensor> listed;
        for (int64_t n : sizes) listed.push_back(make_tensor(s, n, rng));
        std::vector<Tensor> single = listed;
        for (int64_t step = 1; step <= 2; ++step) {
            s.h.step = step;
            std::vector<Tensor*> pointers;
            for (size_t t = 0; t < listed.size(); ++t) {
                new_gradient(s, listed[t], rng, false);
                single[t].g = listed[t].g;
                single[t].param_norm = listed[t].param_norm;
                pointers.push_back(&listed[t]);
            }
            ASSERT_TRUE(succeeded(run_op(s, pointers)));
            for (Tensor& t : single) ASSERT_TRUE(succeeded(run_op(s, {&t})));
            for (size_t t = 0; t < listed.size(); ++t) {
                EXPECT_TRUE(same_tensor(listed[t], single[t], s)) << label(s) << " tensor " << t;
            }
        }
    }
}

TEST_P(CpuOptimizer, EmptyTensorsAreLeftAlone) {
    OptimCase s{BNB_OPTIMIZER_ADAM, BNB_DTYPE_FLOAT32, true, default_hparams(BNB_OPTIMIZER_ADAM, true)};
    std::mt19937 rng(3);
    Tensor empty = make_tensor(s, 0, rng);
    Tensor some = make_tensor(s, 300, rng);
    new_gradient(s, some, rng, false);
    Tensor alone = some;
    ASSERT_TRUE(succeeded(run_op(s, {&empty, &some})));
    ASSERT_TRUE(succeeded(run_op(s, {&alone})));
    EXPECT_TRUE(same_tensor(some, alone, s));
}

INSTANTIATE_TEST_SUITE_P(Variant, CpuOptimizer, ::testing::ValuesIn(supported_cpu_variants()), cpu_variant_name);

}  // namespace
