// LLM.int8() on the CPU, once per kernel variant (scalar, AVX2, AVX-512):
// upstream's golden codes, statistics, outlier columns, products and fp16
// rescale bit for bit; the quantizers and every float epilogue byte for byte
// against the scalar path and against the formulas of formats.md section 5;
// the int8 product exactly against int64 arithmetic (modulo 2^32) for random
// and extreme inputs and every tail; int8_scaled_mm with outlier columns and
// bias against a float64 reference.
//
// The int8 products take VNNI where the CPU has it; ctest runs this suite a
// second time with BNB_CPU_VNNI=0 for the other kernels (tests/cpp/CMakeLists.txt).
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
#include "support/golden.h"

namespace {

using namespace bnb_test;

constexpr bnb_dtype kFloatDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};
constexpr float kInverse127 = 7.874015718698502e-3f;
constexpr float kInverse127Squared = 6.200012e-05f;
// Poisoned elements past the end of every output.
constexpr size_t kGuard = 16;
constexpr uint8_t kPoison = 0xa5;

// v[i] for a signed index.
template <typename Vector>
auto& at(Vector& v, int64_t i) {
    return v[static_cast<size_t>(i)];
}

size_t dtype_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

const char* dtype_label(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? "fp32" : dtype == BNB_DTYPE_FLOAT16 ? "fp16" : "bf16";
}

// `value` rounded to `dtype` (nearest even) and widened back.
float rounded_to(float value, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT16) return half_to_float(float_to_half(value));
    if (dtype == BNB_DTYPE_BFLOAT16) return std::isnan(value) ? value : bf16_to_float(float_to_bf16(value));
    return value;
}

// Raw elements of `dtype`, each value rounded to it.
std::vector<uint8_t> encode(const std::vector<float>& values, bnb_dtype dtype) {
    std::vector<uint8_t> raw(values.size() * dtype_size(dtype) + kGuard);
    for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(&raw[i * 4], &values[i], 4);
            continue;
        }
        const uint16_t narrow = dtype == BNB_DTYPE_FLOAT16 ? float_to_half(values[i])
                                : std::isnan(values[i])    ? uint16_t{0x7fc0}
                                                           : float_to_bf16(values[i]);
        std::memcpy(&raw[i * 2], &narrow, 2);
    }
    return raw;
}

float decode(const void* raw, size_t index, bnb_dtype dtype) {
    const auto* bytes = static_cast<const uint8_t*>(raw);
    if (dtype == BNB_DTYPE_FLOAT32) {
        float value;
        std::memcpy(&value, bytes + index * 4, 4);
        return value;
    }
    uint16_t narrow;
    std::memcpy(&narrow, bytes + index * 2, 2);
    return dtype == BNB_DTYPE_FLOAT16 ? half_to_float(narrow) : bf16_to_float(narrow);
}

// A poisoned output of `count` elements of `itemsize` bytes plus a guard.
std::vector<uint8_t> poisoned(size_t count, size_t itemsize) {
    return std::vector<uint8_t>(count * itemsize + kGuard, kPoison);
}

::testing::AssertionResult guard_intact(const std::vector<uint8_t>& buffer) {
    for (size_t i = buffer.size() - kGuard; i < buffer.size(); ++i) {
        if (buffer[i] != kPoison) return ::testing::AssertionFailure() << "written past the end at byte " << i;
    }
    return ::testing::AssertionSuccess();
}

// Activations [rows, cols]: Gaussian values, a few columns of large ones (the
// outliers of LLM.int8()), and with `specials` a zero row, ±0, ±inf and NaN.
std::vector<float> make_activations(int64_t rows, int64_t cols, uint32_t seed, bool specials) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> gaussian(0.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(rows * cols));
    for (float& value : values) value = gaussian(rng);
    for (int64_t c = 0; c < cols; c += 7 + static_cast<int64_t>(rng() % 13)) {
        for (int64_t r = 0; r < rows; ++r) {
            if (rng() % 3 == 0) values[static_cast<size_t>(r * cols + c)] = gaussian(rng) * 20.0f;
        }
    }
    if (specials && rows * cols > 0) {
        const int64_t zero_row = rows / 2;
        for (int64_t c = 0; c < cols; ++c) values[static_cast<size_t>(zero_row * cols + c)] = (c & 1) ? -0.0f : 0.0f;
        const float special[] = {INFINITY, -INFINITY, NAN, -0.0f, 65504.0f, 1e-3f};
        for (int i = 0; i < 12; ++i) values[rng() % values.size()] = special[static_cast<size_t>(i) % std::size(special)];
    }
    return values;
}

std::vector<int8_t> random_codes(int64_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int8_t> codes(static_cast<size_t>(count));
    for (int8_t& code : codes) code = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
    return codes;
}

std::vector<float> random_stats(int64_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> exponent(-3.0f, 3.0f);
    std::vector<float> stats(static_cast<size_t>(count));
    for (float& stat : stats) stat = std::exp2(exponent(rng));
    return stats;
}

struct Quantized {
    std::vector<uint8_t> codes, col_codes;   // int8, with guards
    std::vector<uint8_t> stats, col_stats;   // float32, with guards
    std::vector<int64_t> outlier_cols;       // the used prefix
};

