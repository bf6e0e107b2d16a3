// bnb_gemm_4bit / bnb_gemv_4bit on the CPU against a float64 reference built from
// bnb_dequantize_4bit's weights (float32; in bf16 for the rows above
// bnb_gemm_4bit_fused_max_rows, where the backend multiplies dequantize's bf16
// weights): every dtype, quant type, plain and nested statistics, bias, row
// counts, K on and off the blocksize, every instruction set, with and without
// workspace, and shapes large enough to split among threads.
// Outputs are poisoned before each call; every element must be written, and
// nothing past the end.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/cpu_variants.h"
#include "support/float16.h"

namespace {

using bnb_test::AlignedBytes;
using bnb_test::failed_with;
using bnb_test::half_to_float;
using bnb_test::kCpu;
using bnb_test::succeeded;

constexpr bnb_dtype kFloatDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};
constexpr bnb_quant_type kQuantTypes[] = {BNB_QUANT_NF4, BNB_QUANT_FP4};
constexpr int64_t kRowCounts[] = {1, 3, 17, 64, 130};
constexpr int64_t kBlocksizes[] = {32, 64, 4096};
// Not a multiple of the tile height (16 rows).
constexpr int64_t kOutFeatures = 21;
// Elements past the end of `out` that must stay poisoned.
constexpr int64_t kGuardElements = 8;

size_t dtype_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

const char* dtype_label(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? "fp32" : dtype == BNB_DTYPE_FLOAT16 ? "fp16" : "bf16";
}

// Relative rounding error of one rounding to `dtype`.
double unit_roundoff(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? std::ldexp(1.0, -24) : dtype == BNB_DTYPE_FLOAT16 ? std::ldexp(1.0, -11)
                                                                                          : std::ldexp(1.0, -8);
}

uint32_t float_bits(float value) { return std::bit_cast<uint32_t>(value); }

float bits_float(uint32_t bits) { return std::bit_cast<float>(bits); }

// Round to nearest even (finite values).
float rounded_to_bf16(float value) {
    const uint32_t bits = float_bits(value);
    return bits_float((bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u);
}

// Values of the form k / 64, |k| <= 256, which fp16 and bf16 hold exactly.
float exact_in_every_dtype(std::mt19937& rng) {
    return static_cast<float>(std::uniform_int_distribution<int>(-256, 256)(rng)) / 64.0f;
}

// `values` (each exactly representable) as raw elements of `dtype`.
std::vector<uint8_t> encode(const std::vector<float>& values, bnb_dtype dtype) {
    std::vector<uint8_t> raw(values.size() * dtype_size(dtype));
    for (size_t i = 0; i < values.size(); ++i) {
        const uint32_t bits = float_bits(values[i]);
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(&raw[i * 4], &bits, 4);
            continue;
        }
        uint16_t narrow = static_cast<uint16_t>(bits >> 16);
        if (dtype == BNB_DTYPE_FLOAT16) {
            const uint32_t exponent = (bits >> 23) & 0xff;
            narrow = static_cast<uint16_t>(((bits >> 16) & 0x8000) |
                                           (exponent == 0 ? 0 : ((exponent - 112) << 10) | ((bits >> 13) & 0x3ff)));
        }
        std::memcpy(&raw[i * 2], &narrow, 2);
    }
    return raw;
}

double decode(const std::vector<uint8_t>& raw, size_t index, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT32) {
        uint32_t bits;
        std::memcpy(&bits, &raw[index * 4], 4);
        return bits_float(bits);
    }
    uint16_t narrow;
    std::memcpy(&narrow, &raw[index * 2], 2);
    return dtype == BNB_DTYPE_FLOAT16 ? half_to_float(narrow) : bits_float(static_cast<uint32_t>(narrow) << 16);
}

// A quantized [N, K] weight with its statistics, and the float32 weights that
// bnb_dequantize_4bit gives for them (the reference's W).
struct Weight {
    int64_t N = 0;
    int64_t K = 0;
    int64_t blocksize = 0;
    bnb_quant_type quant_type = BNB_QUANT_NF4;
    std::vector<uint8_t> packed;
    std::vector<float> absmax;         // per block (plain)
    std::vector<uint8_t> absmax_8bit;  // nested: per block
    std::vector<float> nested_absmax;  // nested: per 256 blocks
    std::vector<float> absmax_code;
    float absmax_offset = 0.0f;
    std::vector<float> dequantized;
    std::vector<float> dequantized_nested;
    // bnb_dequantize_4bit's bf16 output, widened.
    std::vector<float> dequantized_bf16;
    std::vector<float> dequantized_nested_bf16;
};

