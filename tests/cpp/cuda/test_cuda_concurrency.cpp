// tests/cpp/test_concurrency.cpp on CUDA: every op of src/ops.def from many host
// threads at once, each on a stream of its own and on every device in turn (the
// lazily created cuBLASLt handles and algorithm caches of several devices are
// built under load), writes the bytes that the same call writes alone. Skips
// without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "cuda/device_buffer.h"
#include "support/abi_assertions.h"
#include "support/op_calls.h"
#include "support/threads.h"

using namespace bnb_test;

namespace {

constexpr int kThreads = 8;
constexpr int kRounds = 4;

using Bytes = std::vector<uint8_t>;

// One op's valid call with the inputs of `seed`, its buffers copied to `device`,
// run on `stream`; returns the result buffers' bytes.
std::vector<Bytes> run_on_device(const OpSpec& spec, int seed, int device, cudaStream_t stream) {
    OpBuffers host;
    host.vary(seed);
    OpCall call = spec.valid_call(host);
    call.device = {BNB_DEVICE_CUDA, device};
    call.stream = stream;
    std::map<void*, std::unique_ptr<DeviceBuffer>> copies;  // by host storage: two names may share one
    for (auto& [name, pointer] : call.pointers) {
        if (pointer == nullptr) continue;
        auto& copy = copies[pointer];
        if (!copy) copy = std::make_unique<DeviceBuffer>(pointer, kCallBufferBytes);
        pointer = copy->get();
    }
    EXPECT_TRUE(succeeded(spec.invoke(call))) << spec.name << " on device " << device;
    std::vector<Bytes> results;
    for (const bnb::Buffer& buffer : results_of(spec, call)) {
        Bytes bytes(static_cast<size_t>(buffer.bytes));
        EXPECT_TRUE(cuda_ok(cudaMemcpyAsync(bytes.data(), buffer.data, bytes.size(), cudaMemcpyDeviceToHost, stream)));
        results.push_back(std::move(bytes));
    }
    EXPECT_TRUE(cuda_ok(cudaStreamSynchronize(stream)));
    return results;
}

}  // namespace

TEST(CudaConcurrency, EveryOpFromManyThreadsAndStreamsWritesTheBytesOfACallAlone) {
    if (!bnb_backend_built(BNB_DEVICE_CUDA)) GTEST_SKIP() << "the CUDA backend is not built into this library";
    if (!bnb_backend_available(BNB_DEVICE_CUDA)) GTEST_SKIP() << "no CUDA device";
    int devices = 0;
    ASSERT_TRUE(cuda_ok(cudaGetDeviceCount(&devices)));
    devices = std::min(devices, 2);
    const std::vector<OpSpec>& specs = all_op_specs();

    // expected[thread][op], one call at a time on the default stream of the thread's device.
    std::vector<std::vector<std::vector<Bytes>>> expected(kThreads);
    for (int thread = 0; thread < kThreads; ++thread) {
        ASSERT_TRUE(cuda_ok(cudaSetDevice(thread % devices)));
        for (const OpSpec& spec : specs) expected[thread].push_back(run_on_device(spec, thread, thread % devices, nullptr));
    }
    ASSERT_NE(expected[0][0], expected[1][0]);

    std::vector<std::string> mismatches(kThreads);
    run_on_threads(kThreads, [&](int thread) {
        std::string& report = mismatches[thread];
        const int device = thread % devices;
        if (cudaSetDevice(device) != cudaSuccess) {
            report = "cudaSetDevice failed";
            return;
        }
        cudaStream_t stream = nullptr;
        if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
            report = "cudaStreamCreate failed";
            return;
        }
        for (int round = 0; round < kRounds; ++round) {
            for (size_t op = 0; op < specs.size(); ++op) {
                if (run_on_device(specs[op], thread, device, stream) != expected[thread][op]) {
                    report += "round " + std::to_string(round) + ": " + specs[op].name + " differs\n";
                }
            }
        }
        cudaStreamDestroy(stream);
    });
    for (int thread = 0; thread < kThreads; ++thread) EXPECT_EQ(mismatches[thread], "") << "thread " << thread;
}