Quantized quantize(const std::vector<uint8_t>& A, bnb_dtype dtype, int64_t rows, int64_t cols, float threshold,
                   bool double_quant) {
    Quantized q{poisoned(static_cast<size_t>(rows * cols), 1), poisoned(static_cast<size_t>(rows * cols), 1),
                poisoned(static_cast<size_t>(rows), 4), poisoned(static_cast<size_t>(cols), 4), {}};
    std::vector<int64_t> outlier_cols(static_cast<size_t>(cols) + 1, -7);
    int64_t count = -7;
    auto* codes = reinterpret_cast<int8_t*>(q.codes.data());
    auto* stats = reinterpret_cast<float*>(q.stats.data());
    if (double_quant) {
        EXPECT_TRUE(succeeded(bnb_int8_double_quant(kCpu, nullptr, dtype, A.data(), rows, cols, threshold, codes,
                                                    reinterpret_cast<int8_t*>(q.col_codes.data()), stats,
                                                    reinterpret_cast<float*>(q.col_stats.data()), outlier_cols.data(),
                                                    &count)));
        EXPECT_TRUE(guard_intact(q.col_codes));
        EXPECT_TRUE(guard_intact(q.col_stats));
    } else {
        EXPECT_TRUE(succeeded(
            bnb_int8_vectorwise_quant(kCpu, nullptr, dtype, A.data(), rows, cols, threshold, codes, stats,
                                      threshold > 0.0f ? outlier_cols.data() : nullptr, threshold > 0.0f ? &count : nullptr)));
    }
    EXPECT_TRUE(guard_intact(q.codes));
    EXPECT_TRUE(guard_intact(q.stats));
    EXPECT_EQ(outlier_cols[static_cast<size_t>(cols)], -7) << "outlier_cols written past its capacity";
    if (threshold > 0.0f) {
        EXPECT_GE(count, 0);
        EXPECT_LE(count, cols);
        if (count >= 0 && count <= cols) outlier_cols.resize(static_cast<size_t>(count));
        q.outlier_cols = outlier_cols;
    } else {
        EXPECT_EQ(count, -7) << "outlier_count written without a threshold";
    }
    return q;
}

// Runs `run` on the scalar path, then returns to the test's variant.
template <typename Run>
auto on_scalar_path(const std::string& variant, const Run& run) {
    EXPECT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, "scalar")));
    auto result = run();
    EXPECT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, variant.c_str())));
    return result;
}

int32_t code_at(const Quantized& q, int64_t index) { return reinterpret_cast<const int8_t*>(q.codes.data())[index]; }

// formats.md 5.1 checked element by element with an exact reciprocal: the
// statistics, the outlier columns and their zeros are exact, a code is within
// one of round(a * 127 / absmax) (the fast reciprocal moves ties).
void expect_row_quantization(const std::vector<float>& values, bnb_dtype dtype, int64_t rows, int64_t cols,
                             float threshold, const Quantized& q, const std::string& where) {
    std::vector<bool> outlier(static_cast<size_t>(cols), false);
    for (int64_t i = 0; i < rows * cols; ++i) {
        if (threshold > 0.0f && std::fabs(rounded_to(values[static_cast<size_t>(i)], dtype)) >= threshold) {
            outlier[static_cast<size_t>(i % cols)] = true;
        }
    }
    if (threshold > 0.0f) {
        std::vector<int64_t> expected_cols;
        for (int64_t c = 0; c < cols; ++c) {
            if (outlier[static_cast<size_t>(c)]) expected_cols.push_back(c);
        }
        EXPECT_EQ(q.outlier_cols, expected_cols) << where;
    }
    int64_t wrong = 0;
    for (int64_t r = 0; r < rows; ++r) {
        float absmax = 0.0f;
        for (int64_t c = 0; c < cols; ++c) {
            const float magnitude = std::fabs(rounded_to(values[static_cast<size_t>(r * cols + c)], dtype));
            if (threshold > 0.0f && magnitude >= threshold) continue;
            // A NaN makes the row's statistic NaN (its output non-finite, not wrong).
            if (std::isnan(magnitude) || std::isnan(absmax)) absmax = NAN;
            else if (magnitude > absmax) absmax = magnitude;
        }
        const float stat = decode(q.stats.data(), static_cast<size_t>(r), BNB_DTYPE_FLOAT32);
        EXPECT_TRUE(std::isnan(absmax) ? std::isnan(stat) : std::bit_cast<uint32_t>(stat) == std::bit_cast<uint32_t>(absmax))
            << where << " row " << r << ": " << stat << " expected " << absmax;
        for (int64_t c = 0; c < cols; ++c) {
            const float a = rounded_to(values[static_cast<size_t>(r * cols + c)], dtype);
            const int32_t code = code_at(q, r * cols + c);
            const bool zeroed = threshold > 0.0f && (std::fabs(a) >= threshold || (rows > 1 && outlier[static_cast<size_t>(c)]));
            const double exact = static_cast<double>(a) * 127.0 / absmax;
            const bool ok = zeroed || !std::isfinite(exact) ? code == 0 : std::fabs(code - exact) <= 0.5 + 1e-4;
            if (!ok && ++wrong <= 5) {
                ADD_FAILURE() << where << " [" << r << ", " << c << "] = " << a << " absmax " << absmax << ": code " << code;
            }
        }
    }
}

