// Every argument check of every array op: the status and a message that names the
// argument. One parameterised suite runs each check against every op of
// src/ops.def (described in support/op_calls.cpp, buffers by the family headers).
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/op_calls.h"

using namespace bnb_test;

namespace {

class BadInput : public ::testing::TestWithParam<OpSpec> {
protected:
    void SetUp() override {
        if (!bnb_backend_supports(BNB_DEVICE_CPU, op().name.c_str())) {
            GTEST_SKIP() << "the cpu backend lacks " << op().name;
        }
    }
    const OpSpec& op() const { return GetParam(); }
    OpCall valid_call() { return op().valid_call(buffers_); }
    bnb_status invoke(const OpCall& call) const { return op().invoke(call); }
    bnb::Buffers described(const OpCall& call) const { return op().describe(call); }

    OpBuffers buffers_;
};

std::string op_name(const ::testing::TestParamInfo<OpSpec>& info) { return info.param.name; }

const bnb_dtype kFloatDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};

// The extent of buffer `name` in the description `buffers` (0: not used).
int64_t described_bytes(const bnb::Buffers& buffers, const std::string& name) {
    for (const bnb::Buffer& buffer : buffers) {
        if (name == buffer.name) return buffer.bytes;
    }
    return 0;
}

}  // namespace

TEST(OpList, EveryOpHasATestCaseAndAName) {
    ASSERT_EQ(all_op_specs().size(), static_cast<size_t>(bnb_op_count()));
    for (int index = 0; index < bnb_op_count(); ++index) {
        EXPECT_EQ(all_op_specs()[static_cast<size_t>(index)].name, bnb_op_name(index)) << index;
    }
    EXPECT_EQ(bnb_op_name(-1), nullptr);
    EXPECT_EQ(bnb_op_name(bnb_op_count()), nullptr);
}

TEST_P(BadInput, DescriptionNamesEveryPointerOfTheValidCall) {
    // The family header describes exactly the pointers the C function takes.
    const OpCall call = valid_call();
    std::vector<std::string> names;
    for (const bnb::Buffer& buffer : described(call)) {
        if (call.pointers.count(buffer.name) != 0) names.emplace_back(buffer.name);
        EXPECT_GE(buffer.bytes, 0) << buffer.name;
    }
    EXPECT_EQ(names.size(), call.pointers.size());
}

TEST_P(BadInput, ValidCallSucceedsForEveryFloatDtype) {
    // The baseline every other test changes one argument of.
    for (bnb_dtype dtype : kFloatDtypes) {
        OpCall call = valid_call();
        call.dtype = dtype;
        EXPECT_TRUE(succeeded(invoke(call))) << "dtype " << dtype;
    }
}

TEST_P(BadInput, EveryAcceptedBlocksizeSucceeds) {
    const std::vector<int64_t> blocksizes = op().blocksizes();
    if (blocksizes.empty()) GTEST_SKIP() << op().name << " has no blocks";
    EXPECT_TRUE(std::is_sorted(blocksizes.begin(), blocksizes.end()));
    for (int64_t blocksize : blocksizes) {
        OpCall call = valid_call();
        call.blocksize = blocksize;
        EXPECT_TRUE(succeeded(invoke(call))) << "blocksize " << blocksize;
    }
}

TEST_P(BadInput, NullPointerWithPositiveCount) {
    // A pointer whose NULL means "absent" (bias, nested statistics) describes no bytes
    // once it is NULL: such a call is valid unless the op itself needs the pointer
    // (gemv_4bit's code), and then rejected by name like every other NULL.
    const OpCall valid = valid_call();
    for (const bnb::Buffer& buffer : described(valid)) {
        if (valid.pointers.count(buffer.name) == 0 || buffer.bytes == 0) continue;
        OpCall call = valid;
        call.pointers[buffer.name] = nullptr;
        const bnb_status status = invoke(call);
        if (described_bytes(described(call), buffer.name) == 0 && status == BNB_STATUS_SUCCESS) continue;
        EXPECT_TRUE(failed_with(status, BNB_STATUS_INVALID_ARGUMENT, {std::string(buffer.name) + " must not be NULL"}))
            << buffer.name;
    }
}

TEST_P(BadInput, AllPointersNullWithZeroCountSucceeds) {
    OpCall call = valid_call();
    for (auto& entry : call.counts) entry.second = 0;
    for (auto& entry : call.pointers) entry.second = nullptr;
    EXPECT_TRUE(succeeded(invoke(call)));
}

TEST_P(BadInput, NegativeCount) {
    for (const auto& [count, value] : valid_call().counts) {
        for (int64_t n : {int64_t{-1}, int64_t{-4096}, INT64_MIN}) {
            OpCall call = valid_call();
            call.counts[count] = n;
            EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                    {count + " must be >= 0", std::to_string(n)}))
                << count << " = " << n;
        }
    }
}

