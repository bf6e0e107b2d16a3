// The LLM.int8() ops on a CUDA device through the C ABI alone: upstream's golden
// bytes (CB, SCB, outlier columns, int32 product, dequantized output), the
// quantizers' outlier handling on every launch path, the exact int32 product
// against an int64 reference (random and extreme inputs, odd shapes), int8_scaled_mm
// against a float64 reference with outlier columns and bias on every kernel path,
// the workspace query, and a CUDA graph of quantize + int8_scaled_mm.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "cuda/device_buffer.h"
#include "support/abi_assertions.h"
#include "support/golden.h"
#include "support/golden_params.h"

using namespace bnb_test;

namespace {

constexpr bnb_device kCuda = {BNB_DEVICE_CUDA, 0};
constexpr float kInv127 = 7.874015718698502e-3f;
constexpr float kInv127Squared = 6.200012e-05f;

// ---- host values of the float dtypes ------------------------------------------------------
size_t element_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

uint16_t bf16_bits(float value) {
    const uint32_t bits = std::bit_cast<uint32_t>(value);
    return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// `value` rounded to `dtype` (nearest even), as float.
float round_to(float value, bnb_dtype dtype) {
    if (dtype == BNB_DTYPE_FLOAT16) return static_cast<float>(static_cast<_Float16>(value));
    if (dtype == BNB_DTYPE_BFLOAT16) return std::bit_cast<float>(uint32_t{bf16_bits(value)} << 16);
    return value;
}

std::vector<uint8_t> encode(const std::vector<float>& values, bnb_dtype dtype) {
    std::vector<uint8_t> bytes(values.size() * element_size(dtype));
    for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(bytes.data() + 4 * i, &values[i], 4);
        } else {
            const uint16_t half = dtype == BNB_DTYPE_FLOAT16 ? std::bit_cast<uint16_t>(static_cast<_Float16>(values[i]))
                                                             : bf16_bits(values[i]);
            std::memcpy(bytes.data() + 2 * i, &half, 2);
        }
    }
    return bytes;
}

std::vector<float> decode(const std::vector<uint8_t>& bytes, bnb_dtype dtype) {
    std::vector<float> values(bytes.size() / element_size(dtype));
    for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(&values[i], bytes.data() + 4 * i, 4);
        } else {
            uint16_t half;
            std::memcpy(&half, bytes.data() + 2 * i, 2);
            values[i] = dtype == BNB_DTYPE_FLOAT16 ? static_cast<float>(std::bit_cast<_Float16>(half))
                                                   : std::bit_cast<float>(uint32_t{half} << 16);
        }
    }
    return values;
}

template <typename T>
std::vector<T> download_as(const DeviceBuffer& buffer, size_t count) {
    const std::vector<uint8_t> bytes = buffer.download(count * sizeof(T));
    std::vector<T> values(count);
    std::memcpy(values.data(), bytes.data(), count * sizeof(T));
    return values;
}

const char* dtype_name(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT16 ? "fp16" : dtype == BNB_DTYPE_BFLOAT16 ? "bf16" : "fp32";
}

class CudaInt8 : public ::testing::Test {
protected:
    void SetUp() override {
        if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
        if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
        ASSERT_TRUE(cuda_ok(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)));
    }
    void TearDown() override {
        if (stream_ != nullptr) cudaStreamDestroy(stream_);
    }
    ::testing::AssertionResult synchronized() { return cuda_ok(cudaStreamSynchronize(stream_)); }

    cudaStream_t stream_ = nullptr;
};

// ---- golden ------------------------------------------------------------------------------------
class CudaGoldenInt8 : public GoldenCaseTest {
protected:
    void SetUp() override {
        if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
        if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
        GoldenCaseTest::SetUp();
    }
};

