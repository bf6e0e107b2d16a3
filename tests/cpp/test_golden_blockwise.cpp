// Blockwise 8-bit quantization on the CPU against upstream's output on an H100
// (shared/golden, group "quant"): codes, absmax and dequantized values must be
// bit-identical. The cases come from the manifest, one test per case.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/golden.h"
#include "support/golden_params.h"

using namespace bnb_test;

namespace {
class GoldenBlockwise : public GoldenCaseTest {};
}  // namespace

TEST_P(GoldenBlockwise, QuantizeMatchesUpstream) {
    const GoldenCase& golden = GetParam();
    const TensorView& input = golden.tensor("A");
    const bnb_dtype dtype = dtype_from_manifest(golden.arg_string("dtype"));
    ASSERT_EQ(dtype, dtype_from_safetensors(input.dtype));
    const int64_t n = input.numel();
    const int64_t blocksize = golden.arg_integer("blocksize");
    const int64_t blocks = (n + blocksize - 1) / blocksize;
    ASSERT_EQ(golden.tensor("absmax").numel(), blocks);

    const AlignedBytes a = aligned_copy(input);
    const AlignedBytes code = aligned_copy(golden.tensor("code"));
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    std::vector<float> absmax(static_cast<size_t>(blocks));
    ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, dtype, a.data(), reinterpret_cast<const float*>(code.data()),
                                                 n, blocksize, codes.data(), absmax.data())));
    EXPECT_TRUE(bits_equal(codes.data(), golden.tensor("q").data, n, 1)) << "codes";
    EXPECT_TRUE(bits_equal(absmax.data(), golden.tensor("absmax").data, blocks, 4)) << "absmax";
}

TEST_P(GoldenBlockwise, DequantizeMatchesUpstream) {
    // Dequantizes upstream's codes (not ours), so a quantize bug cannot hide here.
    const GoldenCase& golden = GetParam();
    const TensorView& expected = golden.tensor("dequant");
    const bnb_dtype dtype = dtype_from_safetensors(expected.dtype);
    const int64_t n = expected.numel();
    const int64_t blocksize = golden.arg_integer("blocksize");

    const AlignedBytes code = aligned_copy(golden.tensor("code"));
    const AlignedBytes absmax = aligned_copy(golden.tensor("absmax"));
    AlignedBytes out(expected.bytes);
    ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, dtype, golden.tensor("q").data,
                                                   reinterpret_cast<const float*>(code.data()),
                                                   reinterpret_cast<const float*>(absmax.data()), n, blocksize,
                                                   out.data())));
    EXPECT_TRUE(bits_equal(out.data(), expected.data, n, expected.bytes / static_cast<size_t>(n)));
}

TEST_P(GoldenBlockwise, UpstreamCodeIsTheSignedDynamicMap) {
    const TensorView& code = GetParam().tensor("code");
    std::vector<float> ours(256);
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, ours.data(), 256)));
    ASSERT_EQ(code.numel(), 256);
    EXPECT_TRUE(bits_equal(ours.data(), code.data, 256, 4));
}

INSTANTIATE_TEST_SUITE_P(Upstream, GoldenBlockwise, ::testing::ValuesIn(golden_cases_with_role("quant", "q")),
                         golden_case_name);
