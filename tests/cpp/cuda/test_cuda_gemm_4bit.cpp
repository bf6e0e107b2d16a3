// bnb_gemm_4bit on a CUDA device through the C ABI alone: every M (fused kernels
// and dequantize + cuBLASLt) against a float64 product of the weight that the CPU
// backend dequantizes, the workspace size query, DEQUANTIZE with too little
// workspace, the bias epilogue, nested statistics and a CUDA graph capture.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "cuda/device_buffer.h"
#include "support/abi_assertions.h"

using namespace bnb_test;

namespace {

constexpr bnb_device kCuda = {BNB_DEVICE_CUDA, 0};
constexpr int64_t kBlocksize = 64;

// 16-bit encodings of values that fp16 and bf16 hold exactly (the test's A and
// bias are multiples of 1/8 below 16 in magnitude), and the decodings of any value.
uint16_t exact_half_bits(float value) {
    if (value == 0.0f) return 0;
    const uint32_t bits = std::bit_cast<uint32_t>(value);
    const uint32_t exponent = ((bits >> 23) & 0xffu) - 127u + 15u;
    return static_cast<uint16_t>(((bits >> 16) & 0x8000u) | (exponent << 10) | ((bits >> 13) & 0x3ffu));
}

float half_value(uint16_t half) {
    const float sign = (half & 0x8000u) ? -1.0f : 1.0f;
    const int exponent = (half >> 10) & 0x1f;
    const int mantissa = half & 0x3ff;
    if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
    if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
    return sign * std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
}

size_t element_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

// Host values as the bytes of `dtype` (values exactly representable, see above).
std::vector<uint8_t> encode(const std::vector<float>& values, bnb_dtype dtype) {
    std::vector<uint8_t> bytes(values.size() * element_size(dtype));
    for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(bytes.data() + 4 * i, &values[i], 4);
        } else {
            const uint16_t half = dtype == BNB_DTYPE_FLOAT16 ? exact_half_bits(values[i])
                                                             : static_cast<uint16_t>(std::bit_cast<uint32_t>(values[i]) >> 16);
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
            values[i] = dtype == BNB_DTYPE_FLOAT16 ? half_value(half) : std::bit_cast<float>(uint32_t{half} << 16);
        }
    }
    return values;
}

// Multiples of 1/8 in [-2, 2): exact in every float dtype.
std::vector<float> eighths(size_t count, unsigned seed) {
    std::mt19937 generator(seed);
    std::uniform_int_distribution<int> numerator(-16, 15);
    std::vector<float> values(count);
    for (float& value : values) value = static_cast<float>(numerator(generator)) / 8.0f;
    return values;
}

const char* dtype_name(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? "fp32" : dtype == BNB_DTYPE_FLOAT16 ? "fp16" : "bf16";
}

// ||out - ref|| / ||ref||: one rounding of the output plus fp32 accumulation order,
// plus (tensor cores) the weight rounded to A's dtype.
double tolerance(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? 2e-5 : dtype == BNB_DTYPE_FLOAT16 ? 2e-3 : 1.2e-2;
}

// A quantized [N, K] weight on the device, plain or with nested statistics (built
// as the Python layer builds them: absmax minus its mean, quantized blockwise with
// blocksize 256), and W as the CPU backend dequantizes it from the same bytes.
struct QuantizedWeight {
    int64_t N;
    int64_t K;
    bool nested;
    std::vector<float> dequantized;  // [N, K], host
    DeviceBuffer packed;
    DeviceBuffer absmax;         // per block, or per 256 blocks when nested
    DeviceBuffer absmax_8bit;    // nested only
    DeviceBuffer absmax_code;    // nested only
    DeviceBuffer absmax_offset;  // nested only