TEST_P(CudaGoldenInt8, MatchesUpstream) {
    const GoldenCase& golden = GetParam();
    if (golden.has("CB") && golden.has("SCB") && !golden.has("acc_int32")) {
        const TensorView& A = golden.tensor("A");
        const int64_t rows = A.shape[0];
        const int64_t cols = A.shape[1];
        const float threshold = static_cast<float>(golden.args.at("threshold").number);
        const DeviceBuffer input(A);
        for (const bool double_quant : {false, true}) {
            SCOPED_TRACE(double_quant ? "int8_double_quant" : "int8_vectorwise_quant");
            DeviceBuffer out(rows * cols), out_col(rows * cols), row_stats(rows * 4), col_stats(cols * 4);
            DeviceBuffer outlier_cols(cols * 8), count(8);
            const bnb_status status =
                double_quant
                    ? bnb_int8_double_quant(kCuda, nullptr, BNB_DTYPE_FLOAT16, input.get(), rows, cols, threshold,
                                            out.get<int8_t>(), out_col.get<int8_t>(), row_stats.get<float>(),
                                            col_stats.get<float>(), outlier_cols.get<int64_t>(), count.get<int64_t>())
                    : bnb_int8_vectorwise_quant(kCuda, nullptr, BNB_DTYPE_FLOAT16, input.get(), rows, cols, threshold,
                                                out.get<int8_t>(), row_stats.get<float>(),
                                                outlier_cols.get<int64_t>(), count.get<int64_t>());
            ASSERT_TRUE(succeeded(status));
            ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
            EXPECT_TRUE(bits_equal(out.download().data(), golden.tensor("CB").data, rows * cols, 1));
            EXPECT_TRUE(bits_equal(row_stats.download().data(), golden.tensor("SCB").data, rows, 4));
            if (golden.has("outlier_cols")) {
                const TensorView& expected = golden.tensor("outlier_cols");
                const int64_t found = download_as<int64_t>(count, 1)[0];
                ASSERT_EQ(found, expected.numel());
                // Only the first `found` entries are written: the rest of the buffer stays uninitialized.
                EXPECT_TRUE(bits_equal(download_as<int64_t>(outlier_cols, found).data(), expected.data, found, 8));
            }
        }
        return;
    }
    // linear_matmul: the int32 product of upstream's codes, then int8_mm_dequant.
    const TensorView& CA = golden.tensor("CA");
    const TensorView& CB = golden.tensor("CB");
    const int64_t M = CA.shape[0];
    const int64_t K = CA.shape[1];
    const int64_t N = CB.shape[0];
    const DeviceBuffer a(CA), b(CB), sa(golden.tensor("SA")), sb(golden.tensor("SB"));
    DeviceBuffer product(M * N * 4), out(M * N * 2);
    ASSERT_TRUE(succeeded(bnb_int8_linear_matmul(kCuda, nullptr, a.get<int8_t>(), M, K, b.get<int8_t>(), N,
                                                 product.get<int32_t>())));
    ASSERT_TRUE(succeeded(bnb_int8_mm_dequant(kCuda, nullptr, product.get<int32_t>(), M, N, sa.get<float>(),
                                              sb.get<float>(), BNB_DTYPE_FLOAT16, nullptr, BNB_DTYPE_FLOAT16,
                                              out.get())));
    ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
    EXPECT_TRUE(bits_equal(product.download().data(), golden.tensor("acc_int32").data, M * N, 4));
    EXPECT_TRUE(bits_equal(out.download().data(), golden.tensor("out").data, M * N, 2));
}

// Case names hold dots ("vectorwise_quant_thr6.0"), which GoogleTest rejects.
std::string int8_case_name(const ::testing::TestParamInfo<GoldenCase>& info) {
    std::string name = info.param.name;
    std::replace(name.begin(), name.end(), '.', '_');
    return name;
}

INSTANTIATE_TEST_SUITE_P(Upstream, CudaGoldenInt8, ::testing::ValuesIn(golden_cases_with_role("int8", "A")),
                         int8_case_name);

// ---- quantizers -------------------------------------------------------------------------------------
struct QuantizeShape {
    int64_t rows;
    int64_t cols;
};