TEST_P(BadInput, CountTooLargeForAnyBufferIsRejectedWithoutTouchingMemory) {
    // count * sizeof(element) overflows int64 here; the check must not wrap around to
    // a small size and hand the kernel buffers of kCallCapacity elements.
    for (const auto& [count, value] : valid_call().counts) {
        for (int64_t n : {INT64_MAX, INT64_MAX / 2 + 1, INT64_MAX / 4 + 1}) {
            OpCall call = valid_call();
            call.counts[count] = n;
            EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT, {count})) << count << " = " << n;
        }
    }
}

TEST_P(BadInput, BlocksizeOutsideTheAcceptedSet) {
    // A backend that takes blocks of any length for the op (bnb_backend_any_blocksize)
    // rejects only blocksizes below 1; every other one takes the listed ones only.
    if (op().blocksizes().empty()) GTEST_SKIP() << op().name << " has no blocks";
    const int64_t smallest = op().blocksizes().front();
    const bool any_positive = bnb_backend_any_blocksize(valid_call().device.type, op().name.c_str()) != 0;
    for (int64_t blocksize : {int64_t{0}, int64_t{-64}, int64_t{1}, smallest / 2, smallest + 1, int64_t{100},
                              int64_t{3 * 1024}, int64_t{8192}, int64_t{1} << 40}) {
        OpCall call = valid_call();
        call.blocksize = blocksize;
        if (any_positive && blocksize > 0) {
            EXPECT_TRUE(succeeded(invoke(call))) << blocksize;
            continue;
        }
        EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                {any_positive ? "blocksize must be positive" : "blocksize must be one of",
                                 std::to_string(blocksize)}))
            << blocksize;
    }
}

TEST_P(BadInput, DtypeThatIsNotFloating) {
    if (!op().takes_float_dtype) GTEST_SKIP() << op().name << " has no float dtype argument";
    for (int dtype : {int{BNB_DTYPE_UINT8}, int{BNB_DTYPE_INT8}, int{BNB_DTYPE_INT32}, 6, 99, -1}) {
        OpCall call = valid_call();
        call.dtype = static_cast<bnb_dtype>(dtype);
        EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                {"dtype must be float32, float16 or bfloat16", std::to_string(dtype)}))
            << dtype;
    }
}

TEST_P(BadInput, DeviceTypeOutOfRange) {
    for (int type : {BNB_DEVICE_TYPE_COUNT, -1, 99}) {
        OpCall call = valid_call();
        call.device.type = static_cast<bnb_device_type>(type);
        EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                {"device.type must be a bnb_device_type", std::to_string(type)}))
            << type;
    }
}

TEST_P(BadInput, NegativeDeviceIndex) {
    for (int32_t index : {-1, INT32_MIN}) {
        OpCall call = valid_call();
        call.device.index = index;
        EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                {"device.index must be >= 0", std::to_string(index)}))
            << index;
    }
}

TEST_P(BadInput, BackendNotBuiltIsUnavailable) {
    int checked = 0;
    for (bnb_device_type type : {BNB_DEVICE_HIP, BNB_DEVICE_METAL}) {
        if (bnb_backend_built(type)) continue;
        OpCall call = valid_call();
        call.device = {type, 0};
        EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_BACKEND_UNAVAILABLE,
                                {"device", bnb_backend_name(type), "not built"}))
            << bnb_backend_name(type);
        EXPECT_EQ(bnb_backend_supports(type, op().name.c_str()), 0);
        ++checked;
    }
    if (checked == 0) GTEST_SKIP() << "both the HIP and the Metal backend are built into this library";
}

TEST_P(BadInput, BuiltBackendWithoutDevicesIsUnavailable) {
    if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
    if (bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "a CUDA device is present";
    OpCall call = valid_call();
    call.device = {BNB_DEVICE_CUDA, 0};
    EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_BACKEND_UNAVAILABLE, {"device", "cuda", "no device"}));
}

TEST_P(BadInput, MisalignedPointer) {
    for (bnb_dtype dtype : kFloatDtypes) {
        OpCall valid = valid_call();
        valid.dtype = dtype;
        for (const bnb::Buffer& buffer : described(valid)) {
            if (valid.pointers.count(buffer.name) == 0 || buffer.bytes == 0 || buffer.alignment == 1) continue;
            OpCall call = valid;
            call.pointers[buffer.name] = static_cast<uint8_t*>(call.pointers[buffer.name]) + 1;
            EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                    {std::string(buffer.name) + " must be aligned to " +
                                     std::to_string(buffer.alignment) + " bytes"}))
                << buffer.name << " dtype " << dtype;
        }
    }
}

