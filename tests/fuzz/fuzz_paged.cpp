// bnb_paged_alloc / bnb_paged_free / bnb_paged_prefetch with the device and
// every size drawn from the input: an allocation of a size the host can hold
// succeeds, is zero-filled, writable to its last byte and freed; a size that
// is not positive, that size arithmetic cannot hold, or that exceeds the
// host's memory is refused with a message and leaves *out NULL.
#include "fuzz_support.h"

using namespace bnb_fuzz;

namespace {

constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 8;

// Sizes to allocate (up to 64 KiB) or sizes no host has; never one in between,
// which could exhaust the fuzzer's memory without telling anything.
int64_t pick_bytes(FuzzedDataProvider& in) {
    static constexpr int64_t kRefused[] = {0,
                                           -1,
                                           std::numeric_limits<int64_t>::min(),
                                           std::numeric_limits<int64_t>::max(),
                                           std::numeric_limits<int64_t>::max() - 62,
                                           kMaxCount,
                                           kMaxCount + 1,
                                           int64_t{1} << 62,
                                           int64_t{1} << 50};
    if (in.ConsumeIntegral<uint8_t>() < 64) return kRefused[in.ConsumeIntegralInRange<size_t>(0, std::size(kRefused) - 1)];
    return in.ConsumeIntegralInRange<int64_t>(1, 1 << 16);
}

bnb_device pick_device(FuzzedDataProvider& in) {
    if (in.ConsumeIntegral<uint8_t>() >= 16) return kCpu;
    return {static_cast<bnb_device_type>(in.ConsumeIntegralInRange<int32_t>(-2, BNB_DEVICE_TYPE_COUNT + 1)),
            in.ConsumeIntegralInRange<int32_t>(-2, 2)};
}

void run(FuzzedDataProvider& in) {
    const bnb_device device = pick_device(in);
    const bool on_cpu = device.type == BNB_DEVICE_CPU && device.index == 0;
    const int64_t bytes = pick_bytes(in);
    const bool null_out = in.ConsumeIntegral<uint8_t>() < 8;
    const std::string call = "bnb_paged_alloc(device " + std::to_string(device.type) + ":" +
                             std::to_string(device.index) + ", bytes " + std::to_string(bytes) + ")";

    void* memory = reinterpret_cast<void*>(uintptr_t{0x1});  // must be overwritten with NULL on failure
    const bnb_status status = bnb_paged_alloc(device, bytes, null_out ? nullptr : &memory);
    std::string error;
    if (!on_cpu) error = "not the CPU";  // no other backend in a CPU build
    else if (null_out) error = "out is NULL";
    else if (bytes <= 0 || bytes > kMaxCount) error = "bytes is out of range";
    else if (bytes > (1 << 16)) error = "more bytes than the host has";
    check_status(status, error, call);
    if (status != BNB_STATUS_SUCCESS) {
        require(null_out || !on_cpu || memory == nullptr, call + ": failed but left *out non-NULL");
        return;
    }
    auto* data = static_cast<uint8_t*>(memory);
    for (int64_t i = 0; i < bytes; ++i) {
        if (data[i] != 0) finding(call + ": byte " + std::to_string(i) + " is not zero");
    }
    std::memset(data, 0xa5, static_cast<size_t>(bytes));

    // Prefetch any part of it (or a size that must be refused), then free it.
    const int64_t offset = in.ConsumeIntegralInRange<int64_t>(0, bytes);
    const int64_t length = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(0, bytes - offset)
                                            : pick_count(in, bytes - offset).value;
    const bool null_ptr = in.ConsumeIntegral<uint8_t>() < 16;
    const bnb_status prefetched =
        bnb_paged_prefetch(kCpu, nullptr, null_ptr ? nullptr : data + offset, length, in.ConsumeBool());
    std::string prefetch_error;
    if (length < 0 || length > kMaxCount) prefetch_error = "bytes is out of range";
    else if (null_ptr && length > 0) prefetch_error = "ptr is NULL";
    check_status(prefetched, prefetch_error, "bnb_paged_prefetch(bytes " + std::to_string(length) + ")");
    check_status(bnb_paged_free(kCpu, memory), "", "bnb_paged_free");
    check_status(bnb_paged_free(kCpu, nullptr), "", "bnb_paged_free(NULL)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    run(in);
    return 0;
}