std::vector<float> dequantized_in_bf16(const Weight& w, const std::vector<float>& scales) {
    const int64_t n = w.N * w.K;
    std::vector<uint16_t> bf16(static_cast<size_t>(n));
    if (n > 0) {
        EXPECT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, w.quant_type, BNB_DTYPE_BFLOAT16, w.packed.data(),
                                                  scales.data(), n, w.blocksize, bf16.data())));
    }
    std::vector<float> widened(bf16.size());
    for (size_t i = 0; i < bf16.size(); ++i) widened[i] = bits_float(static_cast<uint32_t>(bf16[i]) << 16);
    return widened;
}

Weight make_weight(int64_t N, int64_t K, int64_t blocksize, bnb_quant_type quant_type, uint32_t seed) {
    Weight w;
    w.N = N;
    w.K = K;
    w.blocksize = blocksize;
    w.quant_type = quant_type;
    const int64_t n = N * K;
    const int64_t blocks = (n + blocksize - 1) / blocksize;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(n));
    // Block scales spread over a few binades, so that nested statistics matter.
    for (int64_t i = 0; i < n; ++i) values[i] = normal(rng) * std::ldexp(1.0f, static_cast<int>((i / blocksize) % 5) - 2);
    w.packed.resize(static_cast<size_t>((n + 1) / 2) + 1);
    w.absmax.resize(static_cast<size_t>(blocks));
    if (n > 0) {
        EXPECT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, quant_type, BNB_DTYPE_FLOAT32, values.data(), n,
                                                blocksize, w.packed.data(), w.absmax.data())));
    }

    // Nested statistics as upstream builds them: absmax minus its mean, 8-bit
    // blockwise with blocksize 256; the de-nested scales are dequantize + offset.
    const int64_t nested_blocks = (blocks + 255) / 256;
    w.absmax_code.resize(256);
    EXPECT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, w.absmax_code.data(), 256)));
    double mean = 0.0;
    for (float a : w.absmax) mean += a;
    w.absmax_offset = blocks > 0 ? static_cast<float>(mean / static_cast<double>(blocks)) : 0.0f;
    std::vector<float> centered(w.absmax.size());
    for (size_t i = 0; i < centered.size(); ++i) centered[i] = w.absmax[i] - w.absmax_offset;
    w.absmax_8bit.resize(static_cast<size_t>(blocks));
    w.nested_absmax.resize(static_cast<size_t>(nested_blocks));
    std::vector<float> denested(static_cast<size_t>(blocks));
    if (blocks > 0) {
        EXPECT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, centered.data(),
                                                     w.absmax_code.data(), blocks, 256, w.absmax_8bit.data(),
                                                     w.nested_absmax.data())));
        EXPECT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, w.absmax_8bit.data(),
                                                       w.absmax_code.data(), w.nested_absmax.data(), blocks, 256,
                                                       denested.data())));
    }
    for (float& scale : denested) scale += w.absmax_offset;

    w.dequantized.resize(static_cast<size_t>(n));
    w.dequantized_nested.resize(static_cast<size_t>(n));
    if (n > 0) {
        EXPECT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, quant_type, BNB_DTYPE_FLOAT32, w.packed.data(),
                                                  w.absmax.data(), n, blocksize, w.dequantized.data())));
        EXPECT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, quant_type, BNB_DTYPE_FLOAT32, w.packed.data(),
                                                  denested.data(), n, blocksize, w.dequantized_nested.data())));
    }
    w.dequantized_bf16 = dequantized_in_bf16(w, w.absmax);
    w.dequantized_nested_bf16 = dequantized_in_bf16(w, denested);
    return w;
}

struct Activations {
    std::vector<float> values;  // [M, K]
    std::vector<uint8_t> raw;   // the same in the dtype
};

Activations make_activations(int64_t count, bnb_dtype dtype, uint32_t seed) {
    std::mt19937 rng(seed);
    Activations a;
    a.values.resize(static_cast<size_t>(count));
    for (float& v : a.values) v = exact_in_every_dtype(rng);
    a.raw = encode(a.values, dtype);
    return a;
}