    QuantizedWeight(int64_t n, int64_t k, bool is_nested)
        : N(n),
          K(k),
          nested(is_nested),
          packed(static_cast<size_t>((n * k + 1) / 2)),
          absmax(static_cast<size_t>(blocks()) * 4),
          absmax_8bit(static_cast<size_t>(blocks())),
          absmax_code(256 * 4),
          absmax_offset(4) {
        std::mt19937 generator(static_cast<unsigned>(n * 7 + k));
        std::normal_distribution<float> normal(0.0f, 0.05f);
        std::vector<float> weight(static_cast<size_t>(n * k));
        for (float& value : weight) value = normal(generator);
        const DeviceBuffer source(weight.data(), weight.size() * 4);
        DeviceBuffer block_absmax(static_cast<size_t>(blocks()) * 4);
        EXPECT_TRUE(succeeded(bnb_quantize_4bit(kCuda, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, source.get(), n * k,
                                                kBlocksize, packed.get<uint8_t>(), block_absmax.get<float>())));
        std::vector<float> scales(static_cast<size_t>(blocks()));
        const std::vector<uint8_t> scale_bytes = block_absmax.download();
        std::memcpy(scales.data(), scale_bytes.data(), scale_bytes.size());
        if (!nested) {
            EXPECT_TRUE(cuda_ok(cudaMemcpy(absmax.get(), scales.data(), scale_bytes.size(), cudaMemcpyHostToDevice)));
        } else {
            scales = nest(scales);
        }
        const std::vector<uint8_t> packed_host = packed.download();
        dequantized.resize(weight.size());
        EXPECT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, packed_host.data(),
                                                  scales.data(), n * k, kBlocksize, dequantized.data())));
    }

    int64_t blocks() const { return (N * K + kBlocksize - 1) / kBlocksize; }

    // Quantizes the statistics (device buffers filled) and returns their de-nested
    // values: code[absmax_8bit[j]] * absmax[j / 256] + offset.
    std::vector<float> nest(const std::vector<float>& scales) {
        double sum = 0.0;
        for (float value : scales) sum += value;
        const float offset = static_cast<float>(sum / static_cast<double>(scales.size()));
        std::vector<float> centered(scales);
        for (float& value : centered) value -= offset;
        std::vector<float> code(256);
        EXPECT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, code.data(), 256)));
        const int64_t groups = (blocks() + 255) / 256;
        const DeviceBuffer centered_device(centered.data(), centered.size() * 4);
        DeviceBuffer group_absmax(static_cast<size_t>(groups) * 4);
        EXPECT_TRUE(cuda_ok(cudaMemcpy(absmax_code.get(), code.data(), 256 * 4, cudaMemcpyHostToDevice)));
        EXPECT_TRUE(cuda_ok(cudaMemcpy(absmax_offset.get(), &offset, 4, cudaMemcpyHostToDevice)));
        EXPECT_TRUE(succeeded(bnb_quantize_blockwise(kCuda, nullptr, BNB_DTYPE_FLOAT32, centered_device.get(),
                                                     absmax_code.get<float>(), blocks(), 256,
                                                     absmax_8bit.get<uint8_t>(), absmax.get<float>())));
        const std::vector<uint8_t> codes = absmax_8bit.download();
        const std::vector<uint8_t> group_bytes = absmax.download();
        std::vector<float> groups_host(static_cast<size_t>(groups));
        std::memcpy(groups_host.data(), group_bytes.data(), groups_host.size() * 4);
        std::vector<float> denested(scales.size());
        for (size_t j = 0; j < denested.size(); ++j) denested[j] = code[codes[j]] * groups_host[j / 256] + offset;
        return denested;
    }
};

// One bnb_gemm_4bit call's inputs and output on the device.
struct GemmCall {
    const QuantizedWeight& weight;
    bnb_dtype dtype;
    int64_t M;
    bool with_bias;
    std::vector<float> A;
    std::vector<float> bias;
    DeviceBuffer A_device;
    DeviceBuffer bias_device;
    DeviceBuffer out;