// formats.md 5.2 exactly: torch's amax (NaN propagates), outlier elements 0,
// the multiply by 127 rounded to dtype, an exact division, half to even.
void expect_column_quantization(const std::vector<float>& values, bnb_dtype dtype, int64_t rows, int64_t cols,
                                float threshold, const Quantized& q, const std::string& where) {
    const auto kept = [&](int64_t r, int64_t c) {
        const float a = rounded_to(values[static_cast<size_t>(r * cols + c)], dtype);
        return threshold > 0.0f && std::fabs(a) >= threshold ? 0.0f : a;
    };
    int64_t wrong = 0;
    for (int64_t c = 0; c < cols; ++c) {
        float absmax = 0.0f;
        for (int64_t r = 0; r < rows; ++r) {
            const float magnitude = std::fabs(kept(r, c));
            if (std::isnan(magnitude) || std::isnan(absmax)) absmax = NAN;
            else absmax = std::max(absmax, magnitude);
        }
        const float stat = decode(q.col_stats.data(), static_cast<size_t>(c), BNB_DTYPE_FLOAT32);
        EXPECT_TRUE(std::isnan(absmax) ? std::isnan(stat) : stat == absmax) << where << " column " << c;
        for (int64_t r = 0; r < rows; ++r) {
            const float quotient = rounded_to(kept(r, c) * 127.0f, dtype) / absmax;
            const int32_t expected =
                std::isnan(quotient) ? 0 : static_cast<int32_t>(std::nearbyint(std::clamp(quotient, -127.0f, 127.0f)));
            const int32_t code = reinterpret_cast<const int8_t*>(q.col_codes.data())[r * cols + c];
            if (code != expected && ++wrong <= 5) {
                ADD_FAILURE() << where << " column codes [" << r << ", " << c << "]: " << code << ", expected " << expected;
            }
        }
    }
}

struct Shape {
    int64_t rows, cols;
};

constexpr Shape kQuantizeShapes[] = {{1, 1}, {1, 37}, {2, 16}, {3, 100}, {17, 257}, {64, 1000}, {5, 4099}};

class CpuInt8 : public CpuVariantTest {};

// ---- golden data: upstream's CUDA output -------------------------------------------

const TensorView& golden_tensor(const GoldenCase& golden, const std::string& role) { return golden.tensor(role); }

std::vector<uint8_t> tensor_bytes(const TensorView& tensor) {
    const auto* data = static_cast<const uint8_t*>(tensor.data);
    std::vector<uint8_t> bytes(data, data + tensor.bytes);
    bytes.resize(tensor.bytes + kGuard);
    return bytes;
}

TEST_P(CpuInt8, GoldenQuantizationMatchesUpstream) {
    if (!golden_dir()) GTEST_SKIP() << golden_missing_reason();
    int cases = 0;
    for (const GoldenCase& golden : golden_cases("int8")) {
        if (!golden.has("SCB")) continue;
        ++cases;
        const TensorView& A = golden_tensor(golden, "A");
        ASSERT_EQ(A.dtype, "F16");
        const int64_t rows = A.shape.at(0), cols = A.shape.at(1);
        const float threshold = static_cast<float>(golden.args.at("threshold").number);
        for (bool double_quant : {false, true}) {
            const Quantized q = quantize(tensor_bytes(A), BNB_DTYPE_FLOAT16, rows, cols, threshold, double_quant);
            const std::string where = golden.name + (double_quant ? " double_quant" : "");
            EXPECT_TRUE(bits_equal(q.codes.data(), golden.tensor("CB").data, rows * cols, 1)) << where;
            EXPECT_TRUE(bits_equal(q.stats.data(), golden.tensor("SCB").data, rows, 4)) << where;
            if (golden.has("outlier_cols")) {
                const TensorView& expected = golden.tensor("outlier_cols");
                ASSERT_EQ(static_cast<int64_t>(q.outlier_cols.size()), expected.numel()) << where;
                EXPECT_TRUE(bits_equal(q.outlier_cols.data(), expected.data, expected.numel(), 8)) << where;
            }
        }
    }
    EXPECT_GT(cases, 0) << "the manifest has no int8 quantization case";
}

