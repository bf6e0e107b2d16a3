// bnb_gemm_4bit, bnb_gemv_4bit and bnb_gemm_4bit_fused_max_rows in the core: every
// argument check, and what reaches the backend's gemm_4bit slot. A recording test
// backend stands in for a device (this binary links the core without backends,
// see test_backend_table.cpp), so the checks run on any machine.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend.h"
#include "bitsandbytes/bitsandbytes.h"
#include "status.h"

namespace {

constexpr bnb_device_type kTestDeviceType = BNB_DEVICE_METAL;
constexpr bnb_device kTestDevice = {kTestDeviceType, 0};

struct Recorded {
    int gemm_calls = 0;
    bnb::Gemm4bitArgs gemm{};
    int max_rows_calls = 0;
    bnb::Gemm4bitShape shape{};
};
Recorded recorded;

// Four devices, so that tests can pass indices other than 0.
int four_devices() { return 4; }

bnb_status record_gemm(const bnb::Gemm4bitArgs& args) {
    ++recorded.gemm_calls;
    recorded.gemm = args;
    return BNB_STATUS_SUCCESS;
}

const bnb::BackendOps kRecording = {
    .name = "test_recording",
    .device_count = four_devices,
    .gemm_4bit = record_gemm,
    .gemv_4bit = record_gemm,
    .gemm_4bit_fused_max_rows =
        [](const bnb::Gemm4bitShape& shape, int64_t* max_rows) {
            ++recorded.max_rows_calls;
            recorded.shape = shape;
            *max_rows = 7;
            return BNB_STATUS_SUCCESS;
        },
};

const bnb::BackendOps kNoMatmul = {.name = "test_no_matmul", .device_count = four_devices};

// A valid call for a [4, 64] x [8, 64]^T product, blocksize 64, nested statistics
// optional; each test changes one argument.
struct GemmCall {
    bnb_device device = kTestDevice;
    void* stream = nullptr;
    bnb_dtype dtype = BNB_DTYPE_FLOAT16;
    bnb_quant_type quant_type = BNB_QUANT_NF4;
    int64_t M = 4, K = 64, N = 8, blocksize = 64;
    const void* A;
    const uint8_t* B;
    const float* absmax;
    const uint8_t* absmax_8bit = nullptr;
    const float* absmax_code = nullptr;
    const float* absmax_offset = nullptr;
    const void* bias = nullptr;
    bnb_gemm_4bit_algo algo = BNB_GEMM_4BIT_AUTO;
    void* workspace = nullptr;
    int64_t workspace_bytes = 0;
    void* out;

    bnb_status run() const {
        return bnb_gemm_4bit(device, stream, dtype, quant_type, A, M, K, B, N, blocksize, absmax, absmax_8bit,
                             absmax_code, absmax_offset, bias, algo, workspace, workspace_bytes, out);
    }
};

class Gemm4bitEntry : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(bnb::backend_ops(kTestDeviceType), nullptr);
        bnb::register_backend(kTestDeviceType, &kRecording);
        recorded = Recorded{};
    }
    void TearDown() override { bnb::register_backend(kTestDeviceType, nullptr); }

    GemmCall valid_call() {
        GemmCall call;
        call.A = a_.data();
        call.B = b_.data();
        call.absmax = absmax_.data();
        call.out = out_.data();
        return call;
    }
    GemmCall valid_nested_call() {
        GemmCall call = valid_call();
        call.absmax_8bit = absmax_codes_.data();
        call.absmax_code = code_.data();
        call.absmax_offset = &offset_;
        return call;
    }

    ::testing::AssertionResult rejected(const GemmCall& call, const std::string& words) {
        const bnb_status status = call.run();
        const std::string message = bnb_last_error();
        if (status != BNB_STATUS_INVALID_ARGUMENT) {
            return ::testing::AssertionFailure() << bnb_status_name(status) << " (\"" << message << "\")";
        }
        if (message.find(words) == std::string::npos) {
            return ::testing::AssertionFailure() << "message \"" << message << "\" lacks \"" << words << "\"";
        }
        if (recorded.gemm_calls != 0) return ::testing::AssertionFailure() << "the backend was called";
        return ::testing::AssertionSuccess();
    }

    std::vector<uint16_t> a_ = std::vector<uint16_t>(4 * 64);
    std::vector<uint8_t> b_ = std::vector<uint8_t>(8 * 64 / 2);
    std::vector<float> absmax_ = std::vector<float>(8);
    std::vector<uint8_t> absmax_codes_ = std::vector<uint8_t>(8);
    std::vector<float> code_ = std::vector<float>(256);
    float offset_ = 0.5f;
    std::vector<uint16_t> bias_ = std::vector<uint16_t>(8);
    std::vector<uint16_t> out_ = std::vector<uint16_t>(4 * 8);
};

}  // namespace