    GemmCall(const QuantizedWeight& w, bnb_dtype type, int64_t m, bool has_bias)
        : weight(w),
          dtype(type),
          M(m),
          with_bias(has_bias),
          A(eighths(static_cast<size_t>(m * w.K), static_cast<unsigned>(m))),
          bias(eighths(static_cast<size_t>(w.N), 99)),
          A_device(encode(A, type).data(), A.size() * element_size(type)),
          bias_device(encode(bias, type).data(), bias.size() * element_size(type)),
          out(static_cast<size_t>(m * w.N) * element_size(type)) {}

    // The output is poisoned first (all-ones bytes: NaN in every float type), so that an element a
    // call leaves unwritten fails relative_error instead of keeping an earlier call's value.
    bnb_status run(bnb_gemm_4bit_algo algo, void* workspace, int64_t workspace_bytes, cudaStream_t stream = nullptr) {
        EXPECT_TRUE(cuda_ok(cudaMemsetAsync(out.get(), 0xFF, static_cast<size_t>(M * weight.N) * element_size(dtype),
                                            stream)));
        return bnb_gemm_4bit(kCuda, stream, dtype, BNB_QUANT_NF4, A_device.get(), M, weight.K,
                             weight.packed.get<uint8_t>(), weight.N, kBlocksize, weight.absmax.get<float>(),
                             weight.nested ? weight.absmax_8bit.get<uint8_t>() : nullptr,
                             weight.nested ? weight.absmax_code.get<float>() : nullptr,
                             weight.nested ? weight.absmax_offset.get<float>() : nullptr,
                             with_bias ? bias_device.get() : nullptr, algo, workspace, workspace_bytes, out.get());
    }

    int64_t workspace_size(bnb_gemm_4bit_algo algo) const {
        int64_t bytes = -1;
        EXPECT_TRUE(succeeded(bnb_gemm_4bit_workspace_size(kCuda, dtype, M, weight.N, weight.K, kBlocksize,
                                                           weight.nested ? 1 : 0, algo, &bytes)));
        return bytes;
    }

    // ||out - A W^T - bias|| / ||A W^T + bias|| in float64.
    double relative_error() const {
        const std::vector<float> result = decode(out.download(), dtype);
        double difference = 0.0, norm = 0.0;
        for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < weight.N; ++n) {
                double expected = with_bias ? bias[static_cast<size_t>(n)] : 0.0;
                for (int64_t k = 0; k < weight.K; ++k) {
                    expected += static_cast<double>(A[static_cast<size_t>(m * weight.K + k)]) *
                                weight.dequantized[static_cast<size_t>(n * weight.K + k)];
                }
                const double got = result[static_cast<size_t>(m * weight.N + n)];
                if (!std::isfinite(got)) return INFINITY;
                difference += (got - expected) * (got - expected);
                norm += expected * expected;
            }
        }
        return std::sqrt(difference / norm);
    }
};

class CudaGemm4bit : public ::testing::Test {
protected:
    void SetUp() override {
        if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
        if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
    }
};

constexpr bnb_dtype kFloatDtypes[] = {BNB_DTYPE_BFLOAT16, BNB_DTYPE_FLOAT16, BNB_DTYPE_FLOAT32};

}  // namespace

TEST_F(CudaGemm4bit, EveryRowCountWithAndWithoutWorkspace) {
    for (const bool nested : {false, true}) {
        const QuantizedWeight weight(320, 512, nested);
        for (const bnb_dtype dtype : kFloatDtypes) {
            for (const int64_t M : {1, 3, 8, 16, 64, 65, 256, 700}) {
                SCOPED_TRACE(std::string(dtype_name(dtype)) + " M=" + std::to_string(M) +
                             (nested ? " nested" : " plain"));
                GemmCall call(weight, dtype, M, true);
                const int64_t bytes = call.workspace_size(BNB_GEMM_4BIT_AUTO);
                const DeviceBuffer workspace(static_cast<size_t>(bytes));
                ASSERT_TRUE(succeeded(call.run(BNB_GEMM_4BIT_AUTO, bytes > 0 ? workspace.get() : nullptr, bytes)));
                ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
                EXPECT_LT(call.relative_error(), tolerance(dtype));
                // Without workspace AUTO stays on the fused kernels, which serve any M.
                ASSERT_TRUE(succeeded(call.run(BNB_GEMM_4BIT_AUTO, nullptr, 0)));
                ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
                EXPECT_LT(call.relative_error(), tolerance(dtype));
            }
        }
    }
}

