// bnb_gemm_4bit / bnb_gemv_4bit and the backend's gemm_4bit queries
// (bnb_gemm_4bit_fused_max_rows, bnb_gemm_4bit_workspace_size).
#include "gemm_4bit.h"

#include <string>

#include "../entry.h"

namespace bnb {
namespace {

// The query functions: device, slot, dtype, shape, blocksize, algo, output pointer.
bnb_status check_query(const Gemm4bitShape& shape, const BackendOps** ops, bool (*has_slot)(const BackendOps&),
                       const char* query, const void* result, const char* result_name) {
    BNB_CHECK(check_device(shape.device, ops));
    BNB_CHECK(check_op_slot(*ops, has_slot(**ops), query));
    BNB_CHECK(check_float_dtype(shape.dtype, "dtype"));
    BNB_CHECK(check_matmul_shape(shape.M, shape.N, shape.K));
    BNB_CHECK(check_blocksize(shape.blocksize, Op::gemm_4bit, shape.device.type));
    BNB_CHECK(check_gemm_4bit_algo(shape.algo));
    if (result == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, std::string(result_name) + " must not be NULL");
    return BNB_STATUS_SUCCESS;
}

}  // namespace

bnb_status check_arguments(const Gemm4bitArgs& args, Op op) {
    if (op == Op::gemv_4bit && args.code == nullptr && args.M > 0 && args.N > 0) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, "code must not be NULL (16 float32 codebook entries)");
    }
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_quant_type(args.quant_type));
    BNB_CHECK(check_matmul_shape(args.M, args.N, args.K));
    BNB_CHECK(check_blocksize(args.blocksize, op, args.device.type));
    BNB_CHECK(check_gemm_4bit_algo(args.algo));
    BNB_CHECK(check_count(args.workspace_bytes, "workspace_bytes"));
    if (args.nested() && (args.absmax_code == nullptr || args.absmax_offset == nullptr)) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    std::string(args.absmax_code == nullptr ? "absmax_code" : "absmax_offset") +
                        " must not be NULL when absmax_8bit is given (nested statistics)");
    }
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb

using namespace bnb;

extern "C" BNB_API bnb_status bnb_gemm_4bit(bnb_device device, void* stream, bnb_dtype dtype,
                                            bnb_quant_type quant_type, const void* A, int64_t M, int64_t K,
                                            const uint8_t* B, int64_t N, int64_t blocksize,
                                            const float* absmax, const uint8_t* absmax_8bit,
                                            const float* absmax_code, const float* absmax_offset,
                                            const void* bias, bnb_gemm_4bit_algo algo, void* workspace,
                                            int64_t workspace_bytes, void* out) {
    return run_op<Op::gemm_4bit>({.device = device, .stream = stream, .dtype = dtype, .quant_type = quant_type,
                                  .code = nullptr, .A = A, .B = B, .absmax = absmax, .absmax_8bit = absmax_8bit,
                                  .absmax_code = absmax_code, .absmax_offset = absmax_offset, .bias = bias,
                                  .M = M, .N = N, .K = K, .blocksize = blocksize, .algo = algo,
                                  .workspace = workspace, .workspace_bytes = workspace_bytes, .out = out});
}

extern "C" BNB_API bnb_status bnb_gemv_4bit(bnb_device device, void* stream, bnb_dtype dtype, const void* A,
                                            int64_t M, int64_t K, const uint8_t* B, int64_t N,
                                            const float* code, const float* absmax, int64_t blocksize,
                                            void* out) {
    // quant_type is unused when a codebook is given; NF4 only keeps the value valid.
    return run_op<Op::gemv_4bit>({.device = device, .stream = stream, .dtype = dtype, .quant_type = BNB_QUANT_NF4,
                                  .code = code, .A = A, .B = B, .absmax = absmax, .absmax_8bit = nullptr,
                                  .absmax_code = nullptr, .absmax_offset = nullptr, .bias = nullptr, .M = M,
                                  .N = N, .K = K, .blocksize = blocksize, .algo = BNB_GEMM_4BIT_AUTO,
                                  .workspace = nullptr, .workspace_bytes = 0, .out = out});
}

extern "C" BNB_API bnb_status bnb_gemm_4bit_fused_max_rows(bnb_device device, bnb_dtype dtype, int64_t N,
                                                           int64_t K, int64_t blocksize, int64_t* max_rows) {
    clear_error();
    const Gemm4bitShape shape{.device = device, .dtype = dtype, .M = 0, .N = N, .K = K, .blocksize = blocksize,
                              .nested = false, .algo = BNB_GEMM_4BIT_AUTO};
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_query(
        shape, &ops, [](const BackendOps& table) { return table.gemm_4bit_fused_max_rows != nullptr; },
        "gemm_4bit_fused_max_rows", max_rows, "max_rows"));
    return ops->gemm_4bit_fused_max_rows(shape, max_rows);
}

extern "C" BNB_API bnb_status bnb_gemm_4bit_workspace_size(bnb_device device, bnb_dtype dtype, int64_t M,
                                                           int64_t N, int64_t K, int64_t blocksize, int nested,
                                                           bnb_gemm_4bit_algo algo, int64_t* bytes) {
    clear_error();
    const Gemm4bitShape shape{.device = device, .dtype = dtype, .M = M, .N = N, .K = K, .blocksize = blocksize,
                              .nested = nested != 0, .algo = algo};
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_query(
        shape, &ops, [](const BackendOps& table) { return table.gemm_4bit != nullptr; },
        "gemm_4bit_workspace_size", bytes, "bytes"));
    // A backend that needs no workspace has no query.
    if (ops->gemm_4bit_workspace_size == nullptr) {
        *bytes = 0;
        return BNB_STATUS_SUCCESS;
    }
    return ops->gemm_4bit_workspace_size(shape, bytes);
}
