// The core's contract with backends, tested with backends defined here.
//
// This binary links the core object library (src/) and no backend, so the
// dispatch table holds only what these tests register through
// bnb::register_backend, an internal symbol that the shared library hides.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backend.h"
#include "bitsandbytes/bitsandbytes.h"
#include "status.h"

namespace {

constexpr bnb_device_type kTestDeviceType = BNB_DEVICE_METAL;
constexpr bnb_device kTestDevice = {kTestDeviceType, 0};

// Four devices, so that tests can pass indices other than 0.
int four_devices() { return 4; }
int no_devices() { return 0; }

const bnb::BackendOps kNullSlots = {.name = "test_null_slots", .device_count = four_devices};
const bnb::BackendOps kWithoutDevices = {.name = "test_without_devices", .device_count = no_devices};

// What the recording backend saw; reset by each test.
struct Recorded {
    int calls = 0;
    bnb::QuantizeBlockwiseArgs quantize_blockwise{};
    bnb::DequantizeBlockwiseArgs dequantize_blockwise{};
    bnb::Quantize4bitArgs quantize_4bit{};
    bnb::Dequantize4bitArgs dequantize_4bit{};
    bnb_status result = BNB_STATUS_SUCCESS;
};
Recorded recorded;

bnb_status record_result() {
    ++recorded.calls;
    if (recorded.result == BNB_STATUS_SUCCESS) return BNB_STATUS_SUCCESS;
    return bnb::fail(recorded.result, "test_recording: the device reported an error");
}

// gemm_4bit and gemv_4bit: test_gemm_4bit_entry.cpp.
const bnb::BackendOps kRecording = {
    .name = "test_recording",
    .device_count = four_devices,
    .quantize_blockwise =
        [](const bnb::QuantizeBlockwiseArgs& args) {
            recorded.quantize_blockwise = args;
            return record_result();
        },
    .dequantize_blockwise =
        [](const bnb::DequantizeBlockwiseArgs& args) {
            recorded.dequantize_blockwise = args;
            return record_result();
        },
    .quantize_4bit =
        [](const bnb::Quantize4bitArgs& args) {
            recorded.quantize_4bit = args;
            return record_result();
        },
    .dequantize_4bit =
        [](const bnb::Dequantize4bitArgs& args) {
            recorded.dequantize_4bit = args;
            return record_result();
        },
};

class BackendTable : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(bnb::backend_ops(kTestDeviceType), nullptr)
            << "this binary links no backend, yet " << bnb_backend_name(kTestDeviceType) << " is registered";
        recorded = Recorded{};
    }
    void TearDown() override { bnb::register_backend(kTestDeviceType, nullptr); }

    // Valid arguments for every op, so that only the backend decides the outcome.
    float input[256] = {};
    float code[256] = {};
    uint8_t codes[256] = {};
    float absmax[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    float output[256] = {};
    static constexpr int64_t kN = 256;
    static constexpr int64_t kBlocksize = 64;

    bnb_status quantize_blockwise(bnb_device device, void* stream = nullptr) {
        return bnb_quantize_blockwise(device, stream, BNB_DTYPE_FLOAT32, input, code, kN, kBlocksize, codes, absmax);
    }
    bnb_status dequantize_blockwise(bnb_device device, void* stream = nullptr) {
        return bnb_dequantize_blockwise(device, stream, BNB_DTYPE_FLOAT16, codes, code, absmax, kN, kBlocksize, output);
    }
    bnb_status quantize_4bit(bnb_device device, void* stream = nullptr) {
        return bnb_quantize_4bit(device, stream, BNB_QUANT_FP4, BNB_DTYPE_BFLOAT16, input, kN, kBlocksize, codes,
                                 absmax);
    }
    bnb_status dequantize_4bit(bnb_device device, void* stream = nullptr) {
        return bnb_dequantize_4bit(device, stream, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, codes, absmax, kN, kBlocksize,
                                   output);
    }
};

bool mentions(const std::string& text, const std::string& word) { return text.find(word) != std::string::npos; }

}  // namespace