// Every out element within float32-accumulation error of the float64 product
// (plus one rounding to the dtype), and the guard elements untouched.
::testing::AssertionResult matches_reference(const std::vector<uint8_t>& out, bnb_dtype dtype, int64_t M, int64_t N,
                                             int64_t K, const std::vector<float>& A, const std::vector<float>& W,
                                             const std::vector<float>* bias) {
    const double accumulation = (static_cast<double>(K) / 4.0 + 64.0) * std::ldexp(1.0, -24);
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
            double sum = bias != nullptr ? (*bias)[n] : 0.0;
            double magnitude = std::fabs(sum);
            for (int64_t k = 0; k < K; ++k) {
                const double product = static_cast<double>(A[m * K + k]) * W[n * K + k];
                sum += product;
                magnitude += std::fabs(product);
            }
            const double got = decode(out, static_cast<size_t>(m * N + n), dtype);
            const double tolerance = accumulation * magnitude * (1.0 + unit_roundoff(dtype)) +
                                     unit_roundoff(dtype) * std::fabs(sum) + 1e-30;
            if (!(std::fabs(got - sum) <= tolerance)) {
                return ::testing::AssertionFailure() << "out[" << m << ", " << n << "] = " << got << ", expected "
                                                     << sum << " (tolerance " << tolerance << ")";
            }
        }
    }
    for (int64_t i = 0; i < kGuardElements * static_cast<int64_t>(dtype_size(dtype)); ++i) {
        if (out[static_cast<size_t>(M * N) * dtype_size(dtype) + i] != 0xff) {
            return ::testing::AssertionFailure() << "wrote past the end of out";
        }
    }
    return ::testing::AssertionSuccess();
}

// NaN in every dtype, so an element left unwritten fails the comparison.
std::vector<uint8_t> poisoned_out(int64_t elements, bnb_dtype dtype) {
    return std::vector<uint8_t>(static_cast<size_t>(elements + kGuardElements) * dtype_size(dtype), 0xff);
}

struct CallOptions {
    bool nested = false;
    bool bias = false;
    bnb_gemm_4bit_algo algo = BNB_GEMM_4BIT_AUTO;
    // < 0: the size bnb_gemm_4bit_workspace_size reports; else that many bytes
    // (0: a NULL workspace).
    int64_t workspace_bytes = -1;
};

// Whether the call multiplies bf16 weights: bf16 rows above the fused limit,
// unless GENERIC (float32 weights for any shape) is asked for.
bool uses_bf16_weights(bnb_dtype dtype, int64_t M, const Weight& w, bnb_gemm_4bit_algo algo) {
    if (dtype != BNB_DTYPE_BFLOAT16 || algo == BNB_GEMM_4BIT_GENERIC) return false;
    int64_t max_rows = 0;
    EXPECT_TRUE(succeeded(bnb_gemm_4bit_fused_max_rows(kCpu, dtype, w.N, w.K, w.blocksize, &max_rows)));
    return M > max_rows;
}

// One bnb_gemm_4bit call on fresh activations, checked against the reference.
void check_gemm(const Weight& w, bnb_dtype dtype, int64_t M, const CallOptions& options, uint32_t seed) {
    SCOPED_TRACE(::testing::Message() << dtype_label(dtype) << (w.quant_type == BNB_QUANT_NF4 ? " nf4" : " fp4")
                                      << (options.nested ? " nested" : " plain") << (options.bias ? " bias" : "")
                                      << " M=" << M << " N=" << w.N << " K=" << w.K << " blocksize=" << w.blocksize
                                      << " algo=" << options.algo << " workspace=" << options.workspace_bytes);
    const Activations A = make_activations(M * w.K, dtype, seed);
    const Activations bias = make_activations(w.N, dtype, seed + 1);
    int64_t workspace_bytes = options.workspace_bytes;
    if (workspace_bytes < 0) {
        ASSERT_TRUE(succeeded(bnb_gemm_4bit_workspace_size(kCpu, dtype, M, w.N, w.K, w.blocksize, options.nested,
                                                           options.algo, &workspace_bytes)));
    }
    AlignedBytes workspace(static_cast<size_t>(workspace_bytes) + 256);
    uint8_t* workspace_ptr = workspace_bytes > 0 ? workspace.data() + (256 - reinterpret_cast<uintptr_t>(workspace.data()) % 256) % 256 : nullptr;
    std::vector<uint8_t> out = poisoned_out(M * w.N, dtype);
    ASSERT_TRUE(succeeded(bnb_gemm_4bit(
        kCpu, nullptr, dtype, w.quant_type, A.raw.data(), M, w.K, w.packed.data(), w.N, w.blocksize,
        options.nested ? w.nested_absmax.data() : w.absmax.data(), options.nested ? w.absmax_8bit.data() : nullptr,
        options.nested ? w.absmax_code.data() : nullptr, options.nested ? &w.absmax_offset : nullptr,
        options.bias ? bias.raw.data() : nullptr, options.algo, workspace_ptr, workspace_bytes, out.data())));
    const bool bf16_weights = uses_bf16_weights(dtype, M, w, options.algo);
    const std::vector<float>& weights = bf16_weights ? (options.nested ? w.dequantized_nested_bf16 : w.dequantized_bf16)
                                                     : (options.nested ? w.dequantized_nested : w.dequantized);
    EXPECT_TRUE(matches_reference(out, dtype, M, w.N, w.K, A.values, weights, options.bias ? &bias.values : nullptr));
}

// K a multiple of the blocksize, an odd K above it (rows start mid-byte and
// blocks span rows) and one below it.
std::vector<int64_t> k_values(int64_t blocksize) {
    return {blocksize == 4096 ? 4096 : 3 * blocksize, blocksize + 9, blocksize == 4096 ? 100 : blocksize / 2 + 1};
}

class CpuGemm4bit : public bnb_test::CpuVariantTest {};

}  // namespace

TEST(CpuGemm4bitSlots, BackendSupportsBothOps) {
    EXPECT_EQ(bnb_backend_supports(BNB_DEVICE_CPU, "gemm_4bit"), 1);
    EXPECT_EQ(bnb_backend_supports(BNB_DEVICE_CPU, "gemv_4bit"), 1);
}

TEST_P(CpuGemm4bit, EveryDtypeQuantTypeStatisticsBiasRowsAndK) {
    uint32_t seed = 1;
    for (int64_t blocksize : kBlocksizes) {
        for (int64_t K : k_values(blocksize)) {
            for (bnb_quant_type quant_type : kQuantTypes) {
                const Weight w = make_weight(kOutFeatures, K, blocksize, quant_type, seed++);
                for (bnb_dtype dtype : kFloatDtypes) {
                    for (int64_t M : kRowCounts) {
                        for (bool nested : {false, true}) {
                            for (bool bias : {false, true}) {
                                check_gemm(w, dtype, M, {.nested = nested, .bias = bias}, seed++);
                                if (HasFailure()) return;
                            }
                        }
                    }
                }
            }
        }
    }
}

TEST_P(CpuGemm4bit, GemvWithExplicitCodebook) {
    // An arbitrary codebook (not NF4 or FP4, one subnormal entry) and NF4 itself.
    std::vector<float> custom(16);
    for (int i = 0; i < 16; ++i) custom[i] = static_cast<float>(i * i - 50) / 37.0f;
    custom[5] = 1e-40f;
    std::vector<float> nf4(16);
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_NF4, nf4.data(), 16)));
    uint32_t seed = 100;
    for (const std::vector<float>* code : {&custom, &nf4}) {
        for (int64_t K : {64, 73, 4096}) {
            const Weight w = make_weight(kOutFeatures, K, 64, BNB_QUANT_NF4, seed++);
            // The weights gemv must use: code[nibble] * absmax, subnormals flushed.
            std::vector<float> expected_w(static_cast<size_t>(w.N * K));
            for (int64_t i = 0; i < w.N * K; ++i) {
                const uint8_t byte = w.packed[static_cast<size_t>(i / 2)];
                const float entry = (*code)[(i & 1) ? (byte & 0x0f) : (byte >> 4)];
                const float flushed_entry = std::fabs(entry) < 1.17549435e-38f ? 0.0f : entry;
                expected_w[static_cast<size_t>(i)] = flushed_entry * w.absmax[static_cast<size_t>(i / 64)];
            }
            for (bnb_dtype dtype : kFloatDtypes) {
                for (int64_t M : {1, 5}) {
                    SCOPED_TRACE(::testing::Message() << dtype_label(dtype) << " M=" << M << " K=" << K);
                    const Activations A = make_activations(M * K, dtype, seed++);
                    std::vector<uint8_t> out = poisoned_out(M * w.N, dtype);
                    ASSERT_TRUE(succeeded(bnb_gemv_4bit(kCpu, nullptr, dtype, A.raw.data(), M, K, w.packed.data(), w.N,
                                                        code->data(), w.absmax.data(), 64, out.data())));
                    std::vector<float> weights = expected_w;
                    if (uses_bf16_weights(dtype, M, w, BNB_GEMM_4BIT_AUTO)) {
                        for (float& weight : weights) weight = rounded_to_bf16(weight);
                    }
                    EXPECT_TRUE(matches_reference(out, dtype, M, w.N, K, A.values, weights, nullptr));
                }
            }
        }
    }
}