TEST_P(CpuInt8, GoldenProductAndRescaleMatchUpstream) {
    if (!golden_dir()) GTEST_SKIP() << golden_missing_reason();
    int cases = 0;
    for (const GoldenCase& golden : golden_cases("int8")) {
        if (!golden.has("acc_int32")) continue;
        ++cases;
        const TensorView& A = golden.tensor("A");
        const TensorView& B = golden.tensor("B");
        const int64_t M = A.shape.at(0), K = A.shape.at(1), N = B.shape.at(0);
        const Quantized qa = quantize(tensor_bytes(A), BNB_DTYPE_FLOAT16, M, K, 0.0f, false);
        const Quantized qb = quantize(tensor_bytes(B), BNB_DTYPE_FLOAT16, N, K, 0.0f, false);
        EXPECT_TRUE(bits_equal(qa.codes.data(), golden.tensor("CA").data, M * K, 1)) << "CA";
        EXPECT_TRUE(bits_equal(qa.stats.data(), golden.tensor("SA").data, M, 4)) << "SA";
        EXPECT_TRUE(bits_equal(qb.codes.data(), golden.tensor("CB").data, N * K, 1)) << "CB";
        EXPECT_TRUE(bits_equal(qb.stats.data(), golden.tensor("SB").data, N, 4)) << "SB";

        // From upstream's codes and statistics, so that each step is checked on its own.
        const std::vector<uint8_t> CA = tensor_bytes(golden.tensor("CA")), CB = tensor_bytes(golden.tensor("CB"));
        const std::vector<uint8_t> SA = tensor_bytes(golden.tensor("SA")), SB = tensor_bytes(golden.tensor("SB"));
        std::vector<uint8_t> products = poisoned(static_cast<size_t>(M * N), 4);
        ASSERT_TRUE(succeeded(bnb_int8_linear_matmul(kCpu, nullptr, reinterpret_cast<const int8_t*>(CA.data()), M, K,
                                                     reinterpret_cast<const int8_t*>(CB.data()), N,
                                                     reinterpret_cast<int32_t*>(products.data()))));
        EXPECT_TRUE(bits_equal(products.data(), golden.tensor("acc_int32").data, M * N, 4)) << "acc_int32";
        const std::vector<uint8_t> acc = tensor_bytes(golden.tensor("acc_int32"));
        std::vector<uint8_t> out = poisoned(static_cast<size_t>(M * N), 2);
        ASSERT_TRUE(succeeded(bnb_int8_mm_dequant(kCpu, nullptr, reinterpret_cast<const int32_t*>(acc.data()), M, N,
                                                  reinterpret_cast<const float*>(SA.data()),
                                                  reinterpret_cast<const float*>(SB.data()), BNB_DTYPE_FLOAT16, nullptr,
                                                  BNB_DTYPE_FLOAT16, out.data())));
        EXPECT_TRUE(bits_equal(out.data(), golden.tensor("out").data, M * N, 2)) << "mm_dequant";
        std::vector<uint8_t> fused = poisoned(static_cast<size_t>(M * N), 2);
        ASSERT_TRUE(succeeded(bnb_int8_scaled_mm(kCpu, nullptr, BNB_DTYPE_FLOAT16, reinterpret_cast<const int8_t*>(CA.data()), M, K,
                                                 reinterpret_cast<const int8_t*>(CB.data()), N,
                                                 reinterpret_cast<const float*>(SA.data()),
                                                 reinterpret_cast<const float*>(SB.data()), BNB_DTYPE_FLOAT16, nullptr,
                                                 nullptr, nullptr, nullptr, nullptr, 0, fused.data())));
        EXPECT_TRUE(bits_equal(fused.data(), golden.tensor("out").data, M * N, 2)) << "scaled_mm";
        EXPECT_TRUE(guard_intact(products));
        EXPECT_TRUE(guard_intact(out));
        EXPECT_TRUE(guard_intact(fused));
    }
    EXPECT_GT(cases, 0) << "the manifest has no int8 product case";
}

// ---- quantization --------------------------------------------------------------------

TEST_P(CpuInt8, QuantizationFollowsTheFormulasAndMatchesScalar) {
    uint32_t seed = 1;
    for (bnb_dtype dtype : kFloatDtypes) {
        for (const Shape& shape : kQuantizeShapes) {
            for (float threshold : {0.0f, 2.5f, 6.0f}) {
                for (bool specials : {false, true}) {
                    const std::vector<float> values = make_activations(shape.rows, shape.cols, ++seed, specials);
                    const std::vector<uint8_t> A = encode(values, dtype);
                    const std::string where = GetParam() + " " + dtype_label(dtype) + " " + std::to_string(shape.rows) +
                                              "x" + std::to_string(shape.cols) + " threshold " + std::to_string(threshold) +
                                              (specials ? " specials" : "");
                    const Quantized q = quantize(A, dtype, shape.rows, shape.cols, threshold, true);
                    const Quantized rows_only = quantize(A, dtype, shape.rows, shape.cols, threshold, false);
                    const Quantized scalar = on_scalar_path(GetParam(), [&] {
                        return quantize(A, dtype, shape.rows, shape.cols, threshold, true);
                    });
                    expect_row_quantization(values, dtype, shape.rows, shape.cols, threshold, q, where);
                    expect_column_quantization(values, dtype, shape.rows, shape.cols, threshold, q, where);
                    EXPECT_EQ(q.codes, rows_only.codes) << where;
                    EXPECT_EQ(q.stats, rows_only.stats) << where;
                    EXPECT_EQ(q.outlier_cols, rows_only.outlier_cols) << where;
                    EXPECT_EQ(q.codes, scalar.codes) << where;
                    EXPECT_EQ(q.stats, scalar.stats) << where;
                    EXPECT_EQ(q.col_codes, scalar.col_codes) << where;
                    EXPECT_EQ(q.col_stats, scalar.col_stats) << where;
                    EXPECT_EQ(q.outlier_cols, scalar.outlier_cols) << where;
                }
            }
        }
    }
}