TEST_F(CudaGemm4bit, WorkspaceSizeFollowsTheChoiceOfKernel) {
    const int64_t N = 320, K = 512, blocks = N * K / kBlocksize;
    for (const bnb_dtype dtype : kFloatDtypes) {
        SCOPED_TRACE(dtype_name(dtype));
        int64_t max_rows = -1;
        ASSERT_TRUE(succeeded(bnb_gemm_4bit_fused_max_rows(kCuda, dtype, N, K, kBlocksize, &max_rows)));
        const auto query = [&](int64_t M, int nested, bnb_gemm_4bit_algo algo) {
            int64_t bytes = -1;
            EXPECT_TRUE(succeeded(bnb_gemm_4bit_workspace_size(kCuda, dtype, M, N, K, kBlocksize, nested, algo, &bytes)));
            return bytes;
        };
        EXPECT_EQ(query(max_rows, 0, BNB_GEMM_4BIT_AUTO), 0);
        EXPECT_EQ(query(1, 1, BNB_GEMM_4BIT_TENSOR_CORE), 0);
        EXPECT_EQ(query(1000, 1, BNB_GEMM_4BIT_GENERIC), 0);
        const int64_t plain = query(max_rows + 1, 0, BNB_GEMM_4BIT_AUTO);
        const int64_t nested = query(max_rows + 1, 1, BNB_GEMM_4BIT_AUTO);
        const int64_t weight_bytes = N * K * static_cast<int64_t>(element_size(dtype));
        EXPECT_GT(plain, weight_bytes);  // the dequantized weight and cuBLASLt's workspace
        EXPECT_EQ(plain % 256, 0);
        EXPECT_EQ(nested - plain, (blocks * 4 + 255) / 256 * 256);  // plus the de-nested scales
        EXPECT_EQ(query(1, 0, BNB_GEMM_4BIT_DEQUANTIZE), plain);
    }
}

TEST_F(CudaGemm4bit, DequantizeWithTooLittleWorkspaceNamesWorkspaceBytes) {
    const QuantizedWeight weight(128, 256, true);
    GemmCall call(weight, BNB_DTYPE_BFLOAT16, 4, false);
    const int64_t bytes = call.workspace_size(BNB_GEMM_4BIT_DEQUANTIZE);
    ASSERT_GT(bytes, 256);
    const DeviceBuffer workspace(static_cast<size_t>(bytes));
    EXPECT_TRUE(failed_with(call.run(BNB_GEMM_4BIT_DEQUANTIZE, workspace.get(), bytes - 256),
                            BNB_STATUS_INVALID_ARGUMENT, {"workspace_bytes", std::to_string(bytes)}));
    EXPECT_TRUE(failed_with(call.run(BNB_GEMM_4BIT_DEQUANTIZE, nullptr, 0), BNB_STATUS_INVALID_ARGUMENT,
                            {"workspace_bytes"}));
    ASSERT_TRUE(succeeded(call.run(BNB_GEMM_4BIT_DEQUANTIZE, workspace.get(), bytes)));
    ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
    EXPECT_LT(call.relative_error(), tolerance(BNB_DTYPE_BFLOAT16));
}

