// Every array op of the C ABI as test data, so that one bad-input suite covers
// every op: the list comes from src/ops.def (an op without a case here fails to
// link), each op's buffers from its family header's description (the one the
// core validates against), its blocksizes from bnb_op_blocksizes, and a valid call
// into buffers the fixture owns.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "abi_assertions.h"
#include "bitsandbytes/bitsandbytes.h"
#include "buffers.h"

namespace bnb_test {

// Every buffer holds this many bytes times 4, so that a pointer redirected into
// another buffer by a test stays inside an allocation.
inline constexpr int64_t kCallCapacity = 4096;
inline constexpr size_t kCallBufferBytes = static_cast<size_t>(kCallCapacity) * 4;

// The arguments of one call, by the names the header gives them: scalars that
// every op shares, its counts ("n", or "M", "N", "K") and its pointers.
struct OpCall {
    bnb_device device = kCpu;
    void* stream = nullptr;
    bnb_quant_type quant_type = BNB_QUANT_NF4;
    bnb_dtype dtype = BNB_DTYPE_FLOAT32;
    int64_t blocksize = 64;
    float threshold = 0.0f;  // LLM.int8() quantization
    std::map<std::string, int64_t> counts;
    std::map<std::string, void*> pointers;
};

class OpBuffers {
public:
    OpBuffers();
    void* storage(const std::string& role) { return buffers_.at(role).data(); }
    // Other inputs, still valid for every op: float32, byte and int32 inputs
    // changed by `seed` (0 leaves them as they are).
    void vary(int seed);

private:
    std::map<std::string, AlignedBytes> buffers_;
};

struct OpSpec {
    std::string name;  // bnb_op_name
    bool takes_quant_type;
    bool takes_float_dtype;  // call.dtype selects the element type of float buffers
    // A call that succeeds: inputs filled with finite data.
    OpCall (*valid_call)(OpBuffers& buffers);
    bnb_status (*invoke)(const OpCall& call);
    // The family header's description of the call's buffers.
    bnb::Buffers (*describe)(const OpCall& call);

    std::vector<int64_t> blocksizes() const;
};

// The buffers a call writes its results to: its written buffers except scratch
// (a workspace), whose bytes are the backend's business.
std::vector<bnb::Buffer> results_of(const OpSpec& spec, const OpCall& call);

// GoogleTest prints a parameter with this instead of its bytes.
inline void PrintTo(const OpSpec& spec, std::ostream* os) { *os << spec.name; }

// In the order of src/ops.def.
const std::vector<OpSpec>& all_op_specs();
std::vector<OpSpec> four_bit_op_specs();

}  // namespace bnb_test
