// How an op describes its buffers: name, address, extent, alignment and whether
// the op writes it. Each family header (src/ops/<family>.h) gives one description
// per op; the core validates every call against it (check_buffers) and the C++
// bad-input tests corrupt each described pointer in turn. Header-only, so that
// tests linking only the shared library can use the descriptions too.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb {

// The ops of src/ops.def (defined in src/ops.h).
enum class Op : int;

enum class Access { kRead, kWrite };

struct Buffer {
    const char* name;  // as the C ABI spells the parameter
    const void* data;
    int64_t bytes;      // 0: not used by this call (a NULL pointer is then fine)
    int64_t alignment;  // bytes
    Access access;
};

// The buffers of one call; an op has at most kCapacity.
class Buffers {
public:
    static constexpr int kCapacity = 12;

    Buffers(std::initializer_list<Buffer> buffers) {
        for (const Buffer& buffer : buffers) items_[count_++] = buffer;
    }
    const Buffer* begin() const { return items_; }
    const Buffer* end() const { return items_ + count_; }
    int size() const { return count_; }

private:
    Buffer items_[kCapacity] = {};
    int count_ = 0;
};

constexpr int64_t dtype_size(bnb_dtype dtype) {
    switch (dtype) {
        case BNB_DTYPE_FLOAT32: return 4;
        case BNB_DTYPE_FLOAT16: return 2;
        case BNB_DTYPE_BFLOAT16: return 2;
        case BNB_DTYPE_UINT8: return 1;
        case BNB_DTYPE_INT8: return 1;
        case BNB_DTYPE_INT32: return 4;
    }
    return 0;
}

// ceil(a / b) for a >= 0 and b > 0 without forming a + b - 1, which overflows
// for the blocksizes near INT64_MAX that the CPU's any-positive rule admits.
constexpr int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

}  // namespace bnb
