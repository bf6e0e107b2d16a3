#include "validate.h"

#include <cstdint>
#include <string>

namespace bnb {

const char* dtype_name(bnb_dtype dtype) {
    switch (dtype) {
        case BNB_DTYPE_FLOAT32: return "float32";
        case BNB_DTYPE_FLOAT16: return "float16";
        case BNB_DTYPE_BFLOAT16: return "bfloat16";
        case BNB_DTYPE_UINT8: return "uint8";
        case BNB_DTYPE_INT8: return "int8";
        case BNB_DTYPE_INT32: return "int32";
    }
    return "unknown";
}

bnb_status check_device(bnb_device device, const BackendOps** ops) {
    if (device.type < 0 || device.type >= BNB_DEVICE_TYPE_COUNT) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    "device.type must be a bnb_device_type, got " + std::to_string(device.type));
    }
    if (device.index < 0) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    "device.index must be >= 0, got " + std::to_string(device.index));
    }
    const BackendOps* found = backend_ops(device.type);
    if (found == nullptr) {
        return fail(BNB_STATUS_BACKEND_UNAVAILABLE,
                    std::string("device: the ") + bnb_backend_name(device.type) +
                        " backend is not built into this library");
    }
    const int count = found->device_count();
    if (count <= 0) {
        return fail(BNB_STATUS_BACKEND_UNAVAILABLE,
                    std::string("device: the ") + found->name +
                        " backend is built but no device of that type is usable");
    }
    if (device.index >= count) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, "device.index must be < " + std::to_string(count) + " (the " +
                                                     found->name + " devices present), got " +
                                                     std::to_string(device.index));
    }
    *ops = found;
    return BNB_STATUS_SUCCESS;
}

bnb_status check_op_slot(const BackendOps* ops, bool present, const char* op) {
    if (!present) {
        return fail(BNB_STATUS_UNSUPPORTED,
                    std::string(op) + " is not supported by the " + ops->name + " backend");
    }
    return BNB_STATUS_SUCCESS;
}

bnb_status check_float_dtype(bnb_dtype dtype, const char* argument) {
    if (dtype == BNB_DTYPE_FLOAT32 || dtype == BNB_DTYPE_FLOAT16 || dtype == BNB_DTYPE_BFLOAT16) {
        return BNB_STATUS_SUCCESS;
    }
    return fail(BNB_STATUS_INVALID_ARGUMENT,
                std::string(argument) + " must be float32, float16 or bfloat16, got " +
                    dtype_name(dtype) + " (" + std::to_string(static_cast<int>(dtype)) + ")");
}

bnb_status check_count(int64_t n, const char* argument) {
    if (n < 0) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    std::string(argument) + " must be >= 0, got " + std::to_string(n));
    }
    // Callers compute byte sizes such as n * 4 and n + blocksize - 1 in int64_t;
    // above this bound they would overflow (and no buffer is that large).
    constexpr int64_t kMaxCount = INT64_MAX / 8;
    if (n > kMaxCount) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, std::string(argument) + " must be <= " +
                                                     std::to_string(kMaxCount) + ", got " + std::to_string(n));
    }
    return BNB_STATUS_SUCCESS;
}

bool takes_any_positive_blocksize(Op op, const BackendOps& backend) {
    return accepted_blocksizes(op).any_positive && backend.blocks_of_any_length;
}

bool accepts_blocksize(Op op, const BackendOps& backend, int64_t blocksize) {
    if (blocksize > 0 && takes_any_positive_blocksize(op, backend)) return true;
    for (int64_t value : accepted_blocksizes(op).listed) {
        if (blocksize == value) return true;
    }
    return false;
}

bnb_status check_blocksize(int64_t blocksize, Op op, bnb_device_type type) {
    const BackendOps* backend = backend_ops(type);
    if (backend != nullptr && accepts_blocksize(op, *backend, blocksize)) return BNB_STATUS_SUCCESS;
    if (backend != nullptr && takes_any_positive_blocksize(op, *backend)) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, "blocksize must be positive, got " + std::to_string(blocksize));
    }
    std::string list;
    for (int64_t value : accepted_blocksizes(op).listed) list += (list.empty() ? "" : ", ") + std::to_string(value);
    return fail(BNB_STATUS_INVALID_ARGUMENT, "blocksize must be one of " + list + ", got " +
                                                 std::to_string(blocksize));
}

