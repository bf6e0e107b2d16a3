// Numerics at the edges on every CPU variant (docs/numerics.md): every NaN an op
// computes is CUDA's (0x7fffffff, 0x7fff in 16 bits), whichever NaN its inputs
// held or x86 made; float16 dequantization overflows to +-inf; an 8-bit Adam step
// leaves a parameter whose gradient is not finite with its bits. The byte equality
// of the variants is test_cpu_isa.cpp's; tests/python/test_numerics.py holds the
// Python paths to upstream's measured bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/cpu_variants.h"
#include "support/float16.h"

using namespace bnb_test;

namespace {

constexpr bnb_dtype kFloatDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};
// A NaN with another payload than CUDA's, and one with the sign set.
const float kOtherNan = std::bit_cast<float>(0x7fc00123u);
const float kNegativeNan = std::bit_cast<float>(0xffc00001u);

int64_t element_bytes(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

// Elements of a float output of `dtype`, as float32 values and raw bits.
struct Output {
    bnb_dtype dtype;
    std::vector<uint8_t> bytes;

    Output(bnb_dtype type, int64_t n) : dtype(type), bytes(static_cast<size_t>(n * element_bytes(type))) {}
    int64_t size() const { return static_cast<int64_t>(bytes.size()) / element_bytes(dtype); }
    uint32_t bits(int64_t i) const {
        if (dtype == BNB_DTYPE_FLOAT32) {
            uint32_t value;
            std::memcpy(&value, bytes.data() + 4 * i, 4);
            return value;
        }
        uint16_t value;
        std::memcpy(&value, bytes.data() + 2 * i, 2);
        return value;
    }
    float value(int64_t i) const {
        if (dtype == BNB_DTYPE_FLOAT32) return std::bit_cast<float>(bits(i));
        return dtype == BNB_DTYPE_FLOAT16 ? half_to_float(static_cast<uint16_t>(bits(i)))
                                          : bf16_to_float(static_cast<uint16_t>(bits(i)));
    }
    void* data() { return bytes.data(); }
};

uint32_t canonical_nan(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 0x7fffffffu : 0x7fffu; }

// Every NaN element is CUDA's; returns how many there are.
int64_t expect_canonical_nans(const Output& out, const char* what) {
    int64_t nans = 0;
    for (int64_t i = 0; i < out.size(); ++i) {
        if (!std::isnan(out.value(i))) continue;
        ++nans;
        EXPECT_EQ(out.bits(i), canonical_nan(out.dtype)) << what << ", element " << i;
    }
    return nans;
}

// `values` in `dtype`, as bytes.
std::vector<uint8_t> encoded(const std::vector<float>& values, bnb_dtype dtype) {
    std::vector<uint8_t> bytes(values.size() * static_cast<size_t>(element_bytes(dtype)));
    for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(bytes.data() + 4 * i, &values[i], 4);
            continue;
        }
        // NaNs keep a payload, so that the kernels meet ones other than CUDA's.
        const uint32_t bits = std::bit_cast<uint32_t>(values[i]);
        uint16_t word = dtype == BNB_DTYPE_FLOAT16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
        if (std::isnan(values[i])) {
            word = static_cast<uint16_t>(dtype == BNB_DTYPE_FLOAT16 ? ((bits >> 16) & 0x8000u) | 0x7e03u : (bits >> 16) | 0x40u);
        }
        std::memcpy(bytes.data() + 2 * i, &word, 2);
    }
    return bytes;
}

class CpuNumerics : public CpuVariantTest {};

}  // namespace

