// The four array ops of the C ABI described as data, so that one bad-input test
// covers every op: each op's pointer arguments (name, alignment, written or not),
// its accepted blocksizes, and a valid call into buffers the fixture owns.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "abi_assertions.h"
#include "bitsandbytes/bitsandbytes.h"

namespace bnb_test {

// Every buffer holds this many elements of any dtype, so that a pointer redirected
// into another buffer by a test stays inside an allocation.
inline constexpr int64_t kCallCapacity = 4096;
inline constexpr int64_t kValidCount = 1000;  // not a multiple of any blocksize

enum class Alignment { Byte, Float32, ElementOfDtype };

struct PointerArg {
    std::string name;  // as the header spells the parameter
    Alignment alignment;
    bool written;
};

struct OpCall {
    bnb_device device = kCpu;
    void* stream = nullptr;
    bnb_quant_type quant_type = BNB_QUANT_NF4;
    bnb_dtype dtype = BNB_DTYPE_FLOAT32;
    int64_t n = kValidCount;
    int64_t blocksize = 64;
    std::map<std::string, void*> pointers;
};

class OpBuffers {
public:
    OpBuffers();
    void* storage(const std::string& role) { return buffers_.at(role).data(); }

private:
    std::map<std::string, AlignedBytes> buffers_;
};

struct OpSpec {
    std::string name;
    std::vector<PointerArg> pointers;
    std::vector<int64_t> valid_blocksizes;
    bool takes_quant_type;
    // A call that succeeds: inputs filled with finite data, n = kValidCount.
    OpCall (*valid_call)(OpBuffers& buffers);
    bnb_status (*invoke)(const OpCall& call);
};

// GoogleTest prints a parameter with this instead of its bytes.
inline void PrintTo(const OpSpec& spec, std::ostream* os) { *os << spec.name; }

const std::vector<OpSpec>& all_op_specs();
std::vector<OpSpec> four_bit_op_specs();

inline size_t alignment_in_bytes(Alignment alignment, bnb_dtype dtype) {
    switch (alignment) {
        case Alignment::Byte: return 1;
        case Alignment::Float32: return 4;
        case Alignment::ElementOfDtype: return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2;
    }
    return 1;
}

}  // namespace bnb_test