bnb_status check_product(int64_t a, int64_t b, const char* what) {
    constexpr int64_t kMaxElements = INT64_MAX / 8;
    if (a != 0 && b > kMaxElements / a) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, std::string(what) + " must be <= " + std::to_string(kMaxElements) +
                                                     ", got " + std::to_string(a) + " * " + std::to_string(b));
    }
    return BNB_STATUS_SUCCESS;
}

bnb_status check_matmul_shape(int64_t M, int64_t N, int64_t K) {
    BNB_CHECK(check_count(M, "M"));
    BNB_CHECK(check_count(N, "N"));
    BNB_CHECK(check_count(K, "K"));
    // The products become byte sizes (times up to 4 bytes): products that int64_t
    // cannot hold would wrap around to small sizes and pass the buffer checks.
    BNB_CHECK(check_product(M, K, "M * K"));
    BNB_CHECK(check_product(N, K, "N * K"));
    return check_product(M, N, "M * N");
}

bnb_status check_matrix_shape(int64_t rows, int64_t cols) {
    BNB_CHECK(check_count(rows, "rows"));
    BNB_CHECK(check_count(cols, "cols"));
    return check_product(rows, cols, "rows * cols");
}

bnb_status check_dtype(bnb_dtype dtype, const char* argument) {
    if (dtype_size(dtype) > 0) return BNB_STATUS_SUCCESS;
    return fail(BNB_STATUS_INVALID_ARGUMENT, std::string(argument) + " must be a bnb_dtype, got " +
                                                 std::to_string(static_cast<int>(dtype)));
}

bnb_status check_gemm_4bit_algo(bnb_gemm_4bit_algo algo) {
    switch (algo) {
        case BNB_GEMM_4BIT_AUTO:
        case BNB_GEMM_4BIT_GENERIC:
        case BNB_GEMM_4BIT_SIMT:
        case BNB_GEMM_4BIT_TENSOR_CORE:
        case BNB_GEMM_4BIT_DEQUANTIZE: return BNB_STATUS_SUCCESS;
    }
    return fail(BNB_STATUS_INVALID_ARGUMENT,
                "algo must be a bnb_gemm_4bit_algo, got " + std::to_string(static_cast<int>(algo)));
}

bnb_status check_quant_type(bnb_quant_type quant_type) {
    if (quant_type == BNB_QUANT_NF4 || quant_type == BNB_QUANT_FP4) return BNB_STATUS_SUCCESS;
    return fail(BNB_STATUS_INVALID_ARGUMENT,
                "quant_type must be BNB_QUANT_NF4 or BNB_QUANT_FP4, got " +
                    std::to_string(static_cast<int>(quant_type)));
}

bnb_status check_buffers(const Buffers& buffers) {
    for (const Buffer& buffer : buffers) {
        if (buffer.bytes <= 0) continue;
        if (buffer.data == nullptr) {
            return fail(BNB_STATUS_INVALID_ARGUMENT,
                        std::string(buffer.name) + " must not be NULL when n > 0");
        }
        if (reinterpret_cast<uintptr_t>(buffer.data) % static_cast<uintptr_t>(buffer.alignment) != 0) {
            return fail(BNB_STATUS_INVALID_ARGUMENT,
                        std::string(buffer.name) + " must be aligned to " +
                            std::to_string(buffer.alignment) + " bytes");
        }
    }
    for (auto a = buffers.begin(); a != buffers.end(); ++a) {
        if (a->bytes <= 0) continue;
        const auto a_begin = reinterpret_cast<uintptr_t>(a->data);
        const auto a_end = a_begin + static_cast<uintptr_t>(a->bytes);
        for (auto b = a + 1; b != buffers.end(); ++b) {
            if (b->bytes <= 0 || (a->access == Access::kRead && b->access == Access::kRead)) continue;
            const auto b_begin = reinterpret_cast<uintptr_t>(b->data);
            const auto b_end = b_begin + static_cast<uintptr_t>(b->bytes);
            if (a_begin < b_end && b_begin < a_end) {
                return fail(BNB_STATUS_INVALID_ARGUMENT,
                            std::string(a->name) + " and " + b->name + " must not overlap");
            }
        }
    }
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb
