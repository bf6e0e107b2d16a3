// The bucketed 8-bit code search (csrc/cuda/quantize_common.cuh) gives the tree
// descent's code for every float, on codes where the buckets apply (the dynamic maps,
// a linear map with a zero threshold, magnitudes far below 2^-24 and above 1, a
// subnormal entry) and on
// codes where the kernels keep the descent (repeated entries, adjacent floats,
// subnormal entries, NaN, a decreasing map).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "cuda/device_buffer.h"
#include "cuda/kernels/code_search.h"
#include "support/optimizer_reference.h"

using namespace bnb_test;

namespace {

struct CodeCase {
    std::string name;
    std::vector<float> code;
    bool top_is_one;
    bool buckets_apply;
};

std::vector<float> linear_code() {
    std::vector<float> code(256);
    for (int i = 0; i < 256; ++i) code[i] = -1.0f + 2.0f * static_cast<float>(i) / 255.0f;
    return code;
}

// Powers of two from -1 to -2^-124, zero, 2^-124 to 1, then 2 to 32.
std::vector<float> octave_code() {
    std::vector<float> code;
    for (int e = 0; e <= 124; ++e) code.push_back(-std::ldexp(1.0f, -e));
    code.push_back(0.0f);
    for (int e = 124; e >= 0; --e) code.push_back(std::ldexp(1.0f, -e));
    for (int e = 1; e <= 5; ++e) code.push_back(std::ldexp(1.0f, e));
    return code;
}

std::vector<CodeCase> code_cases() {
    const std::vector<float> signed_map = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const std::vector<float> unsigned_map = codebook(BNB_CODEBOOK_DYNAMIC_UNSIGNED);
    std::vector<CodeCase> cases = {
        {"dynamic_signed_optimizer", signed_map, true, true},
        {"dynamic_unsigned_optimizer", unsigned_map, true, true},
        {"dynamic_signed_blockwise", signed_map, false, true},
        {"linear", linear_code(), true, true},
        {"octaves", octave_code(), false, true},
    };
    CodeCase repeated{"repeated_entry", signed_map, true, false};
    repeated.code[101] = repeated.code[100];
    CodeCase adjacent{"adjacent_floats", signed_map, true, false};
    adjacent.code[200] = std::nextafter(adjacent.code[199], 2.0f);
    // One subnormal entry compares as zero, as the 0 it replaces; two compare equal.
    const auto zero = std::find(signed_map.begin(), signed_map.end(), 0.0f) - signed_map.begin();
    CodeCase subnormal{"subnormal_entry", signed_map, true, true};
    subnormal.code[zero] = 1e-40f;
    CodeCase subnormals{"two_subnormal_entries", subnormal.code, true, false};
    subnormals.code[zero + 1] = 2e-40f;
    CodeCase nan{"nan_entry", signed_map, true, false};
    nan.code[7] = std::numeric_limits<float>::quiet_NaN();
    CodeCase decreasing{"decreasing", std::vector<float>(signed_map.rbegin(), signed_map.rend()), true, false};
    for (const CodeCase& c : {subnormal, repeated, adjacent, subnormals, nan, decreasing}) cases.push_back(c);
    return cases;
}

class CudaCodeSearch : public ::testing::TestWithParam<CodeCase> {
protected:
    void SetUp() override {
        int devices = 0;
        if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no CUDA device";
    }
};

TEST_P(CudaCodeSearch, BucketsGiveTheDescentsCodeForEveryFloat) {
    const CodeCase& c = GetParam();
    ASSERT_EQ(c.code.size(), 256u);
    const DeviceBuffer code(c.code.data(), c.code.size() * sizeof(float));
    const CodeSearchComparison result = compare_code_searches(code.get<float>(), c.top_is_one);
    ASSERT_TRUE(cuda_ok(result.error));
    EXPECT_EQ(result.buckets_apply, c.buckets_apply);
    char bits[16];
    std::snprintf(bits, sizeof(bits), "0x%08x", result.mismatch_bits);
    EXPECT_EQ(result.mismatches, 0u) << "for example s with bits " << bits;
}

INSTANTIATE_TEST_SUITE_P(Codes, CudaCodeSearch, ::testing::ValuesIn(code_cases()),
                         [](const ::testing::TestParamInfo<CodeCase>& info) { return info.param.name; });

}  // namespace
