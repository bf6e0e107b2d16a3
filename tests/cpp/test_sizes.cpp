// Sizes that are not a whole number of blocks, odd 4-bit counts and empty
// inputs, on the CPU. The reference is the same op on the input padded with
// zeros to whole blocks: a zero changes neither a block's absmax nor the codes of
// the other elements, so the real elements must come out identical, and nothing
// past the last real element (or block) may be written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"

using namespace bnb_test;

namespace {

constexpr uint8_t kGuard = 0xA5;
constexpr size_t kGuardBytes = 64;
const bnb_dtype kFloatDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};

size_t itemsize(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

uint16_t float_to_half_bits(float value) {
    // Test values are multiples of 1/32 well inside the half range: exact.
    uint32_t bits = 0;
    std::memcpy(&bits, &value, 4);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    if ((bits & 0x7FFFFFFFu) == 0) return static_cast<uint16_t>(sign);
    const int exponent = static_cast<int>((bits >> 23) & 0xFF) - 127 + 15;
    const uint32_t mantissa = (bits >> 13) & 0x3FFu;
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exponent) << 10) | mantissa);
}

// n finite, non-zero values of `dtype` followed by `padding` zeros, with guard bytes.
AlignedBytes make_input(bnb_dtype dtype, int64_t n, int64_t padding) {
    AlignedBytes bytes(static_cast<size_t>(n + padding) * itemsize(dtype));
    for (int64_t i = 0; i < n + padding; ++i) {
        const float value = i < n ? (static_cast<float>((i * 37) % 101) - 50.5f) / 16.0f : 0.0f;
        uint8_t* slot = bytes.data() + static_cast<size_t>(i) * itemsize(dtype);
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(slot, &value, 4);
        } else if (dtype == BNB_DTYPE_FLOAT16) {
            const uint16_t half = float_to_half_bits(value);
            std::memcpy(slot, &half, 2);
        } else {
            uint32_t bits = 0;
            std::memcpy(&bits, &value, 4);
            const uint16_t bf16 = static_cast<uint16_t>(bits >> 16);  // exact for these values
            std::memcpy(slot, &bf16, 2);
        }
    }
    return bytes;
}

// An output buffer of `bytes` followed by guard bytes that must survive the call.
struct Guarded {
    explicit Guarded(size_t bytes) : size(bytes), storage(bytes + kGuardBytes) {
        std::fill(storage.data(), storage.data() + bytes + kGuardBytes, kGuard);
    }
    uint8_t* data() { return storage.data(); }
    template <typename T>
    T* as() { return storage.as<T>(); }
    ::testing::AssertionResult guard_intact() {
        for (size_t i = 0; i < kGuardBytes; ++i) {
            if (storage.data()[size + i] != kGuard) {
                return ::testing::AssertionFailure() << "wrote " << i << " bytes past the end of " << size;
            }
        }
        return ::testing::AssertionSuccess();
    }
    size_t size;
    AlignedBytes storage;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::vector<int64_t> counts_around(int64_t blocksize) {
    const std::set<int64_t> counts = {1, 2, 3, 31, 63, blocksize - 1, blocksize + 1, 2 * blocksize + 17, 1001};
    return {counts.begin(), counts.end()};
}

float widest_gap(const std::vector<float>& sorted_values) {
    float gap = 0.0f;
    for (size_t k = 1; k < sorted_values.size(); ++k) gap = std::max(gap, sorted_values[k] - sorted_values[k - 1]);
    return gap;
}

}  // namespace

TEST(Blockwise8bitSizes, PartialLastBlockMatchesZeroPadding) {
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    for (bnb_dtype dtype : kFloatDtypes) {
        for (int64_t blocksize : {int64_t{64}, int64_t{256}, int64_t{4096}}) {
            for (int64_t n : counts_around(blocksize)) {
                SCOPED_TRACE("dtype " + std::to_string(dtype) + " blocksize " + std::to_string(blocksize) + " n " +
                             std::to_string(n));
                const int64_t blocks = ceil_div(n, blocksize);
                const int64_t padded = blocks * blocksize;
                const AlignedBytes input = make_input(dtype, n, padded - n);
                Guarded codes(static_cast<size_t>(n)), absmax(static_cast<size_t>(blocks) * 4);
                std::vector<uint8_t> padded_codes(static_cast<size_t>(padded));
                std::vector<float> padded_absmax(static_cast<size_t>(blocks));
                ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, dtype, input.data(), code.data(), n,
                                                             blocksize, codes.data(), absmax.as<float>())));
                ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, dtype, input.data(), code.data(),
                                                             padded, blocksize, padded_codes.data(),
                                                             padded_absmax.data())));
                EXPECT_TRUE(bits_equal(codes.data(), padded_codes.data(), n, 1));
                EXPECT_TRUE(bits_equal(absmax.data(), padded_absmax.data(), blocks, 4));
                EXPECT_TRUE(codes.guard_intact()) << "codes";
                EXPECT_TRUE(absmax.guard_intact()) << "absmax";

                Guarded out(static_cast<size_t>(n) * itemsize(dtype));
                std::vector<uint8_t> padded_out(static_cast<size_t>(padded) * itemsize(dtype));
                ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, dtype, padded_codes.data(), code.data(),
                                                               padded_absmax.data(), n, blocksize, out.data())));
                ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, dtype, padded_codes.data(), code.data(),
                                                               padded_absmax.data(), padded, blocksize,
                                                               padded_out.data())));
                EXPECT_TRUE(bits_equal(out.data(), padded_out.data(), n, itemsize(dtype)));
                EXPECT_TRUE(out.guard_intact()) << "out";
            }
        }
    }
}