TEST_F(Gemm4bitEntry, ValidCallReachesTheSlotUnchanged) {
    int stream_object = 0;
    GemmCall call = valid_nested_call();
    call.stream = &stream_object;
    call.device.index = 2;
    call.bias = bias_.data();
    call.algo = BNB_GEMM_4BIT_TENSOR_CORE;
    call.quant_type = BNB_QUANT_FP4;
    ASSERT_EQ(call.run(), BNB_STATUS_SUCCESS) << bnb_last_error();
    ASSERT_EQ(recorded.gemm_calls, 1);
    const bnb::Gemm4bitArgs& args = recorded.gemm;
    EXPECT_EQ(args.device.index, 2);
    EXPECT_EQ(args.stream, &stream_object);
    EXPECT_EQ(args.dtype, BNB_DTYPE_FLOAT16);
    EXPECT_EQ(args.quant_type, BNB_QUANT_FP4);
    EXPECT_EQ(args.code, nullptr);
    EXPECT_EQ(args.A, a_.data());
    EXPECT_EQ(args.B, b_.data());
    EXPECT_EQ(args.absmax, absmax_.data());
    EXPECT_EQ(args.absmax_8bit, absmax_codes_.data());
    EXPECT_EQ(args.absmax_code, code_.data());
    EXPECT_EQ(args.absmax_offset, &offset_);
    EXPECT_EQ(args.bias, bias_.data());
    EXPECT_EQ(args.M, 4);
    EXPECT_EQ(args.N, 8);
    EXPECT_EQ(args.K, 64);
    EXPECT_EQ(args.blocksize, 64);
    EXPECT_EQ(args.algo, BNB_GEMM_4BIT_TENSOR_CORE);
    EXPECT_EQ(args.out, out_.data());
}

TEST_F(Gemm4bitEntry, GemvPassesItsCodebookAndNoBias) {
    int stream_object = 0;
    ASSERT_EQ(bnb_gemv_4bit(kTestDevice, &stream_object, BNB_DTYPE_BFLOAT16, a_.data(), 4, 64, b_.data(), 8,
                            code_.data(), absmax_.data(), 64, out_.data()),
              BNB_STATUS_SUCCESS)
        << bnb_last_error();
    ASSERT_EQ(recorded.gemm_calls, 1);
    EXPECT_EQ(recorded.gemm.code, code_.data());
    EXPECT_EQ(recorded.gemm.absmax_8bit, nullptr);
    EXPECT_EQ(recorded.gemm.bias, nullptr);
    EXPECT_EQ(recorded.gemm.algo, BNB_GEMM_4BIT_AUTO);
    EXPECT_EQ(recorded.gemm.stream, &stream_object);
}

TEST_F(Gemm4bitEntry, MissingSlotIsUnsupportedNamingEachEntryPoint) {
    bnb::register_backend(kTestDeviceType, &kNoMatmul);
    EXPECT_EQ(valid_call().run(), BNB_STATUS_UNSUPPORTED);
    EXPECT_STREQ(bnb_last_error(), "gemm_4bit is not supported by the test_no_matmul backend");
    EXPECT_EQ(bnb_gemv_4bit(kTestDevice, nullptr, BNB_DTYPE_FLOAT16, a_.data(), 4, 64, b_.data(), 8, code_.data(),
                            absmax_.data(), 64, out_.data()),
              BNB_STATUS_UNSUPPORTED);
    EXPECT_STREQ(bnb_last_error(), "gemv_4bit is not supported by the test_no_matmul backend");
    int64_t max_rows = -1;
    EXPECT_EQ(bnb_gemm_4bit_fused_max_rows(kTestDevice, BNB_DTYPE_FLOAT16, 8, 64, 64, &max_rows),
              BNB_STATUS_UNSUPPORTED);
    EXPECT_STREQ(bnb_last_error(), "gemm_4bit_fused_max_rows is not supported by the test_no_matmul backend");
    EXPECT_EQ(max_rows, -1);
}

TEST_F(Gemm4bitEntry, NegativeDimensions) {
    for (const char* name : {"M", "N", "K"}) {
        GemmCall call = valid_call();
        (name[0] == 'M' ? call.M : name[0] == 'N' ? call.N : call.K) = -3;
        EXPECT_TRUE(rejected(call, std::string(name) + " must be >= 0, got -3")) << name;
    }
}