TEST_P(CpuInt8, OneRowZeroesOnlyItsOutlierElements) {
    const std::vector<float> values = {1.0f, 7.0f, -0.5f, -9.0f, 6.0f, 5.99f};
    const Quantized q = quantize(encode(values, BNB_DTYPE_FLOAT32), BNB_DTYPE_FLOAT32, 1, 6, 6.0f, false);
    EXPECT_EQ(q.outlier_cols, (std::vector<int64_t>{1, 3, 4}));
    EXPECT_EQ(decode(q.stats.data(), 0, BNB_DTYPE_FLOAT32), 5.99f);
    const std::vector<int32_t> expected = {21, 0, -11, 0, 0, 127};
    for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(code_at(q, c), expected[static_cast<size_t>(c)]) << c;
}

TEST_P(CpuInt8, EveryRowAnOutlierGivesZeroStatistics) {
    const std::vector<float> values = {8.0f, -9.0f, 10.0f, 11.0f};
    const Quantized q = quantize(encode(values, BNB_DTYPE_FLOAT16), BNB_DTYPE_FLOAT16, 2, 2, 6.0f, true);
    EXPECT_EQ(q.outlier_cols, (std::vector<int64_t>{0, 1}));
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(code_at(q, i), 0);
    for (size_t r = 0; r < 2; ++r) EXPECT_EQ(decode(q.stats.data(), r, BNB_DTYPE_FLOAT32), 0.0f);
}

// Large enough that rows and column stripes split among threads.
TEST_P(CpuInt8, ThreadedQuantizationMatchesScalar) {
    const int64_t rows = 600, cols = 777;
    const std::vector<float> values = make_activations(rows, cols, 77, true);
    for (bnb_dtype dtype : {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16}) {
        const std::vector<uint8_t> A = encode(values, dtype);
        const Quantized q = quantize(A, dtype, rows, cols, 6.0f, true);
        const Quantized scalar = on_scalar_path(GetParam(), [&] { return quantize(A, dtype, rows, cols, 6.0f, true); });
        EXPECT_EQ(q.codes, scalar.codes);
        EXPECT_EQ(q.stats, scalar.stats);
        EXPECT_EQ(q.col_codes, scalar.col_codes);
        EXPECT_EQ(q.col_stats, scalar.col_stats);
        EXPECT_EQ(q.outlier_cols, scalar.outlier_cols);
        expect_row_quantization(values, dtype, rows, cols, 6.0f, q, dtype_label(dtype));
    }
}

TEST_P(CpuInt8, VectorwiseDequantFollowsTheFormula) {
    for (bnb_dtype dtype : kFloatDtypes) {
        for (const Shape& shape : kQuantizeShapes) {
            const int64_t n = shape.rows * shape.cols;
            const std::vector<int8_t> codes = random_codes(n, static_cast<uint32_t>(n));
            std::vector<float> stats = random_stats(shape.rows, 5);
            stats[0] = 0.0f;
            std::vector<uint8_t> out = poisoned(static_cast<size_t>(n), dtype_size(dtype));
            ASSERT_TRUE(succeeded(bnb_int8_vectorwise_dequant(kCpu, nullptr, dtype, codes.data(), stats.data(),
                                                              shape.rows, shape.cols, out.data())));
            std::vector<float> expected(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) {
                const float scaled = static_cast<float>(codes[static_cast<size_t>(i)]) * stats[static_cast<size_t>(i / shape.cols)];
                expected[static_cast<size_t>(i)] = scaled * kInverse127;
            }
            EXPECT_TRUE(bits_equal(out.data(), encode(expected, dtype).data(), n, dtype_size(dtype)))
                << GetParam() << " " << dtype_label(dtype) << " " << shape.rows << "x" << shape.cols;
            EXPECT_TRUE(guard_intact(out));
        }
    }
}

// ---- the int8 product --------------------------------------------------------------

struct MatmulShape {
    int64_t M, N, K;
};

// Every tail: K around the steps (16, 32, 64 bytes), M and N around the
// micro-kernel (2 or 4 rows, 4 columns) and the tiles (64 x 64).
constexpr MatmulShape kMatmulShapes[] = {{1, 1, 1},    {1, 1, 0},     {3, 5, 0},    {1, 7, 3},   {2, 3, 4},
                                         {5, 4, 15},   {4, 9, 16},    {7, 6, 17},   {1, 130, 63}, {3, 65, 64},
                                         {9, 2, 65},   {67, 1, 100},  {65, 67, 127}, {1, 33, 255}, {130, 129, 257},
                                         {16, 64, 1000}, {2, 70, 4097}};

enum class Fill { kRandom, kAllMax, kAllMin, kMinTimesMax, kZeros, kOneOutlierPerRow };

std::vector<int8_t> fill_codes(Fill fill, int64_t rows, int64_t K, bool is_b, uint32_t seed) {
    std::vector<int8_t> codes(static_cast<size_t>(rows * K));
    switch (fill) {
        case Fill::kRandom: codes = random_codes(rows * K, seed); break;
        case Fill::kAllMax: std::fill(codes.begin(), codes.end(), int8_t{127}); break;
        case Fill::kAllMin: std::fill(codes.begin(), codes.end(), int8_t{-128}); break;
        case Fill::kMinTimesMax: std::fill(codes.begin(), codes.end(), is_b ? int8_t{127} : int8_t{-128}); break;
        case Fill::kZeros: break;
        case Fill::kOneOutlierPerRow:
            for (int64_t r = 0; r < rows && K > 0; ++r) codes[static_cast<size_t>(r * K + (r * 7 + 3) % K)] = (r & 1) ? -128 : 127;
            break;
    }
    return codes;
}

