// The CPU backend's kernel variants (instruction sets) as GoogleTest parameters:
// a suite parameterised by them runs every test once per variant this CPU has.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "abi_assertions.h"
#include "bitsandbytes/bitsandbytes.h"

namespace bnb_test {

// "scalar", then "avx2" and "avx512" where this CPU runs them.
inline std::vector<std::string> supported_cpu_variants() {
    std::vector<std::string> variants;
    for (const char* name : {"scalar", "avx2", "avx512"}) {
        if (bnb_backend_variant_supported(BNB_DEVICE_CPU, name)) variants.emplace_back(name);
    }
    return variants;
}

// Selects the parameter's variant for each test, then returns to "auto".
class CpuVariantTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override { ASSERT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, GetParam().c_str()))); }
    void TearDown() override { bnb_backend_select_variant(BNB_DEVICE_CPU, "auto"); }
};

inline std::string cpu_variant_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

}  // namespace bnb_test