TEST(FourBitSizes, PartialLastBlockAndOddCountMatchZeroPadding) {
    for (bnb_quant_type quant_type : {BNB_QUANT_NF4, BNB_QUANT_FP4}) {
        for (bnb_dtype dtype : kFloatDtypes) {
            for (int64_t blocksize : {int64_t{32}, int64_t{64}, int64_t{4096}}) {
                for (int64_t n : counts_around(blocksize)) {
                    SCOPED_TRACE("quant_type " + std::to_string(quant_type) + " dtype " + std::to_string(dtype) +
                                 " blocksize " + std::to_string(blocksize) + " n " + std::to_string(n));
                    const int64_t blocks = ceil_div(n, blocksize);
                    const int64_t padded = blocks * blocksize;
                    const AlignedBytes input = make_input(dtype, n, padded - n);
                    const int64_t packed_bytes = (n + 1) / 2;
                    Guarded packed(static_cast<size_t>(packed_bytes)), absmax(static_cast<size_t>(blocks) * 4);
                    std::vector<uint8_t> padded_packed(static_cast<size_t>(padded / 2));
                    std::vector<float> padded_absmax(static_cast<size_t>(blocks));
                    ASSERT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, quant_type, dtype, input.data(), n,
                                                            blocksize, packed.data(), absmax.as<float>())));
                    ASSERT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, quant_type, dtype, input.data(), padded,
                                                            blocksize, padded_packed.data(), padded_absmax.data())));
                    EXPECT_TRUE(bits_equal(packed.data(), padded_packed.data(), packed_bytes, 1));
                    EXPECT_TRUE(bits_equal(absmax.data(), padded_absmax.data(), blocks, 4));
                    EXPECT_TRUE(packed.guard_intact()) << "packed";
                    EXPECT_TRUE(absmax.guard_intact()) << "absmax";
                    if (n % 2 == 1) {
                        // formats.md 3.1: the missing last element packs as 0.0.
                        const uint8_t low_nibble = packed.data()[packed_bytes - 1] & 0x0F;
                        EXPECT_EQ(low_nibble, quant_type == BNB_QUANT_NF4 ? 7 : 0);
                    }

                    Guarded out(static_cast<size_t>(n) * itemsize(dtype));
                    std::vector<uint8_t> padded_out(static_cast<size_t>(padded) * itemsize(dtype));
                    ASSERT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, quant_type, dtype, padded_packed.data(),
                                                              padded_absmax.data(), n, blocksize, out.data())));
                    ASSERT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, quant_type, dtype, padded_packed.data(),
                                                              padded_absmax.data(), padded, blocksize,
                                                              padded_out.data())));
                    EXPECT_TRUE(bits_equal(out.data(), padded_out.data(), n, itemsize(dtype)));
                    EXPECT_TRUE(out.guard_intact()) << "out";
                }
            }
        }
    }
}

TEST(ZeroSizes, EveryOpSucceedsAndWritesNothing) {
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const AlignedBytes input = make_input(BNB_DTYPE_FLOAT32, 64, 0);
    Guarded bytes(0), absmax(0), out(0);
    EXPECT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, input.data(), code.data(), 0, 64,
                                                 bytes.data(), absmax.as<float>())));
    EXPECT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, input.data(), code.data(),
                                                   code.data(), 0, 64, out.data())));
    EXPECT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, input.data(), 0, 64,
                                            bytes.data(), absmax.as<float>())));
    EXPECT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, BNB_QUANT_FP4, BNB_DTYPE_FLOAT32, input.data(),
                                              code.data(), 0, 64, out.data())));
    EXPECT_TRUE(bytes.guard_intact());
    EXPECT_TRUE(absmax.guard_intact());
    EXPECT_TRUE(out.guard_intact());
}

