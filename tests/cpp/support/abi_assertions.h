// GoogleTest helpers for C ABI calls: a status check that prints bnb_last_error(),
// a failure check that the message names the argument, a bitwise buffer
// comparison that reports where buffers differ, and the library's codebooks.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb_test {

inline constexpr bnb_device kCpu = {BNB_DEVICE_CPU, 0};

inline ::testing::AssertionResult succeeded(bnb_status status) {
    if (status == BNB_STATUS_SUCCESS) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bnb_status_name(status) << ": " << bnb_last_error();
}

// The call returned `expected` and bnb_last_error() contains every one of `words`.
inline ::testing::AssertionResult failed_with(bnb_status actual, bnb_status expected,
                                              std::initializer_list<std::string> words) {
    const std::string message = bnb_last_error();
    if (actual != expected) {
        return ::testing::AssertionFailure() << "returned " << bnb_status_name(actual) << " (message \"" << message
                                             << "\"), expected " << bnb_status_name(expected);
    }
    for (const std::string& word : words) {
        if (message.find(word) == std::string::npos) {
            return ::testing::AssertionFailure() << "message \"" << message << "\" does not mention \"" << word << "\"";
        }
    }
    return ::testing::AssertionSuccess();
}

// Element-wise bit comparison of two buffers of `count` elements of `itemsize`
// bytes; on failure names how many differ and the first few.
inline ::testing::AssertionResult bits_equal(const void* actual, const void* expected, int64_t count,
                                             size_t itemsize) {
    const auto* a = static_cast<const uint8_t*>(actual);
    const auto* e = static_cast<const uint8_t*>(expected);
    int64_t mismatches = 0;
    std::string first;
    for (int64_t i = 0; i < count; ++i) {
        const uint8_t* ai = a + static_cast<size_t>(i) * itemsize;
        const uint8_t* ei = e + static_cast<size_t>(i) * itemsize;
        if (std::memcmp(ai, ei, itemsize) == 0) continue;
        if (++mismatches <= 5) {
            uint64_t a_bits = 0, e_bits = 0;
            std::memcpy(&a_bits, ai, itemsize);  // little-endian hosts only, as the formats are
            std::memcpy(&e_bits, ei, itemsize);
            char line[96];
            std::snprintf(line, sizeof line, "\n  [%lld] got 0x%llx, expected 0x%llx", static_cast<long long>(i),
                          static_cast<unsigned long long>(a_bits), static_cast<unsigned long long>(e_bits));
            first += line;
        }
    }
    if (mismatches == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << mismatches << " of " << count << " elements differ:" << first;
}

// Heap storage with at least 64-byte alignment, so that tests can misalign a
// pointer on purpose by adding a byte offset.
class AlignedBytes {
public:
    explicit AlignedBytes(size_t bytes) : storage_(bytes / sizeof(Chunk) + 2) {}
    uint8_t* data() { return reinterpret_cast<uint8_t*>(storage_.data()); }
    const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(storage_.data()); }
    template <typename T>
    T* as() { return reinterpret_cast<T*>(data()); }

private:
    // 256 bytes: the strictest alignment an op asks for (gemm_4bit's workspace).
    struct alignas(256) Chunk { uint8_t bytes[256]; };
    std::vector<Chunk> storage_;
};

// The library's codebook `which` (bnb_codebook_copy).
inline std::vector<float> codebook(bnb_codebook which) {
    std::vector<float> values(static_cast<size_t>(bnb_codebook_size(which)));
    EXPECT_TRUE(succeeded(bnb_codebook_copy(which, values.data(), static_cast<int64_t>(values.size()))));
    return values;
}

}  // namespace bnb_test
