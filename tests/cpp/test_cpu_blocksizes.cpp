// Blockwise 8-bit on the CPU in blocks of any positive length, as upstream's
// CPU path cuts them (formats::BlocksizeRule): which ops and backends take
// them, and that such blocks are quantized like the listed ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"

using namespace bnb_test;

namespace {

std::vector<float> normal_values(int64_t n, unsigned seed) {
    std::mt19937 generator(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(n));
    for (float& value : values) value = normal(generator);
    return values;
}

int64_t blocks_of(int64_t n, int64_t blocksize) { return (n + blocksize - 1) / blocksize; }

}  // namespace

TEST(Blocksizes, OnlyBlockwise8bitFormatsHoldForBlocksOfAnyLength) {
    EXPECT_EQ(bnb_op_any_blocksize("quantize_blockwise"), 1);
    EXPECT_EQ(bnb_op_any_blocksize("dequantize_blockwise"), 1);
    for (const char* op : {"quantize_4bit", "dequantize_4bit", "gemm_4bit", "gemv_4bit", "int8_linear_matmul",
                           "optimizer_update_8bit_blockwise", "no_such_op"}) {
        EXPECT_EQ(bnb_op_any_blocksize(op), 0) << op;
    }
    EXPECT_EQ(bnb_op_any_blocksize(nullptr), 0);
}

TEST(Blocksizes, CpuTakesAnyPositiveBlocksizeWhereTheFormatHolds) {
    EXPECT_EQ(bnb_backend_any_blocksize(BNB_DEVICE_CPU, "quantize_blockwise"), 1);
    EXPECT_EQ(bnb_backend_any_blocksize(BNB_DEVICE_CPU, "dequantize_blockwise"), 1);
    EXPECT_EQ(bnb_backend_any_blocksize(BNB_DEVICE_CPU, "quantize_4bit"), 0);
    EXPECT_EQ(bnb_backend_any_blocksize(BNB_DEVICE_CPU, nullptr), 0);
    // The GPU kernels index absmax by a shift: the listed powers of two only.
    EXPECT_EQ(bnb_backend_any_blocksize(BNB_DEVICE_CUDA, "quantize_blockwise"), 0);
    EXPECT_EQ(bnb_backend_any_blocksize(BNB_DEVICE_HIP, "dequantize_blockwise"), 0);
    EXPECT_EQ(bnb_backend_any_blocksize(static_cast<bnb_device_type>(BNB_DEVICE_TYPE_COUNT), "quantize_blockwise"), 0);
}

TEST(Blocksizes, NonPositiveBlocksizeIsRejectedByName) {
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    std::vector<float> a(16, 1.0f), absmax(16), out(16);
    std::vector<uint8_t> codes(16);
    for (int64_t blocksize : {int64_t{0}, int64_t{-1}, int64_t{-4096}}) {
        EXPECT_TRUE(failed_with(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, a.data(), code.data(), 16,
                                                       blocksize, codes.data(), absmax.data()),
                                BNB_STATUS_INVALID_ARGUMENT, {"blocksize must be positive", std::to_string(blocksize)}));
        EXPECT_TRUE(failed_with(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, codes.data(), code.data(),
                                                         absmax.data(), 16, blocksize, out.data()),
                                BNB_STATUS_INVALID_ARGUMENT, {"blocksize must be positive", std::to_string(blocksize)}));
    }
}

class AnyBlocksize : public ::testing::TestWithParam<int64_t> {};

TEST_P(AnyBlocksize, AbsmaxPerBlockAndDequantizationByCodeTimesAbsmax) {
    const int64_t blocksize = GetParam();
    const int64_t n = 40001;
    const int64_t blocks = blocks_of(n, blocksize);
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const std::vector<float> a = normal_values(n, 7);
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    std::vector<float> absmax(static_cast<size_t>(blocks));
    ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, a.data(), code.data(), n, blocksize,
                                                 codes.data(), absmax.data())));
    std::vector<float> out(static_cast<size_t>(n));
    ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, codes.data(), code.data(),
                                                   absmax.data(), n, blocksize, out.data())));
    for (int64_t block = 0; block < blocks; ++block) {
        const int64_t begin = block * blocksize, end = std::min(n, begin + blocksize);
        float expected = 0.0f;
        for (int64_t i = begin; i < end; ++i) expected = std::max(expected, std::fabs(a[i]));
        ASSERT_EQ(absmax[block], expected) << "block " << block;
        for (int64_t i = begin; i < end; ++i) {
            ASSERT_EQ(out[i], code[codes[i]] * absmax[block]) << "element " << i;
            // The signed dynamic map's widest step is below 0.03 of the block's scale.
            ASSERT_LE(std::fabs(out[i] - a[i]), 0.03f * absmax[block]) << "element " << i;
        }
    }
}

TEST_P(AnyBlocksize, CodesEqualThoseOfBlocksOf64WhenEveryBlockHasTheSameScale) {
    // Every 64th value and the last one carry the largest magnitude, so that every
    // block of at least 64 values (and the shorter tail) has the same absmax as
    // blocks of 64: the codes must then be those of a listed blocksize.
    const int64_t blocksize = GetParam();
    if (blocksize < 64) GTEST_SKIP() << "blocks shorter than 64 have their own scales";
    const int64_t n = 40001;
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    std::vector<float> a = normal_values(n, 11);
    for (float& value : a) value = std::clamp(value, -2.9f, 2.9f);
    for (int64_t i = 0; i < n; i += 64) a[i] = (i / 64) % 2 == 0 ? 3.0f : -3.0f;
    a[n - 1] = 3.0f;

    std::vector<uint8_t> codes(static_cast<size_t>(n)), reference(static_cast<size_t>(n));
    std::vector<float> absmax(static_cast<size_t>(blocks_of(n, blocksize))), reference_absmax(blocks_of(n, 64));
    ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, a.data(), code.data(), n, blocksize,
                                                 codes.data(), absmax.data())));
    ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, a.data(), code.data(), n, 64,
                                                 reference.data(), reference_absmax.data())));
    for (float value : absmax) ASSERT_EQ(value, 3.0f);
    EXPECT_TRUE(bits_equal(codes.data(), reference.data(), n, 1));
}

INSTANTIATE_TEST_SUITE_P(Cpu, AnyBlocksize,
                         ::testing::Values(int64_t{1}, int64_t{3}, int64_t{100}, int64_t{5000}, int64_t{8192},
                                           int64_t{16384}, int64_t{1} << 20));
