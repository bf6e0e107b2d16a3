// Argument checks shared by every C ABI entry point. Each returns
// BNB_STATUS_SUCCESS or records a message naming the argument.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "backend.h"

namespace bnb {

int64_t dtype_size(bnb_dtype dtype);
const char* dtype_name(bnb_dtype dtype);

// Resolves the backend of `device` and checks that it implements `op`
// (`slot` is the op's entry in the table, looked up by the caller).
bnb_status check_device(bnb_device device, const BackendOps** ops);
bnb_status check_op_slot(const BackendOps* ops, const void* slot, const char* op);

bnb_status check_float_dtype(bnb_dtype dtype, const char* argument);
bnb_status check_count(int64_t n, const char* argument);
bnb_status check_blocksize(int64_t blocksize, std::initializer_list<int64_t> allowed);
bnb_status check_quant_type(bnb_quant_type quant_type);

// A buffer argument: its name, address, extent in bytes, required alignment, and
// whether the op writes it.
struct Buffer {
    const char* name;
    const void* data;
    int64_t bytes;
    int64_t alignment;
    bool written;
};

// Non-null when bytes > 0, aligned, and no written buffer overlaps another one.
bnb_status check_buffers(std::initializer_list<Buffer> buffers);

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace bnb

// Returns from the enclosing function if a check failed.
#define BNB_CHECK(expr)                                         \
    do {                                                        \
        const bnb_status bnb_check_status_ = (expr);            \
        if (bnb_check_status_ != BNB_STATUS_SUCCESS) return bnb_check_status_; \
    } while (0)