// A . B^T in int64, reduced modulo 2^32 as the int32 result is.
std::vector<int32_t> reference_product(const std::vector<int8_t>& A, const std::vector<int8_t>& B, int64_t M, int64_t N,
                                       int64_t K) {
    std::vector<int32_t> out(static_cast<size_t>(M * N));
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
            int64_t sum = 0;
            for (int64_t k = 0; k < K; ++k) sum += int64_t{A[static_cast<size_t>(m * K + k)]} * B[static_cast<size_t>(n * K + k)];
            out[static_cast<size_t>(m * N + n)] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(sum)));
        }
    }
    return out;
}

std::vector<uint8_t> linear_matmul(const std::vector<int8_t>& A, const std::vector<int8_t>& B, int64_t M, int64_t N,
                                   int64_t K) {
    std::vector<uint8_t> out = poisoned(static_cast<size_t>(M * N), 4);
    EXPECT_TRUE(succeeded(bnb_int8_linear_matmul(kCpu, nullptr, A.data(), M, K, B.data(), N,
                                                 reinterpret_cast<int32_t*>(out.data()))));
    EXPECT_TRUE(guard_intact(out));
    return out;
}

TEST_P(CpuInt8, ProductIsExactForRandomAndExtremeInputs) {
    uint32_t seed = 100;
    for (const MatmulShape& s : kMatmulShapes) {
        for (Fill fill : {Fill::kRandom, Fill::kAllMax, Fill::kAllMin, Fill::kMinTimesMax, Fill::kZeros, Fill::kOneOutlierPerRow}) {
            // Vectors need a non-null pointer even for K == 0.
            std::vector<int8_t> A = fill_codes(fill, s.M, s.K, false, ++seed), B = fill_codes(fill, s.N, s.K, true, ++seed);
            A.push_back(0);
            B.push_back(0);
            const std::vector<uint8_t> out = linear_matmul(A, B, s.M, s.N, s.K);
            const std::vector<int32_t> expected = reference_product(A, B, s.M, s.N, s.K);
            EXPECT_TRUE(bits_equal(out.data(), expected.data(), s.M * s.N, 4))
                << GetParam() << " " << s.M << "x" << s.N << "x" << s.K << " fill " << static_cast<int>(fill);
        }
    }
}

// 140000 products of -128 * -128 exceed 2^31: the result wraps as int32 arithmetic does.
TEST_P(CpuInt8, ProductWrapsModulo2To32) {
    const int64_t K = 140000;
    const std::vector<int8_t> A(static_cast<size_t>(2 * K), int8_t{-128}), B(static_cast<size_t>(3 * K), int8_t{-128});
    const std::vector<uint8_t> out = linear_matmul(A, B, 2, 3, K);
    const std::vector<int32_t> expected = reference_product(A, B, 2, 3, K);
    EXPECT_TRUE(bits_equal(out.data(), expected.data(), 6, 4));
}

// ---- rescale: int8_mm_dequant and int8_scaled_mm ---------------------------------------

// int32 products with the extremes of the type among them.
std::vector<int32_t> random_products(int64_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> values(static_cast<size_t>(count));
    for (int32_t& value : values) {
        const uint32_t kind = rng() % 8;
        value = kind == 0 ? INT32_MAX : kind == 1 ? INT32_MIN : kind == 2 ? 0 : static_cast<int32_t>(rng() % 4000001) - 2000000;
    }
    return values;
}

constexpr bnb_dtype kNoBias = static_cast<bnb_dtype>(-1);

std::vector<float> random_bias(int64_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> gaussian(0.0f, 4.0f);
    std::vector<float> bias(static_cast<size_t>(count));
    for (float& value : bias) value = gaussian(rng);
    return bias;
}

// upstream's CUDA rescale (formats.md 5.3): one FMA, rounded once to dtype.
float rescaled(int32_t product, float row_stat, float col_stat, float bias) {
    const float scaled = static_cast<float>(product) * row_stat;
    return std::fma(scaled * col_stat, kInverse127Squared, bias);
}

