// Library-level functions of the C ABI: version, ABI level, status names and the
// backend queries.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"

using namespace bnb_test;

TEST(Library, VersionIsTheProjectVersion) {
    // The version string comes from project(VERSION) in CMakeLists.txt; the build
    // passes the same value here so that the two cannot drift apart.
    EXPECT_STREQ(bnb_version(), BNB_EXPECTED_VERSION);
}

// Any int a C caller passes must be a valid value of the enum parameter on the C++
// side (rejected by validation, not undefined behaviour): the header fixes int as
// the underlying type when compiled as C++.
TEST(Library, EnumsHaveIntAsUnderlyingTypeInCpp) {
    static_assert(std::is_same_v<std::underlying_type_t<bnb_status>, int>);
    static_assert(std::is_same_v<std::underlying_type_t<bnb_dtype>, int>);
    static_assert(std::is_same_v<std::underlying_type_t<bnb_device_type>, int>);
    static_assert(std::is_same_v<std::underlying_type_t<bnb_quant_type>, int>);
    static_assert(std::is_same_v<std::underlying_type_t<bnb_codebook>, int>);
    static_assert(std::is_same_v<std::underlying_type_t<bnb_gemm_4bit_algo>, int>);
    EXPECT_EQ(sizeof(bnb_dtype), sizeof(int));
}

TEST(Library, VersionIsSemantic) {
    int major = -1, minor = -1, patch = -1;
    ASSERT_EQ(std::sscanf(bnb_version(), "%d.%d.%d", &major, &minor, &patch), 3) << bnb_version();
    EXPECT_GE(major, 0);
    EXPECT_GE(minor, 0);
    EXPECT_GE(patch, 0);
}

TEST(Library, AbiVersionOfTheLoadedLibraryMatchesTheHeader) {
    EXPECT_EQ(bnb_abi_version(), BNB_ABI_VERSION);
    EXPECT_GE(bnb_abi_version(), 1);
}

TEST(Library, EveryStatusHasItsOwnName) {
    const struct {
        bnb_status status;
        const char* name;
    } expected[] = {
        {BNB_STATUS_SUCCESS, "BNB_STATUS_SUCCESS"},
        {BNB_STATUS_INVALID_ARGUMENT, "BNB_STATUS_INVALID_ARGUMENT"},
        {BNB_STATUS_UNSUPPORTED, "BNB_STATUS_UNSUPPORTED"},
        {BNB_STATUS_BACKEND_UNAVAILABLE, "BNB_STATUS_BACKEND_UNAVAILABLE"},
        {BNB_STATUS_BACKEND_ERROR, "BNB_STATUS_BACKEND_ERROR"},
        {BNB_STATUS_OUT_OF_MEMORY, "BNB_STATUS_OUT_OF_MEMORY"},
        {BNB_STATUS_INTERNAL, "BNB_STATUS_INTERNAL"},
    };
    for (const auto& entry : expected) EXPECT_STREQ(bnb_status_name(entry.status), entry.name);
}

TEST(Library, UnknownStatusHasAPlaceholderName) {
    EXPECT_STREQ(bnb_status_name(static_cast<bnb_status>(7)), "BNB_STATUS_UNKNOWN");
    EXPECT_STREQ(bnb_status_name(static_cast<bnb_status>(-1)), "BNB_STATUS_UNKNOWN");
}

TEST(Library, LastErrorIsEmptyOnAFreshThread) {
    std::string seen = "not run";
    std::thread([&] { seen = bnb_last_error(); }).join();
    EXPECT_EQ(seen, "");
}

TEST(Backends, NamesOfEveryDeviceType) {
    EXPECT_STREQ(bnb_backend_name(BNB_DEVICE_CPU), "cpu");
    EXPECT_STREQ(bnb_backend_name(BNB_DEVICE_CUDA), "cuda");
    EXPECT_STREQ(bnb_backend_name(BNB_DEVICE_HIP), "hip");
    EXPECT_STREQ(bnb_backend_name(BNB_DEVICE_METAL), "metal");
    EXPECT_STREQ(bnb_backend_name(static_cast<bnb_device_type>(BNB_DEVICE_TYPE_COUNT)), "unknown");
    EXPECT_STREQ(bnb_backend_name(static_cast<bnb_device_type>(-1)), "unknown");
}

TEST(Backends, CpuIsAlwaysBuiltAndAvailable) {
    EXPECT_EQ(bnb_backend_built(BNB_DEVICE_CPU), 1);
    EXPECT_EQ(bnb_backend_available(BNB_DEVICE_CPU), 1);
}

TEST(Backends, AvailableImpliesBuilt) {
    for (int type = 0; type < BNB_DEVICE_TYPE_COUNT; ++type) {
        const auto device_type = static_cast<bnb_device_type>(type);
        const int built = bnb_backend_built(device_type);
        const int available = bnb_backend_available(device_type);
        EXPECT_TRUE(built == 0 || built == 1) << bnb_backend_name(device_type);
        EXPECT_TRUE(available == 0 || available == 1) << bnb_backend_name(device_type);
        if (available) {
            EXPECT_EQ(built, 1) << bnb_backend_name(device_type);
        }
    }
}

TEST(Backends, OutOfRangeDeviceTypesAreNeitherBuiltNorAvailable) {
    for (int type : {-1, BNB_DEVICE_TYPE_COUNT, 1000}) {
        EXPECT_EQ(bnb_backend_built(static_cast<bnb_device_type>(type)), 0) << type;
        EXPECT_EQ(bnb_backend_available(static_cast<bnb_device_type>(type)), 0) << type;
    }
}