// Values of N(0, 1) with a few planted outliers (|a| in [6, 20]), in `dtype`.
std::vector<float> activations(int64_t rows, int64_t cols, bnb_dtype dtype, unsigned seed, int outliers) {
    std::mt19937 generator(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(rows * cols));
    for (float& v : values) v = round_to(std::clamp(normal(generator), -5.0f, 5.0f), dtype);
    std::uniform_int_distribution<int64_t> position(0, rows * cols - 1);
    std::uniform_real_distribution<float> magnitude(6.0f, 20.0f);
    for (int i = 0; i < outliers; ++i) {
        values[static_cast<size_t>(position(generator))] = round_to((i % 2 ? -1.0f : 1.0f) * magnitude(generator), dtype);
    }
    return values;
}

// Every launch path: threshold 0 (warp rows, block rows), outliers with one block
// (rows <= 16, one row included) and with a column pass (more rows), aligned and
// unaligned widths, and for both ops.
TEST_F(CudaInt8, QuantizersFollowTheFormat) {
    // 300 and 1100 rows split the column pass (kColumnSplitRows); 5 x 9000 takes the
    // one-block path over several column chunks.
    const QuantizeShape shapes[] = {{1, 4096},   {1, 100},   {7, 333},    {16, 4096}, {17, 64},
                                    {300, 520},  {130, 2056}, {64, 3000}, {1100, 72}, {5, 9000}};
    const bnb_dtype dtypes[] = {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16, BNB_DTYPE_FLOAT32};
    unsigned seed = 1;
    for (const QuantizeShape& shape : shapes) {
        for (const bnb_dtype dtype : dtypes) {
            for (const float threshold : {0.0f, 6.0f}) {
                for (const bool double_quant : {false, true}) {
                    const int64_t rows = shape.rows, cols = shape.cols;
                    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols) + " " + dtype_name(dtype) +
                                 " threshold " + std::to_string(threshold) + (double_quant ? " double" : ""));
                    const std::vector<float> A = activations(rows, cols, dtype, ++seed, 5);
                    const DeviceBuffer input(encode(A, dtype).data(), A.size() * element_size(dtype));
                    DeviceBuffer out(rows * cols), out_col(rows * cols), row_stats(rows * 4), col_stats(cols * 4);
                    DeviceBuffer outlier_cols(cols * 8), count(8);
                    // Garbage where the flags live: nothing may depend on the buffer's old bytes.
                    ASSERT_TRUE(cuda_ok(cudaMemset(outlier_cols.get(), 0x5a, cols * 8)));
                    ASSERT_TRUE(cuda_ok(cudaMemset(count.get(), 0x7f, 8)));
                    ASSERT_TRUE(cuda_ok(cudaMemset(col_stats.get(), 0x5a, cols * 4)));
                    ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));  // uploads run on the legacy stream
                    const bnb_status status =
                        double_quant ? bnb_int8_double_quant(kCuda, stream_, dtype, input.get(), rows, cols, threshold,
                                                             out.get<int8_t>(), out_col.get<int8_t>(),
                                                             row_stats.get<float>(), col_stats.get<float>(),
                                                             outlier_cols.get<int64_t>(), count.get<int64_t>())
                                     : bnb_int8_vectorwise_quant(kCuda, stream_, dtype, input.get(), rows, cols,
                                                                 threshold, out.get<int8_t>(), row_stats.get<float>(),
                                                                 outlier_cols.get<int64_t>(), count.get<int64_t>());
                    ASSERT_TRUE(succeeded(status));
                    ASSERT_TRUE(synchronized());
                    const auto q = download_as<int8_t>(out, rows * cols);
                    const auto stats = download_as<float>(row_stats, rows);
                    std::set<int64_t> expected_columns;
                    std::vector<float> expected_col_stats(cols, 0.0f);
                    const auto is_outlier = [&](float a) { return threshold > 0 && std::fabs(a) >= threshold; };
                    for (int64_t r = 0; r < rows; ++r) {
                        for (int64_t c = 0; c < cols; ++c) {
                            const float a = A[r * cols + c];
                            if (is_outlier(a)) {
                                expected_columns.insert(c);
                            } else {
                                expected_col_stats[c] = std::max(expected_col_stats[c], std::fabs(a));
                            }
                        }
                    }
                    int64_t bad = 0;
                    for (int64_t r = 0; r < rows; ++r) {
                        float absmax = 0.0f;
                        for (int64_t c = 0; c < cols; ++c) {
                            if (!is_outlier(A[r * cols + c])) absmax = std::max(absmax, std::fabs(A[r * cols + c]));
                        }
                        EXPECT_EQ(stats[r], absmax) << "row " << r;
                        for (int64_t c = 0; c < cols; ++c) {
                            const float a = A[r * cols + c];
                            const bool zero = is_outlier(a) || (rows > 1 && expected_columns.count(c) != 0);
                            const int code = q[r * cols + c];
                            // Fast division moves about 1 in 40,000 codes by one (golden checks the bytes).
                            const double exact = std::nearbyint(static_cast<double>(a) * 127.0 / absmax);
                            if (zero ? code != 0 : std::fabs(code - exact) > 1) ++bad;
                        }
                    }
                    EXPECT_EQ(bad, 0);
                    if (threshold > 0) {
                        const int64_t found = download_as<int64_t>(count, 1)[0];
                        ASSERT_EQ(found, static_cast<int64_t>(expected_columns.size()));
                        const auto columns = download_as<int64_t>(outlier_cols, static_cast<size_t>(found));
                        EXPECT_EQ(std::vector<int64_t>(expected_columns.begin(), expected_columns.end()), columns);
                    }
                    if (double_quant) {
                        const auto col_q = download_as<int8_t>(out_col, rows * cols);
                        EXPECT_EQ(download_as<float>(col_stats, cols), expected_col_stats);
                        int64_t bad_columns = 0;
                        for (int64_t i = 0; i < rows * cols; ++i) {
                            const float a = is_outlier(A[i]) ? 0.0f : A[i];
                            const float stat = expected_col_stats[i % cols];
                            if (stat == 0.0f) continue;
                            const float expected = std::nearbyint(round_to(a * 127.0f, dtype) / stat);
                            if (col_q[i] != static_cast<int8_t>(expected)) ++bad_columns;
                        }
                        EXPECT_EQ(bad_columns, 0);
                    }
                }
            }
        }
    }
}

