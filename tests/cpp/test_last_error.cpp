// The error model: bnb_last_error() is per thread, holds the message of the
// last failed call on that thread, and is cleared by the next call that succeeds.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/threads.h"

using namespace bnb_test;

namespace {

bnb_status fail_with_negative_count() {
    return bnb_quantize_4bit(kCpu, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, nullptr, -7, 64, nullptr, nullptr);
}

bnb_status fail_with_bad_blocksize() {
    return bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, nullptr, nullptr, nullptr, 0, 0, nullptr);
}

}  // namespace

TEST(LastError, EachThreadSeesOnlyItsOwnFailure) {
    Rendezvous both_failed(2), both_read(2);
    std::string first_message, second_message;
    bnb_status first_status = BNB_STATUS_SUCCESS, second_status = BNB_STATUS_SUCCESS;

    // Both threads fail before either reads: a shared message would show the other
    // thread's text in one of them.
    std::thread first([&] {
        first_status = fail_with_negative_count();
        both_failed.arrive_and_wait();
        first_message = bnb_last_error();
        both_read.arrive_and_wait();
    });
    std::thread second([&] {
        second_status = fail_with_bad_blocksize();
        both_failed.arrive_and_wait();
        second_message = bnb_last_error();
        both_read.arrive_and_wait();
    });
    first.join();
    second.join();

    EXPECT_EQ(first_status, BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(second_status, BNB_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(first_message.find("n must be >= 0, got -7"), std::string::npos) << first_message;
    EXPECT_NE(second_message.find("blocksize"), std::string::npos) << second_message;
    EXPECT_EQ(second_message.find("n must be"), std::string::npos) << second_message;
}

TEST(LastError, AFailureOnAnotherThreadLeavesThisThreadUntouched) {
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_NF4, std::vector<float>(16).data(), 16)));
    ASSERT_STREQ(bnb_last_error(), "");
    std::thread([] { fail_with_negative_count(); }).join();
    EXPECT_STREQ(bnb_last_error(), "");
}

TEST(LastError, SuccessOnAnotherThreadDoesNotClearThisThreadsMessage) {
    ASSERT_EQ(fail_with_bad_blocksize(), BNB_STATUS_INVALID_ARGUMENT);
    const std::string mine = bnb_last_error();
    std::thread([] {
        float code[16];
        bnb_codebook_copy(BNB_CODEBOOK_FP4, code, 16);
    }).join();
    EXPECT_EQ(bnb_last_error(), mine);
}

TEST(LastError, MessageStaysUntilTheNextCallThatReturnsAStatus) {
    // Functions without a status (version, names, sizes, backend queries) neither
    // set nor clear the message.
    ASSERT_EQ(fail_with_negative_count(), BNB_STATUS_INVALID_ARGUMENT);
    const std::string message = bnb_last_error();
    ASSERT_FALSE(message.empty());
    bnb_version();
    bnb_abi_version();
    bnb_status_name(BNB_STATUS_INTERNAL);
    bnb_backend_built(BNB_DEVICE_CUDA);
    bnb_backend_available(BNB_DEVICE_CUDA);
    bnb_backend_name(BNB_DEVICE_HIP);
    bnb_codebook_size(static_cast<bnb_codebook>(42));
    EXPECT_EQ(bnb_last_error(), message);
}

TEST(LastError, ANewFailureReplacesTheOldMessage) {
    ASSERT_EQ(fail_with_negative_count(), BNB_STATUS_INVALID_ARGUMENT);
    ASSERT_EQ(fail_with_bad_blocksize(), BNB_STATUS_INVALID_ARGUMENT);
    const std::string message = bnb_last_error();
    EXPECT_NE(message.find("blocksize"), std::string::npos) << message;
    EXPECT_EQ(message.find("n must be"), std::string::npos) << message;
}

TEST(LastError, CodebookCopySuccessClearsTheMessage) {
    ASSERT_EQ(fail_with_negative_count(), BNB_STATUS_INVALID_ARGUMENT);
    float code[256];
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_UNSIGNED, code, 256)));
    EXPECT_STREQ(bnb_last_error(), "");
}
