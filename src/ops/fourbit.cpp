// bnb_quantize_4bit / bnb_dequantize_4bit: validation, then the backend.
#include "../validate.h"

namespace bnb {
namespace {
constexpr std::initializer_list<int64_t> kFourBitBlocksizes = {32, 64, 128, 256, 512, 1024, 2048, 4096};
}  // namespace
}  // namespace bnb

using namespace bnb;

extern "C" BNB_API bnb_status bnb_quantize_4bit(bnb_device device, void* stream, bnb_quant_type quant_type,
                                                bnb_dtype dtype, const void* A, int64_t n,
                                                int64_t blocksize, uint8_t* packed, float* absmax) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(device, &ops));
    BNB_CHECK(check_op_slot(ops, reinterpret_cast<const void*>(ops->quantize_4bit), "quantize_4bit"));
    BNB_CHECK(check_quant_type(quant_type));
    BNB_CHECK(check_float_dtype(dtype, "dtype"));
    BNB_CHECK(check_count(n, "n"));
    BNB_CHECK(check_blocksize(blocksize, kFourBitBlocksizes));
    if (n == 0) return BNB_STATUS_SUCCESS;
    const int64_t blocks = ceil_div(n, blocksize);
    BNB_CHECK(check_buffers({
        {"A", A, n * dtype_size(dtype), dtype_size(dtype), false},
        {"packed", packed, (n + 1) / 2, 1, true},
        {"absmax", absmax, blocks * 4, 4, true},
    }));
    return ops->quantize_4bit({device, stream, quant_type, dtype, A, n, blocksize, packed, absmax});
}

extern "C" BNB_API bnb_status bnb_dequantize_4bit(bnb_device device, void* stream,
                                                  bnb_quant_type quant_type, bnb_dtype dtype,
                                                  const uint8_t* packed, const float* absmax,
                                                  int64_t n, int64_t blocksize, void* out) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(device, &ops));
    BNB_CHECK(check_op_slot(ops, reinterpret_cast<const void*>(ops->dequantize_4bit), "dequantize_4bit"));
    BNB_CHECK(check_quant_type(quant_type));
    BNB_CHECK(check_float_dtype(dtype, "dtype"));
    BNB_CHECK(check_count(n, "n"));
    BNB_CHECK(check_blocksize(blocksize, kFourBitBlocksizes));
    if (n == 0) return BNB_STATUS_SUCCESS;
    const int64_t blocks = ceil_div(n, blocksize);
    BNB_CHECK(check_buffers({
        {"packed", packed, (n + 1) / 2, 1, false},
        {"absmax", absmax, blocks * 4, 4, false},
        {"out", out, n * dtype_size(dtype), dtype_size(dtype), true},
    }));
    return ops->dequantize_4bit({device, stream, quant_type, dtype, packed, absmax, n, blocksize, out});
}