// ---- exact int32 product ----------------------------------------------------------------------------
struct MatmulShape {
    int64_t M;
    int64_t N;
    int64_t K;
};

enum class Fill { kRandom, kExtreme, kZeros, kOneOutlierPerRow };

std::vector<int8_t> int8_values(int64_t count, Fill fill, unsigned seed, int64_t row_length) {
    std::mt19937 generator(seed);
    std::uniform_int_distribution<int> value(-128, 127);
    std::bernoulli_distribution sign(0.5);
    std::vector<int8_t> values(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
        switch (fill) {
            case Fill::kRandom: values[i] = static_cast<int8_t>(value(generator)); break;
            case Fill::kExtreme: values[i] = static_cast<int8_t>(sign(generator) ? 127 : -127); break;
            case Fill::kZeros: values[i] = 0; break;
            case Fill::kOneOutlierPerRow: values[i] = static_cast<int8_t>(i % row_length == (i / row_length) % row_length ? -128 : value(generator) / 32); break;
        }
    }
    return values;
}

std::vector<int64_t> int_reference(const std::vector<int8_t>& A, const std::vector<int8_t>& B, int64_t M, int64_t N,
                                   int64_t K) {
    std::vector<int64_t> out(static_cast<size_t>(M * N), 0);
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
            int64_t sum = 0;
            for (int64_t k = 0; k < K; ++k) sum += int64_t{A[m * K + k]} * int64_t{B[n * K + k]};
            out[m * N + n] = sum;
        }
    }
    return out;
}