TEST_P(CpuGemm4bit, ThreadedShapes) {
    // Enough work to split among threads, along N (many tiles) and along M
    // (more rows than one block of A, with workspace and on the stack).
    const Weight wide = make_weight(1000, 512, 64, BNB_QUANT_NF4, 7);
    const Weight tall = make_weight(40, 1030, 128, BNB_QUANT_FP4, 8);
    for (bnb_dtype dtype : kFloatDtypes) {
        check_gemm(wide, dtype, 5, {.nested = true, .bias = true}, 20);
        check_gemm(tall, dtype, 300, {.bias = true}, 21);
        check_gemm(tall, dtype, 300, {.nested = true, .workspace_bytes = 0}, 22);
        check_gemm(tall, dtype, 300, {.nested = true, .algo = BNB_GEMM_4BIT_GENERIC}, 23);
    }
}

TEST_P(CpuGemm4bit, FusedMaxRows) {
    // float32 and fp16: float32 weights for every M; bf16: at least batch 1.
    for (bnb_dtype dtype : kFloatDtypes) {
        int64_t max_rows = 0;
        ASSERT_TRUE(succeeded(bnb_gemm_4bit_fused_max_rows(kCpu, dtype, 4096, 4096, 64, &max_rows)));
        if (dtype == BNB_DTYPE_BFLOAT16) EXPECT_GE(max_rows, 1);
        else EXPECT_EQ(max_rows, INT64_MAX) << dtype_label(dtype);
    }
}

TEST_P(CpuGemm4bit, WorkspaceTooSmallOrNull) {
    const Weight w = make_weight(kOutFeatures, 200, 64, BNB_QUANT_NF4, 9);
    const auto workspace_size = [&](bnb_dtype dtype, bnb_gemm_4bit_algo algo) {
        int64_t bytes = 0;
        EXPECT_TRUE(succeeded(bnb_gemm_4bit_workspace_size(kCpu, dtype, 70, w.N, w.K, 64, 0, algo, &bytes)));
        EXPECT_GT(bytes, 0);
        return bytes;
    };
    const int64_t bf16_needed = workspace_size(BNB_DTYPE_BFLOAT16, BNB_GEMM_4BIT_AUTO);
    const int64_t needed = workspace_size(BNB_DTYPE_FLOAT32, BNB_GEMM_4BIT_GENERIC);
    for (int64_t delta : {int64_t{-256}, int64_t{0}, int64_t{256}}) {
        check_gemm(w, BNB_DTYPE_BFLOAT16, 70, {.bias = true, .workspace_bytes = bf16_needed + delta}, 30);
        check_gemm(w, BNB_DTYPE_FLOAT32, 70,
                   {.nested = true, .algo = BNB_GEMM_4BIT_GENERIC, .workspace_bytes = needed + delta}, 31);
    }
    check_gemm(w, BNB_DTYPE_BFLOAT16, 70, {.bias = true, .workspace_bytes = 0}, 30);
    check_gemm(w, BNB_DTYPE_FLOAT32, 70, {.algo = BNB_GEMM_4BIT_GENERIC, .workspace_bytes = 0}, 31);
    check_gemm(w, BNB_DTYPE_FLOAT16, 70, {.algo = BNB_GEMM_4BIT_DEQUANTIZE}, 32);

    // DEQUANTIZE names its need; the GPU-only kernels are unsupported.
    const Activations A = make_activations(70 * w.K, BNB_DTYPE_FLOAT32, 33);
    std::vector<uint8_t> out = poisoned_out(70 * w.N, BNB_DTYPE_FLOAT32);
    const auto call = [&](bnb_gemm_4bit_algo algo, void* workspace, int64_t bytes) {
        return bnb_gemm_4bit(kCpu, nullptr, BNB_DTYPE_FLOAT32, BNB_QUANT_NF4, A.raw.data(), 70, w.K, w.packed.data(),
                             w.N, 64, w.absmax.data(), nullptr, nullptr, nullptr, nullptr, algo, workspace, bytes,
                             out.data());
    };
    EXPECT_TRUE(failed_with(call(BNB_GEMM_4BIT_DEQUANTIZE, nullptr, 0), BNB_STATUS_INVALID_ARGUMENT,
                            {"workspace_bytes", std::to_string(needed)}));
    AlignedBytes small(512);
    uint8_t* aligned = small.data() + (256 - reinterpret_cast<uintptr_t>(small.data()) % 256) % 256;
    EXPECT_TRUE(failed_with(call(BNB_GEMM_4BIT_DEQUANTIZE, aligned, 256), BNB_STATUS_INVALID_ARGUMENT,
                            {"workspace_bytes", "256"}));
    EXPECT_TRUE(failed_with(call(BNB_GEMM_4BIT_SIMT, nullptr, 0), BNB_STATUS_UNSUPPORTED, {"algo"}));
    EXPECT_TRUE(failed_with(call(BNB_GEMM_4BIT_TENSOR_CORE, nullptr, 0), BNB_STATUS_UNSUPPORTED, {"algo"}));
}

