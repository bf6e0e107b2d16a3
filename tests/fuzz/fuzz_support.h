// What every harness of tests/fuzz shares: arguments drawn from the fuzz input
// (counts with their extreme values, enum values out of range, special floats),
// buffers of exactly the size the C ABI documents (so that AddressSanitizer
// reports a kernel that reads or writes one element more) with the faults a
// caller can make (NULL, misaligned, overlapping a written buffer), the verdict
// on a call (success where the arguments are valid, otherwise a status with a
// message), and the comparison of the vector paths against the scalar one.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb_fuzz {

inline constexpr bnb_device kCpu = {BNB_DEVICE_CPU, 0};

// A property of the library does not hold: print it and stop the fuzzer, which
// saves the input as a crash.
[[noreturn]] inline void finding(const std::string& what) {
    std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

// A float as "%.9g" (std::to_string's fixed six decimals show small values as 0).
inline std::string show(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.9g", value);
    return text;
}

inline void require(bool condition, const std::string& what) {
    if (!condition) finding(what);
}

// Counts: mostly small, sometimes one of the values where size arithmetic
// breaks (negative, near INT64_MAX, the library's bound INT64_MAX / 8, powers
// of two around 2^31 and 2^32). `huge` tells the caller it cannot allocate it.
struct Count {
    int64_t value;
    bool huge;
};

inline Count pick_count(FuzzedDataProvider& in, int64_t max_small) {
    static constexpr int64_t kExtremes[] = {-1,
                                            std::numeric_limits<int64_t>::min(),
                                            std::numeric_limits<int64_t>::max(),
                                            std::numeric_limits<int64_t>::max() - 1,
                                            std::numeric_limits<int64_t>::max() / 8,
                                            std::numeric_limits<int64_t>::max() / 8 + 1,
                                            std::numeric_limits<int64_t>::max() / 2 + 1,
                                            int64_t{1} << 31,
                                            (int64_t{1} << 32) + 1,
                                            int64_t{1} << 40,
                                            int64_t{3037000500}};  // its square just exceeds INT64_MAX
    const uint8_t kind = in.ConsumeIntegral<uint8_t>();
    if (kind < 8) {
        const int64_t value = kExtremes[in.ConsumeIntegralInRange<size_t>(0, std::size(kExtremes) - 1)];
        return {value, value < 0 || value > max_small};
    }
    // Small counts most often: each call is cheap and every tail still shows.
    return {in.ConsumeIntegralInRange<int64_t>(0, max_small >> (2 * (kind % 4))), false};
}

// An enum argument: one of the `count` valid values, or sometimes anything.
template <typename Enum>
Enum pick_enum(FuzzedDataProvider& in, int count) {
    if (in.ConsumeIntegral<uint8_t>() < 16) return static_cast<Enum>(in.ConsumeIntegral<int32_t>());
    return static_cast<Enum>(in.ConsumeIntegralInRange<int>(0, count - 1));
}

inline bool is_float_dtype(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 || dtype == BNB_DTYPE_FLOAT16 || dtype == BNB_DTYPE_BFLOAT16;
}

inline int64_t dtype_bytes(bnb_dtype dtype) {
    switch (dtype) {
        case BNB_DTYPE_FLOAT32:
        case BNB_DTYPE_INT32: return 4;
        case BNB_DTYPE_FLOAT16:
        case BNB_DTYPE_BFLOAT16: return 2;
        case BNB_DTYPE_UINT8:
        case BNB_DTYPE_INT8: return 1;
    }
    return 0;
}

inline bnb_dtype pick_dtype(FuzzedDataProvider& in) { return pick_enum<bnb_dtype>(in, 6); }

// A blocksize: one of `listed`, sometimes any value at all.
inline int64_t pick_blocksize(FuzzedDataProvider& in, std::initializer_list<int64_t> listed) {
    const uint8_t kind = in.ConsumeIntegral<uint8_t>();
    if (kind < 12) return pick_count(in, 5000).value;
    return listed.begin()[in.ConsumeIntegralInRange<size_t>(0, listed.size() - 1)];
}

inline float float_from_bits(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline uint32_t bits_of(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline float half_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const int exponent = (h >> 10) & 0x1f;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
    const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -24)
                                          : std::ldexp(static_cast<float>(mantissa | 0x400u), exponent - 25);
    return sign ? -magnitude : magnitude;
}

// Element `i` of a buffer of `dtype` (a float one) as float.
inline float load_float(const void* data, int64_t i, bnb_dtype dtype) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    if (dtype == BNB_DTYPE_FLOAT32) {
        float value;
        std::memcpy(&value, bytes + i * 4, 4);
        return value;
    }
    uint16_t half;
    std::memcpy(&half, bytes + i * 2, 2);
    return dtype == BNB_DTYPE_BFLOAT16 ? float_from_bits(static_cast<uint32_t>(half) << 16) : half_to_float(half);
}

