// The C ABI from many threads at once: every op of src/ops.def, each thread with
// inputs of its own, writes the bytes that the same call writes alone; a thread's
// bnb_last_error() holds its own failure while the others fail and succeed; the
// lazily built state (codebooks, backend and variant queries) is read meanwhile.
// tests/cpp/cuda/test_cuda_concurrency.cpp does the same on CUDA streams.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"
#include "support/op_calls.h"
#include "support/threads.h"

using namespace bnb_test;

namespace {

constexpr int kRounds = 6;

int thread_count() { return std::max(8, static_cast<int>(std::thread::hardware_concurrency())); }

using Bytes = std::vector<uint8_t>;

// The result buffers of one op's valid call with the inputs of `seed`, run on this thread.
std::vector<Bytes> run_alone(const OpSpec& spec, int seed) {
    OpBuffers buffers;
    buffers.vary(seed);
    const OpCall call = spec.valid_call(buffers);
    EXPECT_TRUE(succeeded(spec.invoke(call))) << spec.name << ", inputs " << seed;
    std::vector<Bytes> results;
    for (const bnb::Buffer& buffer : results_of(spec, call)) {
        const auto* data = static_cast<const uint8_t*>(buffer.data);
        results.emplace_back(data, data + buffer.bytes);
    }
    return results;
}

// A failure whose message names this thread: n = -(1000 + thread).
bnb_status fail_as(int thread) {
    return bnb_quantize_4bit(kCpu, nullptr, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, nullptr, -(1000 + thread), 64, nullptr,
                             nullptr);
}

}  // namespace

TEST(Concurrency, EveryOpFromManyThreadsWritesTheBytesOfACallAlone) {
    const std::vector<OpSpec>& specs = all_op_specs();
    const int threads = thread_count();
    // expected[thread][op]: computed first, one call at a time.
    std::vector<std::vector<std::vector<Bytes>>> expected(static_cast<size_t>(threads));
    for (int thread = 0; thread < threads; ++thread) {
        for (const OpSpec& spec : specs) expected[thread].push_back(run_alone(spec, thread));
    }
    // Distinct inputs make distinct results: a call that read another thread's
    // buffers could not pass by chance.
    ASSERT_NE(expected[0][0], expected[1][0]);

    std::vector<std::string> mismatches(static_cast<size_t>(threads));
    run_on_threads(threads, [&](int thread) {
        std::string& report = mismatches[thread];
        const std::vector<float> nf4 = codebook(BNB_CODEBOOK_NF4);
        for (int round = 0; round < kRounds; ++round) {
            const std::string when = "round " + std::to_string(round) + ": ";
            // Fails here while other threads fail with their own numbers and succeed.
            if (fail_as(thread) != BNB_STATUS_INVALID_ARGUMENT) report += when + "the bad call did not fail\n";
            const std::string message = bnb_last_error();
            if (message.find("got -" + std::to_string(1000 + thread)) == std::string::npos) {
                report += when + "not this thread's error: \"" + message + "\"\n";
            }
            for (size_t op = 0; op < specs.size(); ++op) {
                if (run_alone(specs[op], thread) != expected[thread][op]) report += when + specs[op].name + " differs\n";
                if (*bnb_last_error() != '\0') report += when + "a success left \"" + bnb_last_error() + "\"\n";
            }
            if (codebook(BNB_CODEBOOK_NF4) != nf4) report += when + "the NF4 codebook changed\n";
            if (!bnb_backend_available(BNB_DEVICE_CPU) || bnb_backend_variant(BNB_DEVICE_CPU) == nullptr) {
                report += when + "the CPU backend's queries failed\n";
            }
        }
    });
    for (int thread = 0; thread < threads; ++thread) EXPECT_EQ(mismatches[thread], "") << "thread " << thread;
}