// Stream kernel (M <= 64, K % 16 == 0), cuBLASLt (more rows), generic (odd K), and
// odd M and N everywhere; all +-127 at K = 4096 reaches 66 million.
TEST_F(CudaInt8, LinearMatmulIsExact) {
    const MatmulShape shapes[] = {{1, 4096, 512}, {5, 77, 64},  {16, 256, 4096}, {33, 130, 96}, {64, 48, 16},
                                  {65, 96, 256},  {200, 33, 4096}, {3, 5, 7},   {70, 9, 1001}, {129, 17, 12},
                                  {1, 1, 1},      {8, 40, 0}};
    unsigned seed = 100;
    for (const MatmulShape& shape : shapes) {
        for (const Fill fill : {Fill::kRandom, Fill::kExtreme, Fill::kZeros, Fill::kOneOutlierPerRow}) {
            const int64_t M = shape.M, N = shape.N, K = shape.K;
            SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                         " fill " + std::to_string(static_cast<int>(fill)));
            const auto A = int8_values(M * K, fill, ++seed, std::max<int64_t>(K, 1));
            const auto B = int8_values(N * K, fill == Fill::kOneOutlierPerRow ? Fill::kRandom : fill, ++seed, 1);
            const DeviceBuffer a(A.data(), A.size()), b(B.data(), B.size());
            DeviceBuffer out(M * N * 4);
            ASSERT_TRUE(cuda_ok(cudaMemset(out.get(), 0xab, M * N * 4)));
            ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
            ASSERT_TRUE(succeeded(
                bnb_int8_linear_matmul(kCuda, stream_, a.get<int8_t>(), M, K, b.get<int8_t>(), N, out.get<int32_t>())));
            ASSERT_TRUE(synchronized());
            const auto got = download_as<int32_t>(out, M * N);
            const auto expected = int_reference(A, B, M, N, K);
            int64_t bad = 0;
            for (int64_t i = 0; i < M * N; ++i) bad += got[i] != expected[i];
            EXPECT_EQ(bad, 0);
        }
    }
}

// ---- int8_mm_dequant -----------------------------------------------------------------------------------
// Bit for bit against the formula on the host (one fma, then the output rounding).
TEST_F(CudaInt8, MmDequantIsTheFormula) {
    const int64_t rows = 37, cols = 203;
    std::mt19937 generator(7);
    std::uniform_int_distribution<int32_t> product(-2000000, 2000000);
    std::uniform_real_distribution<float> stat(0.01f, 8.0f);
    std::vector<int32_t> C(rows * cols);
    for (int32_t& c : C) c = product(generator);
    std::vector<float> row_stats(rows), col_stats(cols), bias(cols);
    for (float& s : row_stats) s = stat(generator);
    for (float& s : col_stats) s = stat(generator);
    for (float& b : bias) b = stat(generator) - 4.0f;
    const DeviceBuffer c(C.data(), C.size() * 4), rs(row_stats.data(), rows * 4), cs(col_stats.data(), cols * 4);
    for (const bnb_dtype dtype : {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16, BNB_DTYPE_FLOAT32}) {
        for (const bnb_dtype bias_dtype : {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16, BNB_DTYPE_FLOAT32}) {
            for (const bool with_bias : {false, true}) {
                SCOPED_TRACE(std::string(dtype_name(dtype)) + " bias " + (with_bias ? dtype_name(bias_dtype) : "none"));
                const std::vector<uint8_t> bias_bytes = encode(bias, bias_dtype);
                const DeviceBuffer b(bias_bytes.data(), bias_bytes.size());
                DeviceBuffer out(rows * cols * element_size(dtype));
                ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
                ASSERT_TRUE(succeeded(bnb_int8_mm_dequant(kCuda, stream_, c.get<int32_t>(), rows, cols,
                                                          rs.get<float>(), cs.get<float>(), bias_dtype,
                                                          with_bias ? b.get() : nullptr, dtype, out.get())));
                ASSERT_TRUE(synchronized());
                std::vector<float> expected(rows * cols);
                for (int64_t r = 0; r < rows; ++r) {
                    for (int64_t n = 0; n < cols; ++n) {
                        const float bias_value = with_bias ? round_to(bias[n], bias_dtype) : 0.0f;
                        const float scaled = static_cast<float>(C[r * cols + n]) * row_stats[r] * col_stats[n];
                        expected[r * cols + n] = std::fmaf(scaled, kInv127Squared, bias_value);
                    }
                }
                const std::vector<uint8_t> expected_bytes = encode(expected, dtype);
                EXPECT_TRUE(bits_equal(out.download().data(), expected_bytes.data(), rows * cols, element_size(dtype)));
            }
        }
    }
}