TEST_P(CpuNumerics, DequantizersWriteCudasNanAndOverflowToInfinity) {
    constexpr int64_t n = 512, blocksize = 64;
    std::vector<uint8_t> codes(n);
    for (int64_t i = 0; i < n; ++i) codes[i] = static_cast<uint8_t>(i * 37);
    // Per block: NaN (two payloads, one negative), +-inf (0 * inf at zero codes), 1e30, 1.
    const std::vector<float> absmax = {kOtherNan, kNegativeNan, INFINITY, -INFINITY, 1e30f, 1e30f, 1.0f, 1.0f};
    const std::vector<float> dynamic = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    for (bnb_dtype dtype : kFloatDtypes) {
        Output blockwise(dtype, n), nf4(dtype, n), fp4(dtype, n);
        ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, dtype, codes.data(), dynamic.data(),
                                                       absmax.data(), n, blocksize, blockwise.data())));
        ASSERT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, BNB_QUANT_NF4, dtype, codes.data(), absmax.data(),
                                                  n, blocksize, nf4.data())));
        ASSERT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, BNB_QUANT_FP4, dtype, codes.data(), absmax.data(),
                                                  n, blocksize, fp4.data())));
        for (const Output* out : {&blockwise, &nf4, &fp4}) {
            EXPECT_GE(expect_canonical_nans(*out, "dequantize"), 2 * blocksize);  // the NaN blocks at least
            if (dtype != BNB_DTYPE_FLOAT16) continue;
            for (int64_t i = 4 * blocksize; i < 6 * blocksize; ++i) {
                const float value = out->value(i);
                if (value != 0.0f) EXPECT_TRUE(std::isinf(value)) << "element " << i << " = " << value;
            }
        }
    }
}

TEST_P(CpuNumerics, Gemm4bitAndGemvWriteCudasNanForNanAndInfiniteActivations) {
    constexpr int64_t K = 256, N = 64, blocksize = 64;
    std::vector<uint8_t> B(N * K / 2);
    for (size_t i = 0; i < B.size(); ++i) B[i] = static_cast<uint8_t>(i * 29 + 3);
    const std::vector<float> absmax(N * K / blocksize, 0.5f);
    const std::vector<float> nf4 = codebook(BNB_CODEBOOK_NF4);
    for (bnb_dtype dtype : kFloatDtypes) {
        for (int64_t M : {1, 5}) {
            std::vector<float> a(M * K, 0.25f);
            a[3] = kOtherNan;  // row 0: every output NaN
            a[(M - 1) * K + 7] = INFINITY;  // the last row: +-inf, NaN where +inf and -inf meet
            a[(M - 1) * K + 9] = -INFINITY;
            const std::vector<uint8_t> A = encoded(a, dtype);
            Output gemm(dtype, M * N), gemv(dtype, M * N);
            ASSERT_TRUE(succeeded(bnb_gemm_4bit(kCpu, nullptr, dtype, BNB_QUANT_NF4, A.data(), M, K, B.data(), N,
                                                blocksize, absmax.data(), nullptr, nullptr, nullptr, nullptr,
                                                BNB_GEMM_4BIT_AUTO, nullptr, 0, gemm.data())));
            ASSERT_TRUE(succeeded(bnb_gemv_4bit(kCpu, nullptr, dtype, A.data(), M, K, B.data(), N, nf4.data(),
                                                absmax.data(), blocksize, gemv.data())));
            EXPECT_GE(expect_canonical_nans(gemm, "gemm_4bit"), N);
            EXPECT_GE(expect_canonical_nans(gemv, "gemv_4bit"), N);
            EXPECT_EQ(gemm.bytes, gemv.bytes);
        }
    }
}