// Element values: ordinary numbers at a scale drawn from the input, mixed at a
// drawn density with zeros, infinities, NaNs (any payload), subnormals, the
// largest floats and arbitrary bits.
class Values {
public:
    explicit Values(FuzzedDataProvider& in)
        : rng_(in.ConsumeIntegral<uint64_t>()),
          special_per_256_(in.ConsumeIntegral<uint8_t>()),
          scale_(std::ldexp(1.0f, in.ConsumeIntegralInRange<int>(-40, 40))) {}

    float next() {
        if (static_cast<uint8_t>(rng_()) >= special_per_256_) {
            // Uniform in (-1, 1) at the drawn scale: cheaper than a normal draw, as good here.
            return static_cast<float>(static_cast<int32_t>(rng_()) >> 7) * 0x1p-24f * scale_;
        }
        const uint32_t r = static_cast<uint32_t>(rng_());
        switch (rng_() % 9) {
            case 0: return (r & 1) ? -0.0f : 0.0f;
            case 1: return (r & 1) ? -INFINITY : INFINITY;
            case 2: return float_from_bits(0x7f800001u | (r & 0x807fffffu));  // a NaN
            case 3: return float_from_bits(r & 0x807fffffu);  // subnormal
            case 4: return float_from_bits((r & 0x80000000u) | 0x7f7fffffu);  // float32 max
            case 5: return (r & 1) ? 65504.0f : -65504.0f;  // float16 max
            case 6: return float_from_bits((r & 0x807fffffu) | 0x00800000u);  // smallest normals
            case 7: return std::ldexp(1.0f, static_cast<int>(r % 60) - 30);
            default: return float_from_bits(r);
        }
    }

    uint8_t next_byte() { return static_cast<uint8_t>(rng_()); }

    // `count` elements of `dtype` (float dtypes from next(); integer ones from the bits).
    void fill(void* data, int64_t count, bnb_dtype dtype) {
        auto* bytes = static_cast<uint8_t*>(data);
        for (int64_t i = 0; i < count; ++i) {
            const float value = next();
            const uint32_t bits = bits_of(value);
            if (dtype == BNB_DTYPE_FLOAT32 || dtype == BNB_DTYPE_INT32) {
                std::memcpy(bytes + i * 4, &bits, 4);
            } else if (dtype == BNB_DTYPE_BFLOAT16) {
                const uint16_t upper = static_cast<uint16_t>(bits >> 16);
                std::memcpy(bytes + i * 2, &upper, 2);
            } else if (dtype == BNB_DTYPE_FLOAT16) {
                // Raw half bits: every class of value, exponents spread evenly.
                const uint16_t half = static_cast<uint16_t>(rng_());
                std::memcpy(bytes + i * 2, &half, 2);
            } else {
                bytes[i] = static_cast<uint8_t>(rng_());
            }
        }
    }

    void fill_bytes(void* data, int64_t count) {
        auto* bytes = static_cast<uint8_t*>(data);
        for (int64_t i = 0; i < count; ++i) bytes[i] = static_cast<uint8_t>(rng_());
    }

private:
    std::mt19937_64 rng_;
    uint8_t special_per_256_;
    float scale_;
};

enum class Access { kRead, kWrite };

// What a call's buffers look like to the caller.
enum class Fault : uint8_t { kNone, kNull, kMisaligned, kOverlap };

// The buffers of one call, each allocated at exactly its documented size: a
// kernel that touches a byte past it is an AddressSanitizer report. One fault
// may be applied to one of them; the call must then fail.
class Buffers {
public:
    struct Item {
        std::string name;
        int64_t bytes;
        int64_t alignment;
        Access access;
        bool optional;              // NULL is a valid argument of another meaning (no bias, ...)
        uint8_t* data = nullptr;    // what the call receives
        uint8_t* region = nullptr;  // the buffer as allocated, before any fault
        std::shared_ptr<uint8_t> storage;
    };