TEST_F(CudaInt8, VectorwiseDequantIsTheFormula) {
    const int64_t rows = 9, cols = 1000;
    const auto A = int8_values(rows * cols, Fill::kRandom, 3, 1);
    std::vector<float> stats(rows);
    for (int64_t r = 0; r < rows; ++r) stats[r] = 0.37f * static_cast<float>(r + 1);
    const DeviceBuffer a(A.data(), A.size()), s(stats.data(), rows * 4);
    for (const bnb_dtype dtype : {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16, BNB_DTYPE_FLOAT32}) {
        DeviceBuffer out(rows * cols * element_size(dtype));
        ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
        ASSERT_TRUE(succeeded(bnb_int8_vectorwise_dequant(kCuda, stream_, dtype, a.get<int8_t>(), s.get<float>(), rows,
                                                          cols, out.get())));
        ASSERT_TRUE(synchronized());
        std::vector<float> expected(rows * cols);
        for (int64_t i = 0; i < rows * cols; ++i) expected[i] = static_cast<float>(A[i]) * stats[i / cols] * kInv127;
        const std::vector<uint8_t> expected_bytes = encode(expected, dtype);
        EXPECT_TRUE(bits_equal(out.download().data(), expected_bytes.data(), rows * cols, element_size(dtype)));
    }
}

// ---- int8_scaled_mm ----------------------------------------------------------------------------------
struct ScaledCase {
    MatmulShape shape;
    // The workspace given: none (the cuBLASLt shapes fall back to the own kernels),
    // all that the query asks for, or one byte short of it (no room for the dense
    // outlier copies: the epilogue gathers by itself).
    enum Workspace { kNone, kFull, kShort } workspace;
};

// The float64 value of out[m, n]: the int8 part, the bias, and the outlier
// columns' product with the weight rounded to dtype as the op defines it.
double scaled_reference(const std::vector<int8_t>& A, const std::vector<int8_t>& B, const std::vector<float>& X,
                        const std::vector<float>& row_stats, const std::vector<float>& col_stats, double bias,
                        const std::vector<int64_t>& outliers, int64_t m, int64_t n, int64_t K, bnb_dtype dtype) {
    int64_t product = 0;
    for (int64_t k = 0; k < K; ++k) product += int64_t{A[m * K + k]} * int64_t{B[n * K + k]};
    double value = static_cast<double>(product) * row_stats[m] * col_stats[n] / (127.0 * 127.0) + bias;
    for (const int64_t c : outliers) {
        const float weight = round_to(static_cast<float>(B[n * K + c]) * col_stats[n] * kInv127, dtype);
        value += static_cast<double>(X[m * K + c]) * weight;
    }
    return value;
}