TEST_F(Gemm4bitEntry, DimensionsWhoseProductsOverflow) {
    // Each dimension alone is acceptable; M*K (and N*K) times the element size is
    // not representable, so the byte checks must not wrap around to small sizes.
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{int64_t{1} << 32, 8, int64_t{1} << 32},
                           std::tuple<int64_t, int64_t, int64_t>{4, int64_t{1} << 40, int64_t{1} << 30},
                           std::tuple<int64_t, int64_t, int64_t>{int64_t{1} << 40, int64_t{1} << 40, 64}}) {
        GemmCall call = valid_call();
        call.M = M;
        call.N = N;
        call.K = K;
        EXPECT_TRUE(rejected(call, "must be <=")) << M << " x " << N << " x " << K;
    }
}

TEST_F(Gemm4bitEntry, InvalidEnumsAndBlocksize) {
    GemmCall call = valid_call();
    call.dtype = BNB_DTYPE_INT8;
    EXPECT_TRUE(rejected(call, "dtype must be float32, float16 or bfloat16"));
    call = valid_call();
    call.quant_type = static_cast<bnb_quant_type>(2);
    EXPECT_TRUE(rejected(call, "quant_type must be BNB_QUANT_NF4 or BNB_QUANT_FP4, got 2"));
    call = valid_call();
    call.algo = static_cast<bnb_gemm_4bit_algo>(5);
    EXPECT_TRUE(rejected(call, "algo must be a bnb_gemm_4bit_algo, got 5"));
    for (int64_t blocksize : {int64_t{0}, int64_t{16}, int64_t{100}, int64_t{8192}}) {
        call = valid_call();
        call.blocksize = blocksize;
        EXPECT_TRUE(rejected(call, "blocksize must be one of 32, 64, 128, 256, 512, 1024, 2048, 4096, got " +
                                       std::to_string(blocksize)));
    }
}

TEST_F(Gemm4bitEntry, NullBuffers) {
    for (const char* name : {"A", "B", "absmax", "out"}) {
        GemmCall call = valid_call();
        const std::string which = name;
        if (which == "A") call.A = nullptr;
        if (which == "B") call.B = nullptr;
        if (which == "absmax") call.absmax = nullptr;
        if (which == "out") call.out = nullptr;
        EXPECT_TRUE(rejected(call, which + " must not be NULL")) << name;
    }
}

TEST_F(Gemm4bitEntry, NestedStatisticsNeedCodeAndOffset) {
    GemmCall call = valid_nested_call();
    call.absmax_code = nullptr;
    EXPECT_TRUE(rejected(call, "absmax_code must not be NULL when absmax_8bit is given"));
    call = valid_nested_call();
    call.absmax_offset = nullptr;
    EXPECT_TRUE(rejected(call, "absmax_offset must not be NULL when absmax_8bit is given"));
}

TEST_F(Gemm4bitEntry, MisalignedAndOverlappingBuffers) {
    GemmCall call = valid_call();
    call.A = reinterpret_cast<const uint8_t*>(a_.data()) + 1;
    EXPECT_TRUE(rejected(call, "A must be aligned to 2 bytes"));
    call = valid_call();
    call.bias = reinterpret_cast<const uint8_t*>(bias_.data()) + 1;
    EXPECT_TRUE(rejected(call, "bias must be aligned to 2 bytes"));
    call = valid_call();
    call.out = const_cast<void*>(call.A);
    EXPECT_TRUE(rejected(call, "A and out must not overlap"));
    call = valid_call();
    call.out = absmax_.data();
    EXPECT_TRUE(rejected(call, "absmax and out must not overlap"));
}

TEST_F(Gemm4bitEntry, EmptyProductsNeverReachTheBackend) {
    for (auto [M, N] : {std::pair<int64_t, int64_t>{0, 8}, std::pair<int64_t, int64_t>{4, 0}}) {
        GemmCall call;
        call.M = M;
        call.N = N;
        call.A = nullptr;
        call.B = nullptr;
        call.absmax = nullptr;
        call.out = nullptr;
        EXPECT_EQ(call.run(), BNB_STATUS_SUCCESS) << bnb_last_error();
        EXPECT_EQ(bnb_gemv_4bit(kTestDevice, nullptr, BNB_DTYPE_FLOAT32, nullptr, M, 64, nullptr, N, nullptr, nullptr,
                                64, nullptr),
                  BNB_STATUS_SUCCESS)
            << bnb_last_error();
    }
    EXPECT_EQ(recorded.gemm_calls, 0);
}

TEST_F(Gemm4bitEntry, GemvNeedsACodebook) {
    EXPECT_EQ(bnb_gemv_4bit(kTestDevice, nullptr, BNB_DTYPE_FLOAT16, a_.data(), 4, 64, b_.data(), 8, nullptr,
                            absmax_.data(), 64, out_.data()),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("code must not be NULL"), std::string::npos) << bnb_last_error();
    EXPECT_EQ(recorded.gemm_calls, 0);
}

