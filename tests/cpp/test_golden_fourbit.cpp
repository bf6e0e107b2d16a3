// NF4/FP4 quantization on the CPU against upstream's output on an H100
// (shared/golden, group "fourbit"): packed bytes, absmax, the nested
// ("double quant") statistics and dequantized values must be bit-identical.
//
// Nested cases run the nesting through the C ABI as the Python layer does:
// absmax - offset, quantized blockwise with blocksize 256 and the signed dynamic
// map; de-nesting dequantizes that and adds the offset back. The offset itself is
// torch's mean (its reduction order decides the last bit), so it is taken from
// the golden file rather than recomputed.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/golden.h"
#include "support/golden_params.h"

using namespace bnb_test;

namespace {

constexpr int64_t kNestedBlocksize = 256;

class GoldenFourBit : public GoldenCaseTest {
protected:
    const GoldenCase& golden() const { return GetParam(); }
    bnb_quant_type quant_type() const {
        const std::string name = golden().arg_string("quant_type");
        if (name == "nf4") return BNB_QUANT_NF4;
        if (name == "fp4") return BNB_QUANT_FP4;
        ADD_FAILURE() << "unknown quant_type " << name;
        return BNB_QUANT_NF4;
    }
    bool nested() const {
        return golden().args.find("compress_statistics") != nullptr && golden().arg_bool("compress_statistics");
    }
    int64_t blocksize() const { return golden().arg_integer("blocksize"); }
    float offset() const {
        float value = 0.0f;
        std::memcpy(&value, golden().tensor("offset").data, sizeof value);
        return value;
    }
};

}  // namespace

TEST_P(GoldenFourBit, QuantizeMatchesUpstream) {
    const TensorView& input = golden().tensor("A");
    const bnb_dtype dtype = dtype_from_manifest(golden().arg_string("dtype"));
    ASSERT_EQ(dtype, dtype_from_safetensors(input.dtype));
    const int64_t n = input.numel();
    const int64_t blocks = (n + blocksize() - 1) / blocksize();
    const TensorView& expected_packed = golden().tensor("packed");
    // Any quant_storage holds the same bytes (formats.md 3.1): compare bytes.
    ASSERT_EQ(static_cast<int64_t>(expected_packed.bytes), (n + 1) / 2);

    const AlignedBytes a = aligned_copy(input);
    std::vector<uint8_t> packed(static_cast<size_t>((n + 1) / 2));
    std::vector<float> absmax(static_cast<size_t>(blocks));
    ASSERT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, quant_type(), dtype, a.data(), n, blocksize(),
                                            packed.data(), absmax.data())));
    EXPECT_TRUE(bits_equal(packed.data(), expected_packed.data, (n + 1) / 2, 1)) << "packed";

    if (!nested()) {
        EXPECT_TRUE(bits_equal(absmax.data(), golden().tensor("absmax").data, blocks, 4)) << "absmax";
        return;
    }
    std::vector<float> centered(absmax.size());
    for (size_t i = 0; i < absmax.size(); ++i) centered[i] = absmax[i] - offset();
    const int64_t nested_blocks = (blocks + kNestedBlocksize - 1) / kNestedBlocksize;
    const AlignedBytes nested_code = aligned_copy(golden().tensor("nested_code"));
    std::vector<uint8_t> nested_codes(static_cast<size_t>(blocks));
    std::vector<float> nested_absmax(static_cast<size_t>(nested_blocks));
    ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, centered.data(),
                                                 reinterpret_cast<const float*>(nested_code.data()), blocks,
                                                 kNestedBlocksize, nested_codes.data(), nested_absmax.data())));
    ASSERT_EQ(golden().tensor("absmax").dtype, "U8");
    EXPECT_TRUE(bits_equal(nested_codes.data(), golden().tensor("absmax").data, blocks, 1)) << "nested absmax codes";
    ASSERT_EQ(golden().tensor("nested_absmax").numel(), nested_blocks);
    EXPECT_TRUE(bits_equal(nested_absmax.data(), golden().tensor("nested_absmax").data, nested_blocks, 4))
        << "nested_absmax";
}

TEST_P(GoldenFourBit, DequantizeMatchesUpstream) {
    // Dequantizes upstream's packed bytes and statistics (not ours).
    const TensorView& expected = golden().tensor("dequant");
    const bnb_dtype dtype = dtype_from_safetensors(expected.dtype);
    const int64_t n = expected.numel();
    const int64_t blocks = (n + blocksize() - 1) / blocksize();

    std::vector<float> absmax(static_cast<size_t>(blocks));
    if (nested()) {
        const AlignedBytes nested_code = aligned_copy(golden().tensor("nested_code"));
        const AlignedBytes nested_absmax = aligned_copy(golden().tensor("nested_absmax"));
        ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(
            kCpu, nullptr, BNB_DTYPE_FLOAT32, golden().tensor("absmax").data,
            reinterpret_cast<const float*>(nested_code.data()), reinterpret_cast<const float*>(nested_absmax.data()),
            blocks, kNestedBlocksize, absmax.data())));
        for (float& scale : absmax) scale += offset();
    } else {
        std::memcpy(absmax.data(), golden().tensor("absmax").data, absmax.size() * sizeof(float));
    }
    AlignedBytes out(expected.bytes);
    ASSERT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, quant_type(), dtype, golden().tensor("packed").data,
                                              absmax.data(), n, blocksize(), out.data())));
    EXPECT_TRUE(bits_equal(out.data(), expected.data, n, expected.bytes / static_cast<size_t>(n)));
}

TEST(GoldenFourBitNested, NestedCodeIsTheSignedDynamicMap) {
    if (!golden_dir()) GTEST_SKIP() << golden_missing_reason();
    std::vector<float> ours(256);
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, ours.data(), 256)));
    int nested_cases = 0;
    for (const GoldenCase& golden : golden_cases("fourbit")) {
        if (!golden.has("nested_code")) continue;
        EXPECT_TRUE(bits_equal(ours.data(), golden.tensor("nested_code").data, 256, 4)) << golden.name;
        ++nested_cases;
    }
    EXPECT_GT(nested_cases, 0) << "the manifest has no nested 4-bit case";
}

INSTANTIATE_TEST_SUITE_P(Upstream, GoldenFourBit, ::testing::ValuesIn(golden_cases_with_role("fourbit", "packed")),
                         golden_case_name);