TEST_F(CudaInt8, ScaledMmMatchesAFloat64Reference) {
    const ScaledCase cases[] = {
        {{1, 300, 1024}, ScaledCase::kFull},   {{16, 64, 256}, ScaledCase::kFull},
        {{40, 100, 512}, ScaledCase::kFull},   {{64, 33, 48}, ScaledCase::kFull},
        {{150, 96, 256}, ScaledCase::kFull},   {{150, 96, 256}, ScaledCase::kNone},
        {{77, 50, 100}, ScaledCase::kFull},    {{9, 31, 13}, ScaledCase::kFull},
        {{100, 8, 44}, ScaledCase::kNone},
        // 14 outliers (one chunk) through the dense copies and, one byte short, staged.
        {{130, 96, 48}, ScaledCase::kFull},    {{130, 96, 48}, ScaledCase::kShort},
        // Epilogue blocks walking several row tiles, with the outlier weights
        // dense or staged once (14 outliers), and staged per chunk (19 outliers).
        {{2200, 2048, 32}, ScaledCase::kFull}, {{2200, 2048, 32}, ScaledCase::kShort},
        {{2200, 2048, 64}, ScaledCase::kFull},
    };
    unsigned seed = 1000;
    for (const ScaledCase& test : cases) {
        const int64_t M = test.shape.M, N = test.shape.N, K = test.shape.K;
        for (const bnb_dtype dtype : {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16, BNB_DTYPE_FLOAT32}) {
            for (const bool outliers : {false, true}) {
                SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + " " +
                             dtype_name(dtype) + (outliers ? " outliers" : "") +
                             (test.workspace == ScaledCase::kFull    ? ""
                              : test.workspace == ScaledCase::kNone ? " no workspace"
                                                                    : " short workspace"));
                const auto A = int8_values(M * K, Fill::kRandom, ++seed, 1);
                const auto B = int8_values(N * K, Fill::kRandom, ++seed, 1);
                std::mt19937 generator(++seed);
                std::uniform_real_distribution<float> stat(0.05f, 4.0f);
                std::vector<float> row_stats(M), col_stats(N), bias(N), X(M * K);
                for (float& s : row_stats) s = stat(generator);
                for (float& s : col_stats) s = stat(generator) / 16.0f;
                for (float& b : bias) b = round_to(stat(generator) - 2.0f, BNB_DTYPE_BFLOAT16);
                for (float& x : X) x = round_to(stat(generator) * 4.0f - 8.0f, dtype);
                // Outlier columns: up to 20 (more than one staged chunk), ascending, plus
                // unused entries past the count.
                std::vector<int64_t> columns;
                for (int64_t c = K / 7; c < K && columns.size() < 20; c += 1 + (K - K / 7) / 20) columns.push_back(c);
                std::vector<int64_t> column_buffer(static_cast<size_t>(std::max<int64_t>(K, 1)), K + 1000);
                std::copy(columns.begin(), columns.end(), column_buffer.begin());
                const int64_t count = static_cast<int64_t>(columns.size());
                const DeviceBuffer a(A.data(), A.size()), b(B.data(), B.size());
                const DeviceBuffer rs(row_stats.data(), M * 4), cs(col_stats.data(), N * 4);
                const std::vector<uint8_t> bias_bytes = encode(bias, BNB_DTYPE_BFLOAT16);
                const DeviceBuffer bias_buffer(bias_bytes.data(), bias_bytes.size());
                const std::vector<uint8_t> x_bytes = encode(X, dtype);
                const DeviceBuffer x(x_bytes.data(), x_bytes.size());
                const DeviceBuffer cols(column_buffer.data(), column_buffer.size() * 8), counted(&count, 8);
                int64_t workspace_bytes = 0;
                ASSERT_TRUE(succeeded(bnb_int8_scaled_mm_workspace_size(kCuda, dtype, M, N, K, outliers ? 1 : 0,
                                                                        &workspace_bytes)));
                if (M <= 64) EXPECT_EQ(workspace_bytes, 0);
                const int64_t given = test.workspace == ScaledCase::kFull    ? workspace_bytes
                                      : test.workspace == ScaledCase::kShort ? std::max<int64_t>(workspace_bytes - 1, 0)
                                                                             : 0;
                DeviceBuffer workspace(static_cast<size_t>(std::max<int64_t>(given, 1)));
                DeviceBuffer out(M * N * element_size(dtype));
                ASSERT_TRUE(cuda_ok(cudaMemset(out.get(), 0xff, M * N * element_size(dtype))));
                ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
                ASSERT_TRUE(succeeded(bnb_int8_scaled_mm(
                    kCuda, stream_, dtype, a.get<int8_t>(), M, K, b.get<int8_t>(), N, rs.get<float>(), cs.get<float>(),
                    BNB_DTYPE_BFLOAT16, bias_buffer.get(), outliers ? x.get() : nullptr,
                    outliers ? cols.get<int64_t>() : nullptr, outliers ? counted.get<int64_t>() : nullptr,
                    given > 0 ? workspace.get() : nullptr, given, out.get())));
                ASSERT_TRUE(synchronized());
                const std::vector<float> got = decode(out.download(), dtype);
                const double epsilon = dtype == BNB_DTYPE_FLOAT32 ? 1e-5 : dtype == BNB_DTYPE_FLOAT16 ? 1e-3 : 8e-3;
                int64_t bad = 0;
                double worst = 0.0;
                for (int64_t m = 0; m < M; ++m) {
                    for (int64_t n = 0; n < N; ++n) {
                        const double expected = scaled_reference(A, B, X, row_stats, col_stats, bias[n],
                                                                 outliers ? columns : std::vector<int64_t>{}, m, n, K, dtype);
                        const double error = std::fabs(got[m * N + n] - expected) / (std::fabs(expected) + 1.0);
                        worst = std::max(worst, std::isnan(error) ? INFINITY : error);
                        if (!(error <= epsilon)) ++bad;
                    }
                }
                EXPECT_EQ(bad, 0) << "worst relative error " << worst;
            }
        }
    }
}

