// bnb_gemm_4bit / bnb_gemv_4bit / bnb_gemm_4bit_fused_max_rows: validation, then
// the backend's gemm_4bit slot.
#include <cstdint>
#include <string>

#include "../validate.h"

namespace bnb {
namespace {

constexpr std::initializer_list<int64_t> kFourBitBlocksizes = {32, 64, 128, 256, 512, 1024, 2048, 4096};
// quantize_4bit(compress_statistics=True) always nests with blocksize 256.
constexpr int64_t kNestedBlocksize = 256;

bnb_status check_algo(bnb_gemm_4bit_algo algo) {
    switch (algo) {
        case BNB_GEMM_4BIT_AUTO:
        case BNB_GEMM_4BIT_GENERIC:
        case BNB_GEMM_4BIT_SIMT:
        case BNB_GEMM_4BIT_TENSOR_CORE: return BNB_STATUS_SUCCESS;
    }
    return fail(BNB_STATUS_INVALID_ARGUMENT,
                "algo must be a bnb_gemm_4bit_algo, got " + std::to_string(static_cast<int>(algo)));
}

bnb_status check_nonnegative(int64_t value, const char* name) { return check_count(value, name); }

// M * K, N * K and M * N become byte sizes below (times up to 4 bytes): products
// that int64_t cannot hold would wrap around to small sizes and pass the buffer checks.
bnb_status check_product(int64_t a, int64_t b, const char* what) {
    constexpr int64_t kMaxElements = INT64_MAX / 8;
    if (a != 0 && b > kMaxElements / a) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, std::string(what) + " must be <= " + std::to_string(kMaxElements) +
                                                     ", got " + std::to_string(a) + " * " + std::to_string(b));
    }
    return BNB_STATUS_SUCCESS;
}

// Everything bnb_gemm_4bit and bnb_gemv_4bit share; `args` is complete.
bnb_status validate_and_run(const Gemm4bitArgs& args, const char* op) {
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(args.device, &ops));
    BNB_CHECK(check_op_slot(ops, reinterpret_cast<const void*>(ops->gemm_4bit), op));
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_quant_type(args.quant_type));
    BNB_CHECK(check_nonnegative(args.M, "M"));
    BNB_CHECK(check_nonnegative(args.N, "N"));
    BNB_CHECK(check_nonnegative(args.K, "K"));
    BNB_CHECK(check_product(args.M, args.K, "M * K"));
    BNB_CHECK(check_product(args.N, args.K, "N * K"));
    BNB_CHECK(check_product(args.M, args.N, "M * N"));
    BNB_CHECK(check_blocksize(args.blocksize, kFourBitBlocksizes));
    BNB_CHECK(check_algo(args.algo));
    const bool nested = args.absmax_8bit != nullptr;
    if (nested && (args.absmax_code == nullptr || args.absmax_offset == nullptr)) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    std::string(args.absmax_code == nullptr ? "absmax_code" : "absmax_offset") +
                        " must not be NULL when absmax_8bit is given (nested statistics)");
    }
    if (args.M == 0 || args.N == 0) return BNB_STATUS_SUCCESS;
    const int64_t element_size = dtype_size(args.dtype);
    const int64_t weights = args.N * args.K;
    const int64_t blocks = ceil_div(weights, args.blocksize);
    const int64_t absmax_entries = nested ? ceil_div(blocks, kNestedBlocksize) : blocks;
    BNB_CHECK(check_buffers({
        {"A", args.A, args.M * args.K * element_size, element_size, false},
        {"B", args.B, (weights + 1) / 2, 1, false},
        {"code", args.code, args.code != nullptr ? 16 * 4 : 0, 4, false},
        {"absmax", args.absmax, absmax_entries * 4, 4, false},
        {"absmax_8bit", args.absmax_8bit, nested ? blocks : 0, 1, false},
        {"absmax_code", args.absmax_code, nested ? 256 * 4 : 0, 4, false},
        {"absmax_offset", args.absmax_offset, nested ? 4 : 0, 4, false},
        {"bias", args.bias, args.bias != nullptr ? args.N * element_size : 0, element_size, false},
        {"out", args.out, args.M * args.N * element_size, element_size, true},
    }));
    return ops->gemm_4bit(args);
}

}  // namespace
}  // namespace bnb

using namespace bnb;

extern "C" BNB_API bnb_status bnb_gemm_4bit(bnb_device device, void* stream, bnb_dtype dtype,
                                            bnb_quant_type quant_type, const void* A, int64_t M, int64_t K,
                                            const uint8_t* B, int64_t N, int64_t blocksize,
                                            const float* absmax, const uint8_t* absmax_8bit,
                                            const float* absmax_code, const float* absmax_offset,
                                            const void* bias, bnb_gemm_4bit_algo algo, void* out) {
    clear_error();
    const Gemm4bitArgs args{device, stream, dtype, quant_type, nullptr, A, B, absmax, absmax_8bit,
                            absmax_code, absmax_offset, bias, M, N, K, blocksize, algo, out};
    return validate_and_run(args, "gemm_4bit");
}

extern "C" BNB_API bnb_status bnb_gemv_4bit(bnb_device device, void* stream, bnb_dtype dtype, const void* A,
                                            int64_t M, int64_t K, const uint8_t* B, int64_t N,
                                            const float* code, const float* absmax, int64_t blocksize,
                                            void* out) {
    clear_error();
    if (code == nullptr && M > 0 && N > 0) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, "code must not be NULL (16 float32 codebook entries)");
    }
    // quant_type is unused when a codebook is given; NF4 only keeps the value valid.
    const Gemm4bitArgs args{device, stream, dtype, BNB_QUANT_NF4, code, A, B, absmax, nullptr, nullptr,
                            nullptr, nullptr, M, N, K, blocksize, BNB_GEMM_4BIT_AUTO, out};
    return validate_and_run(args, "gemv_4bit");
}

extern "C" BNB_API bnb_status bnb_gemm_4bit_fused_max_rows(bnb_device device, bnb_dtype dtype, int64_t N,
                                                           int64_t K, int64_t blocksize, int64_t* max_rows) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(device, &ops));
    BNB_CHECK(check_op_slot(ops, reinterpret_cast<const void*>(ops->gemm_4bit_fused_max_rows),
                            "gemm_4bit_fused_max_rows"));
    BNB_CHECK(check_float_dtype(dtype, "dtype"));
    BNB_CHECK(check_nonnegative(N, "N"));
    BNB_CHECK(check_nonnegative(K, "K"));
    BNB_CHECK(check_blocksize(blocksize, kFourBitBlocksizes));
    if (max_rows == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "max_rows must not be NULL");
    return ops->gemm_4bit_fused_max_rows({device, dtype, N, K, blocksize}, max_rows);
}