TEST_P(CpuInt8, MmDequantIsTheFormulaBitForBit) {
    const int64_t rows = 19, cols = 70;
    const std::vector<int32_t> products = random_products(rows * cols, 3);
    const std::vector<float> row_stats = random_stats(rows, 4), col_stats = random_stats(cols, 5);
    const std::vector<float> bias_values = random_bias(cols, 6);
    for (bnb_dtype dtype : kFloatDtypes) {
        for (bnb_dtype bias_dtype : {kNoBias, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16, BNB_DTYPE_FLOAT32}) {
            const bool has_bias = bias_dtype != kNoBias;
            const std::vector<uint8_t> bias = has_bias ? encode(bias_values, bias_dtype) : std::vector<uint8_t>{};
            std::vector<uint8_t> out = poisoned(static_cast<size_t>(rows * cols), dtype_size(dtype));
            ASSERT_TRUE(succeeded(bnb_int8_mm_dequant(kCpu, nullptr, products.data(), rows, cols, row_stats.data(),
                                                      col_stats.data(), has_bias ? bias_dtype : BNB_DTYPE_FLOAT32,
                                                      has_bias ? bias.data() : nullptr, dtype, out.data())));
            std::vector<float> expected(static_cast<size_t>(rows * cols));
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t c = 0; c < cols; ++c) {
                    const float b = has_bias ? decode(bias.data(), static_cast<size_t>(c), bias_dtype) : 0.0f;
                    expected[static_cast<size_t>(r * cols + c)] =
                        rescaled(at(products, r * cols + c), at(row_stats, r), at(col_stats, c), b);
                }
            }
            EXPECT_TRUE(bits_equal(out.data(), encode(expected, dtype).data(), rows * cols, dtype_size(dtype)))
                << GetParam() << " out " << dtype_label(dtype) << " bias " << (has_bias ? dtype_label(bias_dtype) : "none");
            EXPECT_TRUE(guard_intact(out));
        }
    }
}

struct ScaledMmCase {
    int64_t M = 0, N = 0, K = 0;
    std::vector<int8_t> A, B;
    std::vector<float> row_stats, col_stats;
};

ScaledMmCase scaled_mm_case(const MatmulShape& s, uint32_t seed) {
    return {s.M, s.N, s.K, fill_codes(Fill::kRandom, s.M, s.K, false, seed), fill_codes(Fill::kRandom, s.N, s.K, true, seed + 1),
            random_stats(s.M, seed + 2), random_stats(s.N, seed + 3)};
}

std::vector<uint8_t> scaled_mm(const ScaledMmCase& c, bnb_dtype dtype, bnb_dtype bias_dtype, const void* bias,
                               const void* X, const int64_t* outlier_cols, const int64_t* outlier_count) {
    std::vector<uint8_t> out = poisoned(static_cast<size_t>(c.M * c.N), dtype_size(dtype));
    EXPECT_TRUE(succeeded(bnb_int8_scaled_mm(kCpu, nullptr, dtype, c.A.data(), c.M, c.K, c.B.data(), c.N,
                                             c.row_stats.data(), c.col_stats.data(), bias_dtype, bias, X, outlier_cols,
                                             outlier_count, nullptr, 0, out.data())));
    EXPECT_TRUE(guard_intact(out));
    return out;
}

TEST_P(CpuInt8, ScaledMmIsMmDequantOfTheProduct) {
    uint32_t seed = 7;
    for (const MatmulShape& s : kMatmulShapes) {
        ScaledMmCase c = scaled_mm_case(s, seed += 5);
        c.A.push_back(0);
        c.B.push_back(0);
        const std::vector<uint8_t> products = linear_matmul(c.A, c.B, s.M, s.N, s.K);
        const std::vector<float> bias_values = random_bias(s.N, seed);
        for (bnb_dtype dtype : kFloatDtypes) {
            for (bnb_dtype bias_dtype : {kNoBias, dtype, BNB_DTYPE_FLOAT32}) {
                const bool has_bias = bias_dtype != kNoBias;
                const bnb_dtype passed_bias_dtype = has_bias ? bias_dtype : BNB_DTYPE_FLOAT32;
                const std::vector<uint8_t> bias = has_bias ? encode(bias_values, bias_dtype) : std::vector<uint8_t>{};
                const void* bias_pointer = has_bias ? bias.data() : nullptr;
                std::vector<uint8_t> expected = poisoned(static_cast<size_t>(s.M * s.N), dtype_size(dtype));
                ASSERT_TRUE(succeeded(bnb_int8_mm_dequant(kCpu, nullptr, reinterpret_cast<const int32_t*>(products.data()),
                                                          s.M, s.N, c.row_stats.data(), c.col_stats.data(),
                                                          passed_bias_dtype, bias_pointer, dtype, expected.data())));
                const std::vector<uint8_t> out = scaled_mm(c, dtype, passed_bias_dtype, bias_pointer, nullptr, nullptr, nullptr);
                EXPECT_TRUE(bits_equal(out.data(), expected.data(), s.M * s.N, dtype_size(dtype)))
                    << GetParam() << " " << s.M << "x" << s.N << "x" << s.K << " " << dtype_label(dtype);
            }
        }
    }
}