// ---- CUDA graph of a linear forward -----------------------------------------------------------------
// quantize with outliers (the column pass + row pass path) and int8_scaled_mm on the
// cuBLASLt path, captured once, replayed on new activations: same bytes as eager.
TEST_F(CudaInt8, QuantizeAndScaledMmCaptureInAGraph) {
    for (const int64_t M : {int64_t{8}, int64_t{96}}) {
        SCOPED_TRACE("M=" + std::to_string(M));
        const int64_t N = 128, K = 512;
        const bnb_dtype dtype = BNB_DTYPE_FLOAT16;
        const auto B = int8_values(N * K, Fill::kRandom, 5, 1);
        std::vector<float> col_stats(N, 0.02f);
        const DeviceBuffer b(B.data(), B.size()), cs(col_stats.data(), N * 4);
        DeviceBuffer x(M * K * 2), q(M * K), row_stats(M * 4), columns(K * 8), count(8);
        DeviceBuffer eager_out(M * N * 2), graph_out(M * N * 2);
        int64_t workspace_bytes = 0;
        ASSERT_TRUE(succeeded(bnb_int8_scaled_mm_workspace_size(kCuda, dtype, M, N, K, 1, &workspace_bytes)));
        DeviceBuffer workspace(static_cast<size_t>(std::max<int64_t>(workspace_bytes, 1)));
        const auto forward = [&](void* out) {
            EXPECT_TRUE(succeeded(bnb_int8_vectorwise_quant(kCuda, stream_, dtype, x.get(), M, K, 6.0f, q.get<int8_t>(),
                                                            row_stats.get<float>(), columns.get<int64_t>(),
                                                            count.get<int64_t>())));
            EXPECT_TRUE(succeeded(bnb_int8_scaled_mm(kCuda, stream_, dtype, q.get<int8_t>(), M, K, b.get<int8_t>(), N,
                                                     row_stats.get<float>(), cs.get<float>(), BNB_DTYPE_FLOAT16,
                                                     nullptr, x.get(), columns.get<int64_t>(), count.get<int64_t>(),
                                                     workspace.get(), workspace_bytes, out)));
        };
        // cuBLASLt's handle and algorithm are set up outside the capture, as a caller's warm-up does,
        // on written input (the rounds below write theirs).
        ASSERT_TRUE(cuda_ok(cudaMemset(x.get(), 0, static_cast<size_t>(M * K * 2))));
        forward(eager_out.get());
        ASSERT_TRUE(synchronized());
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        ASSERT_TRUE(cuda_ok(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal)));
        forward(graph_out.get());
        ASSERT_TRUE(cuda_ok(cudaStreamEndCapture(stream_, &graph)));
        ASSERT_TRUE(cuda_ok(cudaGraphInstantiate(&exec, graph, 0)));
        for (unsigned round = 0; round < 3; ++round) {
            const std::vector<uint8_t> input = encode(activations(M, K, dtype, 50 + round, 3 + 2 * round), dtype);
            ASSERT_TRUE(cuda_ok(cudaMemcpy(x.get(), input.data(), input.size(), cudaMemcpyHostToDevice)));
            ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
            ASSERT_TRUE(cuda_ok(cudaGraphLaunch(exec, stream_)));
            ASSERT_TRUE(synchronized());
            const std::vector<uint8_t> replayed = graph_out.download();
            forward(eager_out.get());
            ASSERT_TRUE(synchronized());
            EXPECT_TRUE(bits_equal(replayed.data(), eager_out.download().data(), M * N, 2)) << "round " << round;
            EXPECT_EQ(download_as<int64_t>(count, 1)[0] > 0, true);
        }
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
    }
}

}  // namespace