TEST(ZeroSizes, ArgumentsAreStillCheckedWhenEmpty) {
    // n == 0 waives the buffers, not the other arguments.
    EXPECT_EQ(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, nullptr, nullptr, 0, 0, nullptr, nullptr),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(bnb_quantize_4bit(kCpu, nullptr, static_cast<bnb_quant_type>(5), BNB_DTYPE_FLOAT32, nullptr, 0, 64,
                                nullptr, nullptr),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(bnb_dequantize_4bit(kCpu, nullptr, BNB_QUANT_NF4, BNB_DTYPE_INT32, nullptr, nullptr, 0, 64, nullptr),
              BNB_STATUS_INVALID_ARGUMENT);
    if (!bnb_backend_built(BNB_DEVICE_METAL)) {
        EXPECT_EQ(bnb_dequantize_blockwise({BNB_DEVICE_METAL, 0}, nullptr, BNB_DTYPE_FLOAT32, nullptr, nullptr,
                                           nullptr, 0, 64, nullptr),
                  BNB_STATUS_BACKEND_UNAVAILABLE);
    }
}

TEST(RoundTrip, Blockwise8bitErrorIsWithinHalfTheWidestCodeGap) {
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const float half_gap = widest_gap(code) / 2.0f;
    constexpr int64_t n = 5000, blocksize = 256;
    const AlignedBytes input = make_input(BNB_DTYPE_FLOAT32, n, 0);
    std::vector<uint8_t> codes(n);
    std::vector<float> absmax(ceil_div(n, blocksize)), out(n);
    ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, input.data(), code.data(), n,
                                                 blocksize, codes.data(), absmax.data())));
    ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, codes.data(), code.data(),
                                                   absmax.data(), n, blocksize, out.data())));
    const float* x = reinterpret_cast<const float*>(input.data());
    for (int64_t i = 0; i < n; ++i) {
        const float bound = absmax[static_cast<size_t>(i / blocksize)] * half_gap * 1.0001f;
        ASSERT_LE(std::fabs(out[static_cast<size_t>(i)] - x[i]), bound) << "element " << i;
    }
}

TEST(RoundTrip, FourBitErrorIsWithinHalfTheWidestCodeGap) {
    constexpr int64_t n = 5001, blocksize = 64;
    const AlignedBytes input = make_input(BNB_DTYPE_FLOAT32, n, 0);
    const float* x = reinterpret_cast<const float*>(input.data());
    for (auto [quant_type, which] : {std::pair{BNB_QUANT_NF4, BNB_CODEBOOK_NF4}, std::pair{BNB_QUANT_FP4, BNB_CODEBOOK_FP4}}) {
        std::vector<float> table = codebook(which);
        std::sort(table.begin(), table.end());
        const float half_gap = widest_gap(table) / 2.0f;
        std::vector<uint8_t> packed((n + 1) / 2);
        std::vector<float> absmax(ceil_div(n, blocksize)), out(n);
        ASSERT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, quant_type, BNB_DTYPE_FLOAT32, input.data(), n,
                                                blocksize, packed.data(), absmax.data())));
        ASSERT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, quant_type, BNB_DTYPE_FLOAT32, packed.data(),
                                                  absmax.data(), n, blocksize, out.data())));
        for (int64_t i = 0; i < n; ++i) {
            const float bound = absmax[static_cast<size_t>(i / blocksize)] * half_gap * 1.0001f;
            ASSERT_LE(std::fabs(out[static_cast<size_t>(i)] - x[i]), bound) << "quant_type " << quant_type << " element " << i;
        }
    }
}

TEST(Streams, CpuIgnoresTheStreamArgument) {
    constexpr int64_t n = 3000, blocksize = 128;
    const AlignedBytes input = make_input(BNB_DTYPE_BFLOAT16, n, 0);
    std::vector<uint8_t> packed_default((n + 1) / 2), packed_other((n + 1) / 2);
    std::vector<float> absmax_default(ceil_div(n, blocksize)), absmax_other(ceil_div(n, blocksize));
    int not_a_stream = 0;
    ASSERT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, BNB_QUANT_NF4, BNB_DTYPE_BFLOAT16, input.data(), n,
                                            blocksize, packed_default.data(), absmax_default.data())));
    ASSERT_TRUE(succeeded(bnb_quantize_4bit(kCpu, &not_a_stream, BNB_QUANT_NF4, BNB_DTYPE_BFLOAT16, input.data(), n,
                                            blocksize, packed_other.data(), absmax_other.data())));
    EXPECT_EQ(packed_default, packed_other);
    EXPECT_TRUE(bits_equal(absmax_default.data(), absmax_other.data(), static_cast<int64_t>(absmax_other.size()), 4));
    EXPECT_EQ(not_a_stream, 0) << "the CPU backend touched the stream handle";
}
