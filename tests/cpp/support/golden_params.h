// Golden cases as GoogleTest parameters. Without golden data the list holds one
// placeholder case, so that the suite reports a skip with the reason instead of
// silently running nothing.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "abi_assertions.h"
#include "golden.h"

namespace bnb_test {

inline constexpr const char* kGoldenMissingCase = "golden_data_missing";

// The cases of `group` that have a tensor of `role`.
inline std::vector<GoldenCase> golden_cases_with_role(const std::string& group, const std::string& role) {
    std::vector<GoldenCase> selected;
    for (GoldenCase& golden_case : golden_cases(group)) {
        if (golden_case.has(role)) selected.push_back(std::move(golden_case));
    }
    if (selected.empty()) {
        GoldenCase placeholder;
        placeholder.group = group;
        placeholder.name = kGoldenMissingCase;
        selected.push_back(std::move(placeholder));
    }
    return selected;
}

// Fixture of a golden suite: skips the placeholder with the reason, or fails it
// when golden data exists but the manifest no longer has the cases a suite needs.
class GoldenCaseTest : public ::testing::TestWithParam<GoldenCase> {
protected:
    void SetUp() override {
        if (GetParam().name != kGoldenMissingCase) return;
        if (golden_dir()) FAIL() << "the manifest lists no usable case in group " << GetParam().group;
        GTEST_SKIP() << golden_missing_reason();
    }
};

inline std::string golden_case_name(const ::testing::TestParamInfo<GoldenCase>& info) { return info.param.name; }

// Tensor bytes from the file start wherever the safetensors layout puts them;
// the C ABI requires element alignment, so tests pass aligned copies.
inline AlignedBytes aligned_copy(const TensorView& tensor) {
    AlignedBytes copy(tensor.bytes);
    std::memcpy(copy.data(), tensor.data, tensor.bytes);
    return copy;
}

}  // namespace bnb_test