TEST_P(BadInput, WrittenBufferOverlappingAnother) {
    const OpCall valid = valid_call();
    const bnb::Buffers buffers = described(valid);
    for (const bnb::Buffer& written : buffers) {
        if (written.access != bnb::Access::kWrite || written.bytes == 0) continue;
        for (const bnb::Buffer& other : buffers) {
            if (std::string(other.name) == written.name || other.bytes == 0) continue;
            // Same start, and a start inside the other buffer that keeps the alignment.
            for (int64_t shift : {int64_t{0}, written.alignment}) {
                if (shift >= other.bytes) continue;
                OpCall call = valid;
                call.pointers[written.name] = static_cast<uint8_t*>(call.pointers[other.name]) + shift;
                EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                        {written.name, other.name, "must not overlap"}))
                    << written.name << " inside " << other.name << " at +" << shift;
            }
        }
    }
}

TEST_P(BadInput, SuccessClearsThePreviousError) {
    OpCall bad = valid_call();
    bad.counts.begin()->second = -1;
    ASSERT_EQ(invoke(bad), BNB_STATUS_INVALID_ARGUMENT);
    ASSERT_STRNE(bnb_last_error(), "");
    ASSERT_TRUE(succeeded(invoke(valid_call())));
    EXPECT_STREQ(bnb_last_error(), "");
}

TEST_P(BadInput, RejectedCallWritesNothing) {
    OpCall call = valid_call();
    std::map<std::string, std::vector<uint8_t>> before;
    for (const bnb::Buffer& buffer : described(call)) {
        if (buffer.access != bnb::Access::kWrite || buffer.bytes == 0) continue;
        auto* data = static_cast<uint8_t*>(call.pointers[buffer.name]);
        std::fill(data, data + kCallCapacity, uint8_t{0xA5});
        before[buffer.name].assign(data, data + kCallCapacity);
    }
    call.counts.begin()->second = -1;
    ASSERT_EQ(invoke(call), BNB_STATUS_INVALID_ARGUMENT);
    for (const auto& [name, bytes] : before) {
        EXPECT_TRUE(bits_equal(call.pointers[name], bytes.data(), kCallCapacity, 1)) << name;
    }
}

INSTANTIATE_TEST_SUITE_P(AllOps, BadInput, ::testing::ValuesIn(all_op_specs()), op_name);

class FourBitBadInput : public BadInput {};

TEST_P(FourBitBadInput, QuantTypeOutOfRange) {
    for (int quant_type : {2, -1, 99}) {
        OpCall call = valid_call();
        call.quant_type = static_cast<bnb_quant_type>(quant_type);
        EXPECT_TRUE(failed_with(invoke(call), BNB_STATUS_INVALID_ARGUMENT,
                                {"quant_type must be BNB_QUANT_NF4 or BNB_QUANT_FP4", std::to_string(quant_type)}))
            << quant_type;
    }
}

TEST_P(FourBitBadInput, BothQuantTypesSucceed) {
    for (bnb_quant_type quant_type : {BNB_QUANT_NF4, BNB_QUANT_FP4}) {
        OpCall call = valid_call();
        call.quant_type = quant_type;
        EXPECT_TRUE(succeeded(invoke(call))) << quant_type;
    }
}

INSTANTIATE_TEST_SUITE_P(FourBitOps, FourBitBadInput, ::testing::ValuesIn(four_bit_op_specs()), op_name);

// Buffers that touch without overlapping are fine: the check compares byte ranges.
TEST(BufferOverlap, AdjacentBuffersAreAccepted) {
    constexpr int64_t n = 256;
    AlignedBytes block(static_cast<size_t>(n) * 4 + static_cast<size_t>(n));
    float* input = block.as<float>();
    uint8_t* codes = block.data() + n * 4;  // starts exactly where input ends
    for (int64_t i = 0; i < n; ++i) input[i] = static_cast<float>(i) - 100.0f;
    float code[256];
    float absmax[4];
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, code, 256)));
    EXPECT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, input, code, n, 64, codes, absmax)));

    // One byte less room and the ranges share a byte.
    EXPECT_TRUE(failed_with(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, input, code, n, 64, codes - 1,
                                                   absmax),
                            BNB_STATUS_INVALID_ARGUMENT, {"A", "out", "must not overlap"}));
}

TEST(BufferOverlap, InputsMayShareMemory) {
    // Only written buffers must be disjoint: two read-only arguments may alias.
    std::vector<float> code(256);
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, code.data(), 256)));
    std::vector<float> out(64);
    const uint8_t* codes_aliasing_code = reinterpret_cast<const uint8_t*>(code.data());
    EXPECT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, codes_aliasing_code, code.data(),
                                                   code.data(), 64, 64, out.data())));
}