// The LLM.int8() linear layer: activations quantized with outlier columns, a
// weight quantized without; the result against float64 arithmetic on the
// same quantized operands (one rounding to dtype, float32 sums), and byte for
// byte against the scalar path.
TEST_P(CpuInt8, ScaledMmWithOutliersMatchesAFloat64Reference) {
    uint32_t seed = 40;
    for (const MatmulShape& s : {MatmulShape{1, 5, 37}, MatmulShape{7, 66, 200}, MatmulShape{70, 130, 300}, MatmulShape{3, 17, 700}}) {
        for (bnb_dtype dtype : kFloatDtypes) {
            std::vector<float> x_values = make_activations(s.M, s.K, ++seed, false);
            x_values[3] = 9.0f;  // at least one outlier column
            const std::vector<uint8_t> X = encode(x_values, dtype);
            const Quantized qx = quantize(X, dtype, s.M, s.K, 6.0f, false);
            const Quantized qw = quantize(encode(make_activations(s.N, s.K, ++seed, false), dtype), dtype, s.N, s.K, 0.0f, false);
            ScaledMmCase c{s.M, s.N, s.K, {}, {}, {}, {}};
            c.A.assign(reinterpret_cast<const int8_t*>(qx.codes.data()), reinterpret_cast<const int8_t*>(qx.codes.data()) + s.M * s.K);
            c.B.assign(reinterpret_cast<const int8_t*>(qw.codes.data()), reinterpret_cast<const int8_t*>(qw.codes.data()) + s.N * s.K);
            c.row_stats.resize(static_cast<size_t>(s.M));
            c.col_stats.resize(static_cast<size_t>(s.N));
            std::memcpy(c.row_stats.data(), qx.stats.data(), c.row_stats.size() * 4);
            std::memcpy(c.col_stats.data(), qw.stats.data(), c.col_stats.size() * 4);
            ASSERT_FALSE(qx.outlier_cols.empty());
            const std::vector<uint8_t> bias = encode(random_bias(s.N, seed), dtype);
            const int64_t count = static_cast<int64_t>(qx.outlier_cols.size());
            // The C ABI reads outlier_cols as K entries of capacity (the used prefix is count).
            std::vector<int64_t> outlier_cols = qx.outlier_cols;
            outlier_cols.resize(static_cast<size_t>(s.K));
            const std::vector<uint8_t> out = scaled_mm(c, dtype, dtype, bias.data(), X.data(), outlier_cols.data(), &count);
            const std::vector<uint8_t> scalar = on_scalar_path(GetParam(), [&] {
                return scaled_mm(c, dtype, dtype, bias.data(), X.data(), outlier_cols.data(), &count);
            });
            const std::string where = GetParam() + " " + dtype_label(dtype) + " " + std::to_string(s.M) + "x" +
                                      std::to_string(s.N) + "x" + std::to_string(s.K);
            EXPECT_EQ(out, scalar) << where;
            const double unit = std::ldexp(1.0, dtype == BNB_DTYPE_FLOAT32 ? -24 : dtype == BNB_DTYPE_FLOAT16 ? -11 : -8);
            int64_t wrong = 0;
            for (int64_t m = 0; m < s.M; ++m) {
                for (int64_t n = 0; n < s.N; ++n) {
                    double product = 0.0;
                    for (int64_t k = 0; k < s.K; ++k) product += static_cast<double>(at(c.A, m * s.K + k)) * at(c.B, n * s.K + k);
                    double expected = product * at(c.row_stats, m) * at(c.col_stats, n) / (127.0 * 127.0) +
                                      decode(bias.data(), static_cast<size_t>(n), dtype);
                    double magnitude = std::fabs(expected);
                    for (int64_t column : qx.outlier_cols) {
                        const float dequantized = static_cast<float>(at(c.B, n * s.K + column)) * at(c.col_stats, n);
                        const float weight = rounded_to(dequantized * kInverse127, dtype);
                        const double term = double{decode(X.data(), static_cast<size_t>(m * s.K + column), dtype)} * weight;
                        expected += term;
                        magnitude += std::fabs(term);
                    }
                    const double actual = decode(out.data(), static_cast<size_t>(m * s.N + n), dtype);
                    const double tolerance = unit * std::fabs(expected) + 1e-6 * magnitude + 1e-30;
                    if (!(std::fabs(actual - expected) <= tolerance) && ++wrong <= 5) {
                        ADD_FAILURE() << where << " [" << m << ", " << n << "] = " << actual << ", expected " << expected;
                    }
                }
            }
        }
    }
}

// outlier_count is device data: a count past K is taken as K, a negative one as
// none, and indices outside [0, K) add nothing.
TEST_P(CpuInt8, ScaledMmClampsTheOutlierCount) {
    const MatmulShape s{3, 9, 5};
    const ScaledMmCase c = scaled_mm_case(s, 9);
    const std::vector<uint8_t> X = encode(make_activations(s.M, s.K, 10, false), BNB_DTYPE_FLOAT32);
    const std::vector<int64_t> every_column = {0, 1, 2, 3, 4, 0, 0};
    const std::vector<int64_t> invalid_among_them = {0, -1, 1, 2, 99, 3, 4};
    const std::vector<int64_t> valid_of_first_five = {0, 1, 2};
    const int64_t all = 5, too_many = 7, three = 3, negative = -3;
    const auto run = [&](const std::vector<int64_t>& columns, const int64_t* count) {
        return scaled_mm(c, BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT32, nullptr, X.data(), columns.data(), count);
    };
    EXPECT_EQ(run(invalid_among_them, &too_many), run(valid_of_first_five, &three));
    EXPECT_NE(run(every_column, &all), run(valid_of_first_five, &three));
    EXPECT_EQ(run(every_column, &too_many), run(every_column, &all));
    EXPECT_EQ(run(every_column, &negative), scaled_mm(c, BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT32, nullptr, nullptr, nullptr, nullptr));
}

INSTANTIATE_TEST_SUITE_P(Variant, CpuInt8, ::testing::ValuesIn(supported_cpu_variants()), cpu_variant_name);

}  // namespace