TEST_P(CpuGemm4bit, EmptyShapes) {
    for (bnb_dtype dtype : kFloatDtypes) {
        SCOPED_TRACE(dtype_label(dtype));
        const Activations bias = make_activations(5, dtype, 40);
        // K == 0: the sum is empty, so out is the bias (or zero); nothing of A, B or absmax is read.
        for (bool with_bias : {false, true}) {
            std::vector<uint8_t> out = poisoned_out(3 * 5, dtype);
            ASSERT_TRUE(succeeded(bnb_gemm_4bit(kCpu, nullptr, dtype, BNB_QUANT_NF4, nullptr, 3, 0, nullptr, 5, 64,
                                                nullptr, nullptr, nullptr, nullptr,
                                                with_bias ? bias.raw.data() : nullptr, BNB_GEMM_4BIT_AUTO, nullptr, 0,
                                                out.data())));
            const std::vector<float> no_weights;
            EXPECT_TRUE(matches_reference(out, dtype, 3, 5, 0, {}, no_weights, with_bias ? &bias.values : nullptr));
        }
        // M == 0 or N == 0: nothing to write.
        std::vector<uint8_t> untouched = poisoned_out(0, dtype);
        const Weight w = make_weight(5, 64, 64, BNB_QUANT_NF4, 41);
        EXPECT_TRUE(succeeded(bnb_gemm_4bit(kCpu, nullptr, dtype, BNB_QUANT_NF4, nullptr, 0, 64, w.packed.data(), 5,
                                            64, w.absmax.data(), nullptr, nullptr, nullptr, nullptr,
                                            BNB_GEMM_4BIT_AUTO, nullptr, 0, untouched.data())));
        EXPECT_TRUE(succeeded(bnb_gemm_4bit(kCpu, nullptr, dtype, BNB_QUANT_NF4, bias.raw.data(), 3, 64, nullptr, 0,
                                            64, nullptr, nullptr, nullptr, nullptr, nullptr, BNB_GEMM_4BIT_AUTO,
                                            nullptr, 0, untouched.data())));
        EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](uint8_t b) { return b == 0xff; }));
        int64_t bytes = -1;
        EXPECT_TRUE(succeeded(bnb_gemm_4bit_workspace_size(kCpu, dtype, 0, 5, 64, 64, 0, BNB_GEMM_4BIT_AUTO, &bytes)));
        EXPECT_EQ(bytes, 0);
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuGemm4bit, ::testing::ValuesIn(bnb_test::supported_cpu_variants()),
                         bnb_test::cpu_variant_name);