TEST_F(CudaGemm4bit, DequantizeAppliesTheBiasEpilogue) {
    for (const bool nested : {false, true}) {
        const QuantizedWeight weight(200, 96, nested);
        for (const bnb_dtype dtype : kFloatDtypes) {
            for (const int64_t M : {1, 33, 300}) {
                SCOPED_TRACE(std::string(dtype_name(dtype)) + " M=" + std::to_string(M));
                GemmCall call(weight, dtype, M, true);
                const int64_t bytes = call.workspace_size(BNB_GEMM_4BIT_DEQUANTIZE);
                const DeviceBuffer workspace(static_cast<size_t>(bytes));
                ASSERT_TRUE(succeeded(call.run(BNB_GEMM_4BIT_DEQUANTIZE, workspace.get(), bytes)));
                ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
                EXPECT_LT(call.relative_error(), tolerance(dtype));
            }
        }
    }
}

TEST_F(CudaGemm4bit, GraphCaptureAt256RowsReplaysTheEagerResult) {
    const QuantizedWeight weight(512, 1024, true);
    GemmCall call(weight, BNB_DTYPE_FLOAT16, 256, true);
    const int64_t bytes = call.workspace_size(BNB_GEMM_4BIT_AUTO);
    ASSERT_GT(bytes, 0) << "M=256 should take the dequantize path";
    const DeviceBuffer workspace(static_cast<size_t>(bytes));
    cudaStream_t stream = nullptr;
    ASSERT_TRUE(cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)));
    ASSERT_TRUE(succeeded(call.run(BNB_GEMM_4BIT_AUTO, workspace.get(), bytes, stream)));
    ASSERT_TRUE(cuda_ok(cudaStreamSynchronize(stream)));
    const std::vector<uint8_t> eager = call.out.download();
    EXPECT_LT(call.relative_error(), tolerance(BNB_DTYPE_FLOAT16));

    // Global capture mode: a synchronising call inside the library would invalidate the capture.
    cudaGraph_t graph = nullptr;
    ASSERT_TRUE(cuda_ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal)));
    const bnb_status captured = call.run(BNB_GEMM_4BIT_AUTO, workspace.get(), bytes, stream);
    ASSERT_TRUE(cuda_ok(cudaStreamEndCapture(stream, &graph)));
    ASSERT_TRUE(succeeded(captured));
    cudaGraphExec_t exec = nullptr;
    ASSERT_TRUE(cuda_ok(cudaGraphInstantiate(&exec, graph, 0)));
    ASSERT_TRUE(cuda_ok(cudaMemsetAsync(call.out.get(), 0xff, eager.size(), stream)));
    ASSERT_TRUE(cuda_ok(cudaGraphLaunch(exec, stream)));
    ASSERT_TRUE(cuda_ok(cudaStreamSynchronize(stream)));
    EXPECT_TRUE(bits_equal(call.out.download().data(), eager.data(), static_cast<int64_t>(eager.size()), 1));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
}

TEST_F(CudaGemm4bit, GemvTakesNoWorkspaceAtAnyRowCount) {
    const QuantizedWeight weight(96, 320, false);
    std::vector<float> codebook(16);
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_NF4, codebook.data(), 16)));
    const DeviceBuffer code(codebook.data(), 16 * 4);
    for (const int64_t M : {1, 256}) {
        GemmCall call(weight, BNB_DTYPE_BFLOAT16, M, false);
        ASSERT_TRUE(succeeded(bnb_gemv_4bit(kCuda, nullptr, BNB_DTYPE_BFLOAT16, call.A_device.get(), M, weight.K,
                                            weight.packed.get<uint8_t>(), weight.N, code.get<float>(),
                                            weight.absmax.get<float>(), kBlocksize, call.out.get())));
        ASSERT_TRUE(cuda_ok(cudaDeviceSynchronize()));
        EXPECT_LT(call.relative_error(), tolerance(BNB_DTYPE_BFLOAT16)) << "M=" << M;
    }
}
