// Codebooks through the C ABI: sizes, the properties the quantizers rely on, the
// exact bits of upstream's tables (from the golden files), and bnb_codebook_copy's
// argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/golden.h"

using namespace bnb_test;

namespace {

// Golden case name of each codebook in the "quant" group.
const struct {
    bnb_codebook which;
    const char* golden_case;
} kCodebooks[] = {
    {BNB_CODEBOOK_DYNAMIC_SIGNED, "dynamic_signed"},
    {BNB_CODEBOOK_DYNAMIC_UNSIGNED, "dynamic_unsigned"},
    {BNB_CODEBOOK_NF4, "nf4"},
    {BNB_CODEBOOK_FP4, "fp4"},
};

}  // namespace

TEST(Codebooks, Sizes) {
    EXPECT_EQ(bnb_codebook_size(BNB_CODEBOOK_DYNAMIC_SIGNED), 256);
    EXPECT_EQ(bnb_codebook_size(BNB_CODEBOOK_DYNAMIC_UNSIGNED), 256);
    EXPECT_EQ(bnb_codebook_size(BNB_CODEBOOK_NF4), 16);
    EXPECT_EQ(bnb_codebook_size(BNB_CODEBOOK_FP4), 16);
    EXPECT_EQ(bnb_codebook_size(BNB_CODEBOOK_NF4_THRESHOLDS), 15);
    EXPECT_EQ(bnb_codebook_size(BNB_CODEBOOK_FP4_THRESHOLDS), 7);
}

TEST(Codebooks, ThresholdsLieBetweenNeighbouringCodes) {
    // The NF4 code of s counts the thresholds s exceeds, so threshold k separates codes k and k + 1.
    const std::vector<float> values = codebook(BNB_CODEBOOK_NF4);
    const std::vector<float> thresholds = codebook(BNB_CODEBOOK_NF4_THRESHOLDS);
    ASSERT_EQ(thresholds.size(), 15u);
    for (size_t k = 0; k < thresholds.size(); ++k) {
        EXPECT_GT(thresholds[k], values[k]) << k;
        EXPECT_LT(thresholds[k], values[k + 1]) << k;
    }
    const std::vector<float> fp4 = codebook(BNB_CODEBOOK_FP4_THRESHOLDS);
    ASSERT_EQ(fp4.size(), 7u);
    EXPECT_TRUE(std::is_sorted(fp4.begin(), fp4.end()));
    EXPECT_GT(fp4.front(), 0.0f);
    EXPECT_LT(fp4.back(), 1.0f);
}

TEST(Codebooks, UnknownCodebookHasSizeZero) {
    EXPECT_EQ(bnb_codebook_size(static_cast<bnb_codebook>(6)), 0);
    EXPECT_EQ(bnb_codebook_size(static_cast<bnb_codebook>(-1)), 0);
}

TEST(Codebooks, MapsThatQuantizeBySearchAreSortedWithinUnitRange) {
    // quantize_blockwise's binary search and NF4's threshold count both need an
    // ascending table; every map is normalised to a maximum magnitude of 1.
    for (bnb_codebook which : {BNB_CODEBOOK_DYNAMIC_SIGNED, BNB_CODEBOOK_DYNAMIC_UNSIGNED, BNB_CODEBOOK_NF4}) {
        const std::vector<float> values = codebook(which);
        EXPECT_TRUE(std::is_sorted(values.begin(), values.end())) << "codebook " << which;
        EXPECT_EQ(values.back(), 1.0f) << "codebook " << which;
        for (float value : values) EXPECT_LE(std::fabs(value), 1.0f) << "codebook " << which;
    }
    EXPECT_EQ(codebook(BNB_CODEBOOK_DYNAMIC_UNSIGNED).front(), 0.0f);
    EXPECT_EQ(codebook(BNB_CODEBOOK_NF4).front(), -1.0f);
}

TEST(Codebooks, Nf4HasAnExactZeroAtCode7) { EXPECT_EQ(codebook(BNB_CODEBOOK_NF4)[7], 0.0f); }

TEST(Codebooks, Fp4NegativeHalfMirrorsThePositiveHalf) {
    // The sign is bit 3 of the code; the table as upstream returns it has +0 at code 8.
    const std::vector<float> values = codebook(BNB_CODEBOOK_FP4);
    for (int code = 1; code < 8; ++code) EXPECT_EQ(values[static_cast<size_t>(code + 8)], -values[static_cast<size_t>(code)]);
    EXPECT_FALSE(std::signbit(values[8]));
    EXPECT_EQ(*std::max_element(values.begin(), values.end()), 1.0f);
}

TEST(Codebooks, BitsEqualUpstreams) {
    if (!golden_dir()) GTEST_SKIP() << golden_missing_reason();
    const std::vector<GoldenCase> cases = golden_cases("quant");
    for (const auto& book : kCodebooks) {
        const auto found = std::find_if(cases.begin(), cases.end(),
                                        [&](const GoldenCase& c) { return c.name == book.golden_case; });
        ASSERT_NE(found, cases.end()) << "manifest lacks case " << book.golden_case;
        const TensorView& golden = found->tensor("code");
        ASSERT_EQ(golden.dtype, "F32");
        ASSERT_EQ(golden.numel(), bnb_codebook_size(book.which)) << book.golden_case;
        const std::vector<float> values = codebook(book.which);
        EXPECT_TRUE(bits_equal(values.data(), golden.data, golden.numel(), 4)) << book.golden_case;
    }
}

TEST(CodebookCopy, CopiesExactlySizeEntriesIntoALargerBuffer) {
    std::vector<float> buffer(300, 42.0f);
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_NF4, buffer.data(), 300)));
    EXPECT_EQ(buffer[0], -1.0f);
    EXPECT_EQ(buffer[15], 1.0f);
    for (size_t i = 16; i < buffer.size(); ++i) ASSERT_EQ(buffer[i], 42.0f) << "wrote past the codebook at " << i;
}

TEST(CodebookCopy, RejectsTooSmallCapacity) {
    std::vector<float> buffer(256, 42.0f);
    EXPECT_TRUE(failed_with(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, buffer.data(), 255),
                            BNB_STATUS_INVALID_ARGUMENT, {"capacity", "256", "255"}));
    EXPECT_TRUE(failed_with(bnb_codebook_copy(BNB_CODEBOOK_FP4, buffer.data(), 0), BNB_STATUS_INVALID_ARGUMENT,
                            {"capacity", "16"}));
    EXPECT_TRUE(failed_with(bnb_codebook_copy(BNB_CODEBOOK_FP4, buffer.data(), -5), BNB_STATUS_INVALID_ARGUMENT,
                            {"capacity", "-5"}));
    for (float value : buffer) ASSERT_EQ(value, 42.0f) << "a rejected copy wrote to out";
}

TEST(CodebookCopy, RejectsNullOut) {
    EXPECT_TRUE(failed_with(bnb_codebook_copy(BNB_CODEBOOK_NF4, nullptr, 16), BNB_STATUS_INVALID_ARGUMENT,
                            {"out", "NULL"}));
}

TEST(CodebookCopy, RejectsUnknownCodebook) {
    float buffer[256];
    for (int which : {6, -1, 1000}) {
        EXPECT_TRUE(failed_with(bnb_codebook_copy(static_cast<bnb_codebook>(which), buffer, 256),
                                BNB_STATUS_INVALID_ARGUMENT, {"which", std::to_string(which)}))
            << which;
    }
}
