// Argument checks shared by every C ABI entry point. Each returns
// BNB_STATUS_SUCCESS or records a message naming the argument.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "backend.h"
#include "buffers.h"

namespace bnb {

const char* dtype_name(bnb_dtype dtype);

// Resolves the backend of `device` (type, index below its device count).
bnb_status check_device(bnb_device device, const BackendOps** ops);
// BNB_STATUS_UNSUPPORTED naming op and backend when the backend lacks the op.
bnb_status check_op_slot(const BackendOps* ops, bool present, const char* op);

bnb_status check_float_dtype(bnb_dtype dtype, const char* argument);
// 0 <= n <= INT64_MAX / 8, so that byte sizes computed from n cannot overflow.
bnb_status check_count(int64_t n, const char* argument);
// a * b <= INT64_MAX / 8 (for non-negative a and b).
bnb_status check_product(int64_t a, int64_t b, const char* what);
// Counts M, N, K of a matrix product [M, K] x [N, K]^T whose pairwise products
// (M * K, N * K, M * N) stay byte-size safe.
bnb_status check_matmul_shape(int64_t M, int64_t N, int64_t K);
// A [rows, cols] matrix: both counts and their product.
bnb_status check_matrix_shape(int64_t rows, int64_t cols);
// dtype is one of bnb_dtype's values.
bnb_status check_dtype(bnb_dtype dtype, const char* argument);
// blocksize is one that `op` accepts on `backend` (accepted_blocksizes and the
// backend's blocks_of_any_length).
// Whether `op` takes every positive blocksize on `backend`, besides the listed ones.
bool takes_any_positive_blocksize(Op op, const BackendOps& backend);
bool accepts_blocksize(Op op, const BackendOps& backend, int64_t blocksize);
bnb_status check_blocksize(int64_t blocksize, Op op, bnb_device_type type);
bnb_status check_quant_type(bnb_quant_type quant_type);
bnb_status check_gemm_4bit_algo(bnb_gemm_4bit_algo algo);

// Non-null when bytes > 0, aligned, and no written buffer overlaps another one.
bnb_status check_buffers(const Buffers& buffers);

}  // namespace bnb

// Returns from the enclosing function if a check failed.
#define BNB_CHECK(expr)                                         \
    do {                                                        \
        const bnb_status bnb_check_status_ = (expr);            \
        if (bnb_check_status_ != BNB_STATUS_SUCCESS) return bnb_check_status_; \
    } while (0)
