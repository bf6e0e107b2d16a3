// bnb_quantize_blockwise / bnb_dequantize_blockwise: validation, then the backend.
#include "../validate.h"

namespace bnb {
namespace {
constexpr std::initializer_list<int64_t> kQuantizeBlocksizes = {64, 128, 256, 512, 1024, 2048, 4096};
// Dequantization indexes absmax by a shift on the GPU: any power of two that a
// quantizer (8-bit or 4-bit) produces.
constexpr std::initializer_list<int64_t> kDequantizeBlocksizes = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
}  // namespace
}  // namespace bnb

using namespace bnb;

extern "C" BNB_API bnb_status bnb_quantize_blockwise(bnb_device device, void* stream, bnb_dtype dtype,
                                                     const void* A, const float* code, int64_t n,
                                                     int64_t blocksize, uint8_t* out, float* absmax) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(device, &ops));
    BNB_CHECK(check_op_slot(ops, reinterpret_cast<const void*>(ops->quantize_blockwise), "quantize_blockwise"));
    BNB_CHECK(check_float_dtype(dtype, "dtype"));
    BNB_CHECK(check_count(n, "n"));
    BNB_CHECK(check_blocksize(blocksize, kQuantizeBlocksizes));
    if (n == 0) return BNB_STATUS_SUCCESS;
    const int64_t blocks = ceil_div(n, blocksize);
    BNB_CHECK(check_buffers({
        {"A", A, n * dtype_size(dtype), dtype_size(dtype), false},
        {"code", code, 256 * 4, 4, false},
        {"out", out, n, 1, true},
        {"absmax", absmax, blocks * 4, 4, true},
    }));
    return ops->quantize_blockwise({device, stream, dtype, A, code, n, blocksize, out, absmax});
}

extern "C" BNB_API bnb_status bnb_dequantize_blockwise(bnb_device device, void* stream, bnb_dtype dtype,
                                                       const uint8_t* A, const float* code,
                                                       const float* absmax, int64_t n,
                                                       int64_t blocksize, void* out) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(device, &ops));
    BNB_CHECK(check_op_slot(ops, reinterpret_cast<const void*>(ops->dequantize_blockwise), "dequantize_blockwise"));
    BNB_CHECK(check_float_dtype(dtype, "dtype"));
    BNB_CHECK(check_count(n, "n"));
    BNB_CHECK(check_blocksize(blocksize, kDequantizeBlocksizes));
    if (n == 0) return BNB_STATUS_SUCCESS;
    const int64_t blocks = ceil_div(n, blocksize);
    BNB_CHECK(check_buffers({
        {"A", A, n, 1, false},
        {"code", code, 256 * 4, 4, false},
        {"absmax", absmax, blocks * 4, 4, false},
        {"out", out, n * dtype_size(dtype), dtype_size(dtype), true},
    }));
    return ops->dequantize_blockwise({device, stream, dtype, A, code, absmax, n, blocksize, out});
}