TEST_F(Gemm4bitEntry, FusedMaxRows) {
    int64_t max_rows = -1;
    ASSERT_EQ(bnb_gemm_4bit_fused_max_rows(kTestDevice, BNB_DTYPE_BFLOAT16, 4096, 11008, 64, &max_rows),
              BNB_STATUS_SUCCESS)
        << bnb_last_error();
    EXPECT_EQ(max_rows, 7);
    EXPECT_EQ(recorded.shape.N, 4096);
    EXPECT_EQ(recorded.shape.K, 11008);
    EXPECT_EQ(recorded.shape.blocksize, 64);
    EXPECT_EQ(recorded.shape.dtype, BNB_DTYPE_BFLOAT16);

    EXPECT_EQ(bnb_gemm_4bit_fused_max_rows(kTestDevice, BNB_DTYPE_BFLOAT16, 4096, 11008, 64, nullptr),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("max_rows must not be NULL"), std::string::npos);
    EXPECT_EQ(bnb_gemm_4bit_fused_max_rows(kTestDevice, BNB_DTYPE_BFLOAT16, -1, 11008, 64, &max_rows),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("N must be >= 0"), std::string::npos);
    EXPECT_EQ(bnb_gemm_4bit_fused_max_rows(kTestDevice, BNB_DTYPE_BFLOAT16, 4096, 11008, 48, &max_rows),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("blocksize"), std::string::npos);
    EXPECT_EQ(recorded.max_rows_calls, 1);
}

TEST_F(Gemm4bitEntry, WorkspaceSizeAsksTheBackendOrIsZero) {
    // kRecording has no workspace query: its gemm_4bit needs none.
    int64_t bytes = -1;
    ASSERT_EQ(bnb_gemm_4bit_workspace_size(kTestDevice, BNB_DTYPE_BFLOAT16, 256, 4096, 4096, 64, 1,
                                           BNB_GEMM_4BIT_AUTO, &bytes),
              BNB_STATUS_SUCCESS)
        << bnb_last_error();
    EXPECT_EQ(bytes, 0);
    EXPECT_EQ(bnb_gemm_4bit_workspace_size(kTestDevice, BNB_DTYPE_BFLOAT16, 256, 4096, 4096, 64, 1,
                                           BNB_GEMM_4BIT_AUTO, nullptr),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("bytes must not be NULL"), std::string::npos);
    EXPECT_EQ(bnb_gemm_4bit_workspace_size(kTestDevice, BNB_DTYPE_BFLOAT16, -2, 4096, 4096, 64, 1,
                                           BNB_GEMM_4BIT_AUTO, &bytes),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("M must be >= 0"), std::string::npos);
    EXPECT_EQ(bnb_gemm_4bit_workspace_size(kTestDevice, BNB_DTYPE_BFLOAT16, 1, 4096, 4096, 64, 0,
                                           static_cast<bnb_gemm_4bit_algo>(9), &bytes),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(bnb_last_error()).find("algo"), std::string::npos);

    bnb::register_backend(kTestDeviceType, &kNoMatmul);
    EXPECT_EQ(bnb_gemm_4bit_workspace_size(kTestDevice, BNB_DTYPE_BFLOAT16, 1, 8, 64, 64, 0, BNB_GEMM_4BIT_AUTO,
                                           &bytes),
              BNB_STATUS_UNSUPPORTED);
}

TEST_F(Gemm4bitEntry, WorkspaceIsDescribedAndChecked) {
    alignas(256) static uint8_t workspace[1024];
    GemmCall call = valid_call();
    call.workspace = workspace;
    call.workspace_bytes = sizeof(workspace);
    ASSERT_EQ(call.run(), BNB_STATUS_SUCCESS) << bnb_last_error();
    EXPECT_EQ(recorded.gemm.workspace, workspace);
    EXPECT_EQ(recorded.gemm.workspace_bytes, 1024);
    recorded = Recorded{};
    call.workspace_bytes = -1;
    EXPECT_TRUE(rejected(call, "workspace_bytes must be >= 0"));
    call.workspace_bytes = 1024;
    call.workspace = workspace + 16;
    EXPECT_TRUE(rejected(call, "workspace must be aligned to 256 bytes"));
    call.workspace = nullptr;
    EXPECT_TRUE(rejected(call, "workspace must not be NULL"));
    call.workspace = workspace;
    call.out = workspace + 512;
    EXPECT_TRUE(rejected(call, "workspace and out must not overlap"));
}