// The host is one device: index 0, as torch's CPU tensors report it.
TEST(Backends, CpuDeviceIndexMustBeZero) {
    float input[64] = {};
    uint8_t packed[32] = {};
    float absmax[1] = {};
    const auto quantize = [&](int index) {
        return bnb_quantize_4bit({BNB_DEVICE_CPU, index}, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, input, 64, 64,
                                 packed, absmax);
    };
    EXPECT_EQ(quantize(0), BNB_STATUS_SUCCESS) << bnb_last_error();
    EXPECT_EQ(quantize(1), BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("device.index must be < 1 (the cpu devices present), got 1"),
              std::string::npos)
        << bnb_last_error();
}

// Indices beyond the GPUs present are rejected before any CUDA call.
TEST(Backends, CudaDeviceIndexBeyondTheDeviceCountIsRejected) {
    if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
    float absmax[1] = {};
    const bnb_status status = bnb_dequantize_4bit({BNB_DEVICE_CUDA, 4096}, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32,
                                                  reinterpret_cast<const uint8_t*>(absmax), absmax, 2, 64, absmax);
    EXPECT_EQ(status, BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("got 4096"), std::string::npos) << bnb_last_error();
}

TEST(Library, BackendSupportsNamesOpsOfTheOpList) {
    // The CPU backend implements every quantization op; unknown names and null are 0.
    for (const char* op : {"quantize_blockwise", "dequantize_blockwise", "quantize_4bit", "dequantize_4bit"}) {
        EXPECT_EQ(bnb_backend_supports(BNB_DEVICE_CPU, op), 1) << op;
    }
    EXPECT_EQ(bnb_backend_supports(BNB_DEVICE_CPU, "quantize_8bit"), 0);
    EXPECT_EQ(bnb_backend_supports(BNB_DEVICE_CPU, nullptr), 0);
    EXPECT_EQ(bnb_backend_supports(static_cast<bnb_device_type>(BNB_DEVICE_TYPE_COUNT), "quantize_4bit"), 0);
    if (!bnb_backend_built(BNB_DEVICE_METAL)) EXPECT_EQ(bnb_backend_supports(BNB_DEVICE_METAL, "quantize_4bit"), 0);
}

TEST(Library, OpBlocksizesAreTheFormatsAccepted) {
    int64_t values[16] = {};
    int64_t count = -1;
    ASSERT_TRUE(succeeded(bnb_op_blocksizes("quantize_blockwise", values, 16, &count)));
    ASSERT_EQ(count, 7);
    EXPECT_EQ(values[0], 64);
    EXPECT_EQ(values[6], 4096);
    ASSERT_TRUE(succeeded(bnb_op_blocksizes("quantize_4bit", values, 16, &count)));
    EXPECT_EQ(count, 8);
    EXPECT_EQ(values[0], 32);
    ASSERT_TRUE(succeeded(bnb_op_blocksizes("dequantize_blockwise", values, 16, &count)));
    EXPECT_EQ(count, 9);
    EXPECT_EQ(values[0], 16);
    // A short buffer gets the first values and the full count.
    int64_t first[2] = {};
    ASSERT_TRUE(succeeded(bnb_op_blocksizes("gemm_4bit", first, 2, &count)));
    EXPECT_EQ(count, 8);
    EXPECT_EQ(first[0], 32);
    EXPECT_EQ(first[1], 64);
    ASSERT_TRUE(succeeded(bnb_op_blocksizes("gemv_4bit", nullptr, 0, &count)));
    EXPECT_EQ(count, 8);

    EXPECT_TRUE(failed_with(bnb_op_blocksizes("int4", values, 16, &count), BNB_STATUS_INVALID_ARGUMENT, {"op", "int4"}));
    EXPECT_TRUE(failed_with(bnb_op_blocksizes(nullptr, values, 16, &count), BNB_STATUS_INVALID_ARGUMENT, {"op", "NULL"}));
    EXPECT_TRUE(failed_with(bnb_op_blocksizes("quantize_4bit", values, 16, nullptr), BNB_STATUS_INVALID_ARGUMENT,
                            {"count must not be NULL"}));
    EXPECT_TRUE(failed_with(bnb_op_blocksizes("quantize_4bit", nullptr, 4, &count), BNB_STATUS_INVALID_ARGUMENT,
                            {"out must not be NULL"}));
    EXPECT_TRUE(failed_with(bnb_op_blocksizes("quantize_4bit", values, -1, &count), BNB_STATUS_INVALID_ARGUMENT,
                            {"capacity must be >= 0", "-1"}));
    EXPECT_EQ(bnb_nested_blocksize(), 256);
}

TEST(Library, BackendsWithoutVariantsSaySo) {
    // Only the CPU backend has kernel variants (test_cpu_isa.cpp covers them).
    EXPECT_NE(bnb_backend_variant(BNB_DEVICE_CPU), nullptr);
    for (bnb_device_type type : {BNB_DEVICE_CUDA, BNB_DEVICE_HIP, BNB_DEVICE_METAL}) {
        EXPECT_EQ(bnb_backend_variant(type), nullptr) << type;
        EXPECT_EQ(bnb_backend_variant_supported(type, "auto"), 0) << type;
        const bnb_status status = bnb_backend_select_variant(type, "auto");
        EXPECT_EQ(status, bnb_backend_built(type) ? BNB_STATUS_UNSUPPORTED : BNB_STATUS_BACKEND_UNAVAILABLE) << type;
        EXPECT_STRNE(bnb_last_error(), "");
    }
    EXPECT_EQ(bnb_backend_variant_supported(BNB_DEVICE_CPU, nullptr), 0);
    EXPECT_TRUE(failed_with(bnb_backend_select_variant(BNB_DEVICE_CPU, nullptr), BNB_STATUS_INVALID_ARGUMENT, {"name"}));
}
