// The C ABI on a CUDA device, without torch: device buffers from cudaMalloc, a
// stream of the caller's own, and upstream's golden bytes (the same cases as
// test_golden_*.cpp on the CPU). Built when the CUDA toolkit is found; skips
// without a device.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "cuda/device_buffer.h"
#include "support/abi_assertions.h"
#include "support/golden.h"
#include "support/golden_params.h"

using namespace bnb_test;

namespace {

constexpr bnb_device kCuda = {BNB_DEVICE_CUDA, 0};
constexpr int64_t kNestedBlocksize = 256;

// Golden suites on CUDA: the golden fixture's skip, plus a device and a
// non-default stream of the test's own (the library must use it, not stream 0).
class CudaGoldenCase : public GoldenCaseTest {
protected:
    void SetUp() override {
        if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
        if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
        GoldenCaseTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        ASSERT_TRUE(cuda_ok(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)));
    }
    void TearDown() override {
        if (stream_ != nullptr) cudaStreamDestroy(stream_);
    }
    ::testing::AssertionResult synchronized() { return cuda_ok(cudaStreamSynchronize(stream_)); }

    cudaStream_t stream_ = nullptr;
};

class CudaGoldenBlockwise : public CudaGoldenCase {};
class CudaGoldenFourBit : public CudaGoldenCase {
protected:
    bnb_quant_type quant_type() const {
        return GetParam().arg_string("quant_type") == "nf4" ? BNB_QUANT_NF4 : BNB_QUANT_FP4;
    }
    bool nested() const {
        return GetParam().args.find("compress_statistics") != nullptr && GetParam().arg_bool("compress_statistics");
    }
    float offset() const {
        float value = 0.0f;
        std::memcpy(&value, GetParam().tensor("offset").data, sizeof value);
        return value;
    }
};

}  // namespace

TEST_P(CudaGoldenBlockwise, QuantizeAndDequantizeMatchUpstream) {
    const GoldenCase& golden = GetParam();
    const TensorView& input = golden.tensor("A");
    const bnb_dtype dtype = dtype_from_safetensors(input.dtype);
    const int64_t n = input.numel();
    const int64_t blocksize = golden.arg_integer("blocksize");
    const int64_t blocks = (n + blocksize - 1) / blocksize;

    const DeviceBuffer a(input), code(golden.tensor("code"));
    DeviceBuffer codes(static_cast<size_t>(n)), absmax(static_cast<size_t>(blocks) * 4);
    ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCuda, stream_, dtype, a.get(), code.get<float>(), n, blocksize,
                                                 codes.get<uint8_t>(), absmax.get<float>())));
    ASSERT_TRUE(synchronized());
    EXPECT_TRUE(bits_equal(codes.download().data(), golden.tensor("q").data, n, 1)) << "codes";
    EXPECT_TRUE(bits_equal(absmax.download().data(), golden.tensor("absmax").data, blocks, 4)) << "absmax";

    const TensorView& expected = golden.tensor("dequant");
    const DeviceBuffer golden_codes(golden.tensor("q")), golden_absmax(golden.tensor("absmax"));
    DeviceBuffer out(expected.bytes);
    ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCuda, stream_, dtype, golden_codes.get<uint8_t>(),
                                                   code.get<float>(), golden_absmax.get<float>(), n, blocksize,
                                                   out.get())));
    ASSERT_TRUE(synchronized());
    EXPECT_TRUE(bits_equal(out.download().data(), expected.data, n, expected.bytes / static_cast<size_t>(n)))
        << "dequant";
}