    // A buffer the call uses (bytes > 0) or not (bytes == 0: the caller passes NULL).
    int add(const std::string& name, int64_t bytes, int64_t alignment, Access access, bool optional = false) {
        Item item{name, bytes, alignment, access, optional};
        if (bytes > 0) {
            void* memory = nullptr;
            // 256: the strictest alignment of any op (workspaces); a misaligned
            // buffer moves its start and keeps its exact end.
            if (posix_memalign(&memory, 256, static_cast<size_t>(bytes) + 256) != 0) finding("out of host memory");
            item.storage.reset(static_cast<uint8_t*>(memory), [](uint8_t* p) {
                ASAN_UNPOISON_MEMORY_REGION(p, 256);
                std::free(p);
            });
            item.region = item.data = item.storage.get() + 256;
            // Only [data, data + bytes) is the caller's: an access to the 256 bytes
            // before it is reported as well.
            ASAN_POISON_MEMORY_REGION(item.storage.get(), 256);
        }
        items_.push_back(std::move(item));
        return static_cast<int>(items_.size()) - 1;
    }

    // Another Buffers' item (the same memory), for a fault among a subset.
    void adopt(const Item& item) { items_.push_back(item); }

    Item& operator[](int index) { return items_[static_cast<size_t>(index)]; }
    uint8_t* data(int index) { return items_[static_cast<size_t>(index)].data; }
    int size() const { return static_cast<int>(items_.size()); }

    // Draws a fault from the input and applies it where one applies; returns
    // a description of the applied fault (empty: the buffers are as documented).
    std::string apply_fault(FuzzedDataProvider& in) {
        const auto fault = static_cast<Fault>(in.ConsumeIntegralInRange<int>(0, 12) % 4);
        if (fault == Fault::kNone || items_.empty()) return "";
        Item& target = items_[in.ConsumeIntegralInRange<size_t>(0, items_.size() - 1)];
        if (target.bytes <= 0) return "";
        switch (fault) {
            case Fault::kNull:
                if (target.optional) return "";
                target.data = nullptr;
                return target.name + " NULL";
            case Fault::kMisaligned: {
                if (target.alignment <= 1) return "";
                const int64_t offset = in.ConsumeIntegralInRange<int64_t>(1, target.alignment - 1);
                target.data = target.region - offset;
                return target.name + " misaligned by " + std::to_string(offset);
            }
            case Fault::kOverlap: {
                // The smaller of two buffers, one of them written, moved inside the larger.
                Item& other = items_[in.ConsumeIntegralInRange<size_t>(0, items_.size() - 1)];
                if (&other == &target || other.bytes <= 0) return "";
                if (target.access == Access::kRead && other.access == Access::kRead) return "";
                Item& host = target.bytes >= other.bytes ? target : other;
                Item& guest = target.bytes >= other.bytes ? other : target;
                const int64_t room = host.bytes - guest.bytes;
                const int64_t shift = in.ConsumeIntegralInRange<int64_t>(0, room) / guest.alignment * guest.alignment;
                guest.data = host.data + shift;
                return guest.name + " inside " + host.name;
            }
            case Fault::kNone: break;
        }
        return "";
    }

private:
    std::vector<Item> items_;
};

// The verdict on a call. `expected_error` is a reason the call must fail
// (empty: its arguments are valid and it must succeed).
inline void check_status(bnb_status status, const std::string& expected_error, const std::string& call) {
    const std::string message = bnb_last_error();
    require(status >= BNB_STATUS_SUCCESS && status <= BNB_STATUS_INTERNAL,
            call + ": returned an unknown status " + std::to_string(static_cast<int>(status)));
    if (status == BNB_STATUS_SUCCESS) {
        require(expected_error.empty(), call + ": accepted although " + expected_error);
        return;
    }
    require(!message.empty(), call + ": returned " + bnb_status_name(status) + " without a message");
    require(!expected_error.empty(),
            call + ": refused valid arguments with " + bnb_status_name(status) + ": " + message);
}