TEST_F(BackendTable, UnregisteredDeviceTypeIsNotBuilt) {
    EXPECT_EQ(bnb_backend_built(kTestDeviceType), 0);
    EXPECT_EQ(bnb_backend_available(kTestDeviceType), 0);
    EXPECT_EQ(quantize_4bit(kTestDevice), BNB_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_TRUE(mentions(bnb_last_error(), "not built")) << bnb_last_error();
}

TEST_F(BackendTable, NullSlotIsUnsupportedNamingOpAndBackend) {
    bnb::register_backend(kTestDeviceType, &kNullSlots);
    ASSERT_EQ(bnb_backend_built(kTestDeviceType), 1);
    ASSERT_EQ(bnb_backend_available(kTestDeviceType), 1);
    const std::vector<std::pair<std::string, std::function<bnb_status()>>> calls = {
        {"quantize_blockwise", [this] { return quantize_blockwise(kTestDevice); }},
        {"dequantize_blockwise", [this] { return dequantize_blockwise(kTestDevice); }},
        {"quantize_4bit", [this] { return quantize_4bit(kTestDevice); }},
        {"dequantize_4bit", [this] { return dequantize_4bit(kTestDevice); }},
    };
    for (const auto& [op, call] : calls) {
        EXPECT_EQ(call(), BNB_STATUS_UNSUPPORTED) << op;
        EXPECT_EQ(std::string(bnb_last_error()), op + " is not supported by the test_null_slots backend");
    }
}

TEST_F(BackendTable, BuiltBackendWithoutDevicesIsUnavailable) {
    bnb::register_backend(kTestDeviceType, &kWithoutDevices);
    EXPECT_EQ(bnb_backend_built(kTestDeviceType), 1);
    EXPECT_EQ(bnb_backend_available(kTestDeviceType), 0);
    EXPECT_EQ(dequantize_blockwise(kTestDevice), BNB_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_TRUE(mentions(bnb_last_error(), "test_without_devices")) << bnb_last_error();
    EXPECT_TRUE(mentions(bnb_last_error(), "no device")) << bnb_last_error();
}

TEST_F(BackendTable, DeviceIndexBeyondTheDeviceCountIsRejected) {
    bnb::register_backend(kTestDeviceType, &kRecording);
    for (const int index : {4, 5, 1000}) {
        EXPECT_EQ(quantize_4bit({kTestDeviceType, index}), BNB_STATUS_INVALID_ARGUMENT) << index;
        EXPECT_TRUE(mentions(bnb_last_error(), "device.index must be < 4")) << bnb_last_error();
        EXPECT_TRUE(mentions(bnb_last_error(), "got " + std::to_string(index))) << bnb_last_error();
    }
    EXPECT_EQ(recorded.calls, 0);
    EXPECT_EQ(quantize_4bit({kTestDeviceType, 3}), BNB_STATUS_SUCCESS) << bnb_last_error();
    EXPECT_EQ(recorded.calls, 1);
}

TEST_F(BackendTable, ValidatedArgumentsReachTheBackendUnchanged) {
    bnb::register_backend(kTestDeviceType, &kRecording);
    int stream_object = 0;
    const bnb_device device = {kTestDeviceType, 3};

    ASSERT_EQ(quantize_blockwise(device, &stream_object), BNB_STATUS_SUCCESS) << bnb_last_error();
    const bnb::QuantizeBlockwiseArgs& q8 = recorded.quantize_blockwise;
    EXPECT_EQ(q8.device.type, kTestDeviceType);
    EXPECT_EQ(q8.device.index, 3);
    EXPECT_EQ(q8.stream, &stream_object);
    EXPECT_EQ(q8.dtype, BNB_DTYPE_FLOAT32);
    EXPECT_EQ(q8.A, input);
    EXPECT_EQ(q8.code, code);
    EXPECT_EQ(q8.n, kN);
    EXPECT_EQ(q8.blocksize, kBlocksize);
    EXPECT_EQ(q8.out, codes);
    EXPECT_EQ(q8.absmax, absmax);

    ASSERT_EQ(dequantize_blockwise(device, &stream_object), BNB_STATUS_SUCCESS) << bnb_last_error();
    const bnb::DequantizeBlockwiseArgs& d8 = recorded.dequantize_blockwise;
    EXPECT_EQ(d8.device.index, 3);
    EXPECT_EQ(d8.stream, &stream_object);
    EXPECT_EQ(d8.dtype, BNB_DTYPE_FLOAT16);
    EXPECT_EQ(d8.A, codes);
    EXPECT_EQ(d8.code, code);
    EXPECT_EQ(d8.absmax, absmax);
    EXPECT_EQ(d8.n, kN);
    EXPECT_EQ(d8.blocksize, kBlocksize);
    EXPECT_EQ(d8.out, output);

    ASSERT_EQ(quantize_4bit(device, &stream_object), BNB_STATUS_SUCCESS) << bnb_last_error();
    const bnb::Quantize4bitArgs& q4 = recorded.quantize_4bit;
    EXPECT_EQ(q4.device.index, 3);
    EXPECT_EQ(q4.stream, &stream_object);
    EXPECT_EQ(q4.quant_type, BNB_QUANT_FP4);
    EXPECT_EQ(q4.dtype, BNB_DTYPE_BFLOAT16);
    EXPECT_EQ(q4.A, input);
    EXPECT_EQ(q4.n, kN);
    EXPECT_EQ(q4.blocksize, kBlocksize);
    EXPECT_EQ(q4.packed, codes);
    EXPECT_EQ(q4.absmax, absmax);

    ASSERT_EQ(dequantize_4bit(device, &stream_object), BNB_STATUS_SUCCESS) << bnb_last_error();
    const bnb::Dequantize4bitArgs& d4 = recorded.dequantize_4bit;
    EXPECT_EQ(d4.device.index, 3);
    EXPECT_EQ(d4.stream, &stream_object);
    EXPECT_EQ(d4.quant_type, BNB_QUANT_NF4);
    EXPECT_EQ(d4.dtype, BNB_DTYPE_FLOAT32);
    EXPECT_EQ(d4.packed, codes);
    EXPECT_EQ(d4.absmax, absmax);
    EXPECT_EQ(d4.n, kN);
    EXPECT_EQ(d4.blocksize, kBlocksize);
    EXPECT_EQ(d4.out, output);

    EXPECT_EQ(recorded.calls, 4);
}

TEST_F(BackendTable, RejectedAndEmptyCallsNeverReachTheBackend) {
    bnb::register_backend(kTestDeviceType, &kRecording);
    EXPECT_EQ(bnb_quantize_4bit(kTestDevice, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, input, kN, 100, codes, absmax),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(bnb_quantize_blockwise(kTestDevice, nullptr, BNB_DTYPE_FLOAT32, input, code, kN, kBlocksize, nullptr,
                                     absmax),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(bnb_dequantize_4bit(kTestDevice, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, codes, absmax, kN,
                                  kBlocksize, reinterpret_cast<uint8_t*>(output) + 2),
              BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(bnb_dequantize_blockwise(kTestDevice, nullptr, BNB_DTYPE_FLOAT32, nullptr, nullptr, nullptr, 0,
                                       kBlocksize, nullptr),
              BNB_STATUS_SUCCESS);
    EXPECT_EQ(recorded.calls, 0);
}

TEST_F(BackendTable, BackendErrorReachesTheCallerWithItsMessage) {
    bnb::register_backend(kTestDeviceType, &kRecording);
    recorded.result = BNB_STATUS_BACKEND_ERROR;
    EXPECT_EQ(quantize_4bit(kTestDevice), BNB_STATUS_BACKEND_ERROR);
    EXPECT_STREQ(bnb_last_error(), "test_recording: the device reported an error");
    recorded.result = BNB_STATUS_SUCCESS;
    EXPECT_EQ(quantize_4bit(kTestDevice), BNB_STATUS_SUCCESS);
    EXPECT_STREQ(bnb_last_error(), "");
}

TEST_F(BackendTable, OutOfRangeRegistrationIsIgnored) {
    bnb::register_backend(static_cast<bnb_device_type>(BNB_DEVICE_TYPE_COUNT), &kRecording);
    bnb::register_backend(static_cast<bnb_device_type>(-1), &kRecording);
    EXPECT_EQ(bnb::backend_ops(static_cast<bnb_device_type>(BNB_DEVICE_TYPE_COUNT)), nullptr);
    EXPECT_EQ(bnb::backend_ops(static_cast<bnb_device_type>(-1)), nullptr);
    for (int type = 0; type < BNB_DEVICE_TYPE_COUNT; ++type) {
        EXPECT_EQ(bnb::backend_ops(static_cast<bnb_device_type>(type)), nullptr) << type;
    }
}