TEST_P(CudaGoldenFourBit, QuantizeAndDequantizeMatchUpstream) {
    const GoldenCase& golden = GetParam();
    const TensorView& input = golden.tensor("A");
    const bnb_dtype dtype = dtype_from_safetensors(input.dtype);
    const int64_t n = input.numel();
    const int64_t blocksize = golden.arg_integer("blocksize");
    const int64_t blocks = (n + blocksize - 1) / blocksize;
    const int64_t packed_bytes = (n + 1) / 2;

    const DeviceBuffer a(input);
    DeviceBuffer packed(static_cast<size_t>(packed_bytes)), absmax(static_cast<size_t>(blocks) * 4);
    ASSERT_TRUE(succeeded(bnb_quantize_4bit(kCuda, stream_, quant_type(), dtype, a.get(), n, blocksize,
                                            packed.get<uint8_t>(), absmax.get<float>())));
    ASSERT_TRUE(synchronized());
    EXPECT_TRUE(bits_equal(packed.download().data(), golden.tensor("packed").data, packed_bytes, 1)) << "packed";
    std::vector<uint8_t> absmax_bytes = absmax.download();

    std::vector<float> scales(static_cast<size_t>(blocks));
    if (!nested()) {
        EXPECT_TRUE(bits_equal(absmax_bytes.data(), golden.tensor("absmax").data, blocks, 4)) << "absmax";
        std::memcpy(scales.data(), golden.tensor("absmax").data, scales.size() * 4);
    } else {
        // Nesting as the Python layer does it, with upstream's offset (torch's mean).
        std::vector<float> centered(static_cast<size_t>(blocks));
        std::memcpy(centered.data(), absmax_bytes.data(), centered.size() * 4);
        for (float& value : centered) value -= offset();
        const int64_t nested_blocks = (blocks + kNestedBlocksize - 1) / kNestedBlocksize;
        const DeviceBuffer centered_device(centered.data(), centered.size() * 4);
        const DeviceBuffer nested_code(golden.tensor("nested_code"));
        DeviceBuffer nested_codes(static_cast<size_t>(blocks)), nested_absmax(static_cast<size_t>(nested_blocks) * 4);
        ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCuda, stream_, BNB_DTYPE_FLOAT32, centered_device.get(),
                                                     nested_code.get<float>(), blocks, kNestedBlocksize,
                                                     nested_codes.get<uint8_t>(), nested_absmax.get<float>())));
        ASSERT_TRUE(synchronized());
        EXPECT_TRUE(bits_equal(nested_codes.download().data(), golden.tensor("absmax").data, blocks, 1))
            << "nested absmax codes";
        EXPECT_TRUE(bits_equal(nested_absmax.download().data(), golden.tensor("nested_absmax").data, nested_blocks, 4))
            << "nested_absmax";

        const DeviceBuffer golden_codes(golden.tensor("absmax")), golden_nested_absmax(golden.tensor("nested_absmax"));
        DeviceBuffer denested(static_cast<size_t>(blocks) * 4);
        ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCuda, stream_, BNB_DTYPE_FLOAT32, golden_codes.get<uint8_t>(),
                                                       nested_code.get<float>(), golden_nested_absmax.get<float>(),
                                                       blocks, kNestedBlocksize, denested.get())));
        ASSERT_TRUE(synchronized());
        const std::vector<uint8_t> denested_bytes = denested.download();
        std::memcpy(scales.data(), denested_bytes.data(), scales.size() * 4);
        for (float& scale : scales) scale += offset();
    }

    const TensorView& expected = golden.tensor("dequant");
    const DeviceBuffer golden_packed(golden.tensor("packed")), scales_device(scales.data(), scales.size() * 4);
    DeviceBuffer out(expected.bytes);
    ASSERT_TRUE(succeeded(bnb_dequantize_4bit(kCuda, stream_, quant_type(), dtype, golden_packed.get<uint8_t>(),
                                              scales_device.get<float>(), n, blocksize, out.get())));
    ASSERT_TRUE(synchronized());
    EXPECT_TRUE(bits_equal(out.download().data(), expected.data, n, expected.bytes / static_cast<size_t>(n)))
        << "dequant";
}

INSTANTIATE_TEST_SUITE_P(Upstream, CudaGoldenBlockwise, ::testing::ValuesIn(golden_cases_with_role("quant", "q")),
                         golden_case_name);
INSTANTIATE_TEST_SUITE_P(Upstream, CudaGoldenFourBit, ::testing::ValuesIn(golden_cases_with_role("fourbit", "packed")),
                         golden_case_name);

TEST(CudaAbi, EmptyCallsOnTheDeviceTouchNothing) {
    if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
    EXPECT_TRUE(succeeded(bnb_quantize_4bit(kCuda, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT16, nullptr, 0, 64, nullptr,
                                            nullptr)));
    EXPECT_TRUE(succeeded(bnb_dequantize_blockwise(kCuda, nullptr, BNB_DTYPE_BFLOAT16, nullptr, nullptr, nullptr, 0,
                                                   256, nullptr)));
    EXPECT_TRUE(cuda_ok(cudaDeviceSynchronize()));
}

TEST(CudaAbi, CurrentDeviceIsRestored) {
    if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
    int count = 0;
    ASSERT_TRUE(cuda_ok(cudaGetDeviceCount(&count)));
    if (count < 2) GTEST_SKIP() << "needs two CUDA devices (found " << count << ")";
    ASSERT_TRUE(cuda_ok(cudaSetDevice(1)));
    DeviceBuffer input(64 * 4), packed(32), absmax(4);
    ASSERT_TRUE(cuda_ok(cudaMemset(input.get(), 0, 64 * 4)));
    ASSERT_TRUE(cuda_ok(cudaSetDevice(0)));
    // Buffers of device 1, called from a thread whose current device is 0.
    EXPECT_TRUE(succeeded(bnb_quantize_4bit({BNB_DEVICE_CUDA, 1}, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32,
                                            input.get(), 64, 64, packed.get<uint8_t>(), absmax.get<float>())));
    int current = -1;
    ASSERT_TRUE(cuda_ok(cudaGetDevice(&current)));
    EXPECT_EQ(current, 0);
    ASSERT_TRUE(cuda_ok(cudaSetDevice(1)));
    EXPECT_TRUE(cuda_ok(cudaDeviceSynchronize()));
    ASSERT_TRUE(cuda_ok(cudaSetDevice(0)));
}