// The vector paths this machine runs, each checked against "scalar".
inline const std::vector<std::string>& vector_variants() {
    static const std::vector<std::string> variants = [] {
        std::vector<std::string> names;
        for (const char* name : {"avx2", "avx512"}) {
            if (bnb_backend_variant_supported(BNB_DEVICE_CPU, name)) names.emplace_back(name);
        }
        return names;
    }();
    return variants;
}

inline void select_variant(const std::string& name) {
    require(bnb_backend_select_variant(BNB_DEVICE_CPU, name.c_str()) == BNB_STATUS_SUCCESS,
            "cannot select the CPU variant " + name + ": " + bnb_last_error());
}

// The input's choice of a vector variant to compare with the scalar one (or
// "scalar" itself where the machine has none).
inline std::string pick_vector_variant(FuzzedDataProvider& in) {
    const std::vector<std::string>& variants = vector_variants();
    if (variants.empty()) return "scalar";
    return variants[in.ConsumeIntegralInRange<size_t>(0, variants.size() - 1)];
}

// Float elements equal bit for bit, or both NaN (the payload of a NaN result is
// the numerics' concern, not the variants' agreement).
inline void require_same_floats(const void* actual, const void* expected, int64_t count, bnb_dtype dtype,
                                const std::string& what) {
    const int64_t size = dtype_bytes(dtype);
    const auto* a = static_cast<const uint8_t*>(actual);
    const auto* e = static_cast<const uint8_t*>(expected);
    for (int64_t i = 0; i < count; ++i) {
        if (std::memcmp(a + i * size, e + i * size, static_cast<size_t>(size)) == 0) continue;
        const float av = load_float(a, i, dtype);
        const float ev = load_float(e, i, dtype);
        if (std::isnan(av) && std::isnan(ev)) continue;
        finding(what + ": element " + std::to_string(i) + " is " + show(av) + ", the scalar path gives " + show(ev));
    }
}

inline void require_same_bytes(const void* actual, const void* expected, int64_t bytes, const std::string& what) {
    const auto* a = static_cast<const uint8_t*>(actual);
    const auto* e = static_cast<const uint8_t*>(expected);
    for (int64_t i = 0; i < bytes; ++i) {
        if (a[i] != e[i]) {
            finding(what + ": byte " + std::to_string(i) + " is " + std::to_string(a[i]) + ", the scalar path gives " +
                    std::to_string(e[i]));
        }
    }
}

// The written buffers' bytes, to be restored before the call is run again on
// another variant (in-place ops start from the same state).
inline std::vector<std::vector<uint8_t>> snapshot(Buffers& buffers) {
    std::vector<std::vector<uint8_t>> copies;
    for (int i = 0; i < buffers.size(); ++i) {
        const auto& item = buffers[i];
        if (item.access == Access::kWrite && item.bytes > 0) {
            copies.emplace_back(item.region, item.region + item.bytes);
        } else {
            copies.emplace_back();
        }
    }
    return copies;
}

inline void restore(Buffers& buffers, const std::vector<std::vector<uint8_t>>& copies) {
    for (int i = 0; i < buffers.size(); ++i) {
        if (!copies[static_cast<size_t>(i)].empty()) {
            std::memcpy(buffers[i].region, copies[static_cast<size_t>(i)].data(), copies[static_cast<size_t>(i)].size());
        }
    }
}

// `call_once` on `variant`, whose status must be `expected_error`'s (check_status; `described`
// names the call, `fault` the buffer fault applied). Where it succeeded on a vector variant with
// results to compare, the call runs again on the scalar variant from the same inputs: returns the
// vector variant's results, the scalar ones staying in `buffers`. Returns nothing otherwise.
template <typename Call>
std::optional<std::vector<std::vector<uint8_t>>> call_then_rerun_on_scalar(
    Buffers& buffers, const std::string& variant, Call&& call_once, const std::string& expected_error,
    const std::string& described, const std::string& fault, bool has_results) {
    const auto before = snapshot(buffers);
    select_variant(variant);
    const bnb_status status = call_once();
    check_status(status, expected_error, described + (fault.empty() ? "" : " with " + fault));
    if (status != BNB_STATUS_SUCCESS || !has_results || variant == "scalar") return std::nullopt;
    auto vector_result = snapshot(buffers);
    restore(buffers, before);
    select_variant("scalar");
    require(call_once() == BNB_STATUS_SUCCESS, described + ": the scalar path failed where " + variant + " succeeded");
    return vector_result;
}

}  // namespace bnb_fuzz