TEST_P(CpuNumerics, Int8DequantizersWriteCudasNan) {
    constexpr int64_t rows = 4, cols = 40;
    std::vector<int8_t> codes(rows * cols);
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<int8_t>(static_cast<int>(i * 11 % 255) - 127);
    std::vector<int32_t> products(codes.begin(), codes.end());
    const std::vector<float> stats = {kOtherNan, kNegativeNan, INFINITY, 2.0f};
    const std::vector<float> col_stats(cols, 3.0f);
    for (bnb_dtype dtype : kFloatDtypes) {
        Output dequantized(dtype, rows * cols), rescaled(dtype, rows * cols);
        ASSERT_TRUE(succeeded(bnb_int8_vectorwise_dequant(kCpu, nullptr, dtype, codes.data(), stats.data(), rows,
                                                          cols, dequantized.data())));
        ASSERT_TRUE(succeeded(bnb_int8_mm_dequant(kCpu, nullptr, products.data(), rows, cols, stats.data(),
                                                  col_stats.data(), dtype, nullptr, dtype, rescaled.data())));
        EXPECT_GE(expect_canonical_nans(dequantized, "int8_vectorwise_dequant"), 2 * cols);
        EXPECT_GE(expect_canonical_nans(rescaled, "int8_mm_dequant"), 2 * cols);
    }
}

TEST_P(CpuNumerics, AdamStepsKeepParametersOfNonFiniteGradientsIn8BitAndPropagateIn32Bit) {
    constexpr int64_t n = 512;
    const std::vector<float> qmap1 = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const std::vector<float> qmap2 = codebook(BNB_CODEBOOK_DYNAMIC_UNSIGNED);
    const bnb_optimizer_hparams hparams = {.beta1 = 0.9f, .beta2 = 0.999f, .beta3 = 0.0f, .alpha = 0.0f,
                                           .eps = 1e-8f, .weight_decay = 0.0f, .lr = 1e-3f, .gnorm_scale = 1.0f,
                                           .max_unorm = 0.0f, .step = 1, .skip_zeros = 0};
    for (bnb_dtype dtype : kFloatDtypes) {
        std::vector<float> g(n, 0.5f), p(n, 0.25f);
        g[0] = kOtherNan, g[1] = INFINITY, g[2] = -INFINITY;
        p[1] = kOtherNan;  // a NaN parameter whose step is skipped
        p[3] = kOtherNan;  // a NaN parameter with a finite gradient
        const std::vector<uint8_t> grad = encoded(g, dtype), before = encoded(p, dtype);
        for (bool blockwise : {true, false}) {
            Output param(dtype, n);
            param.bytes = before;
            std::vector<uint8_t> codes1(n), codes2(n);
            std::vector<float> absmax1(n / 256), absmax2(n / 256), state1(n), state2(n);
            const bnb_optimizer_tensor tensor = {
                .n = n, .g = grad.data(), .p = param.data(),
                .state1 = blockwise ? static_cast<void*>(codes1.data()) : state1.data(),
                .state2 = blockwise ? static_cast<void*>(codes2.data()) : state2.data(),
                .absmax1 = blockwise ? absmax1.data() : nullptr, .absmax2 = blockwise ? absmax2.data() : nullptr,
                .unorm_vec = nullptr, .param_norm = 0.0f};
            const bnb_status status =
                blockwise ? bnb_optimizer_update_8bit_blockwise(kCpu, nullptr, BNB_OPTIMIZER_ADAM, dtype, &tensor, 1,
                                                                qmap1.data(), qmap2.data(), &hparams)
                          : bnb_optimizer_update_32bit(kCpu, nullptr, BNB_OPTIMIZER_ADAM, dtype, &tensor, 1, &hparams);
            ASSERT_TRUE(succeeded(status));
            EXPECT_EQ(param.bits(3), canonical_nan(dtype));
            for (int64_t i = 0; i < 3; ++i) {
                if (blockwise) {
                    uint32_t kept = 0;
                    std::memcpy(&kept, before.data() + i * element_bytes(dtype),
                                static_cast<size_t>(element_bytes(dtype)));
                    EXPECT_EQ(param.bits(i), kept) << "8-bit, element " << i;
                    EXPECT_EQ(codes1[i], 127) << "element " << i;  // the state restarts from zero
                } else {
                    EXPECT_EQ(param.bits(i), canonical_nan(dtype)) << "32-bit, element " << i;
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Variants, CpuNumerics, ::testing::ValuesIn(supported_cpu_variants()), cpu_variant_name);
