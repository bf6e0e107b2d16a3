// bnb_quantize_blockwise / bnb_dequantize_blockwise.
#include "blockwise.h"

#include "../entry.h"

namespace bnb {

bnb_status check_arguments(const QuantizeBlockwiseArgs& args, Op op) {
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_count(args.n, "n"));
    return check_blocksize(args.blocksize, op, args.device.type);
}

bnb_status check_arguments(const DequantizeBlockwiseArgs& args, Op op) {
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_count(args.n, "n"));
    return check_blocksize(args.blocksize, op, args.device.type);
}

}  // namespace bnb

using bnb::Op;
using bnb::run_op;

extern "C" BNB_API bnb_status bnb_quantize_blockwise(bnb_device device, void* stream, bnb_dtype dtype,
                                                     const void* A, const float* code, int64_t n,
                                                     int64_t blocksize, uint8_t* out, float* absmax) {
    return run_op<Op::quantize_blockwise>({.device = device, .stream = stream, .dtype = dtype, .A = A, .code = code,
                                           .n = n, .blocksize = blocksize, .out = out, .absmax = absmax});
}

extern "C" BNB_API bnb_status bnb_dequantize_blockwise(bnb_device device, void* stream, bnb_dtype dtype,
                                                       const uint8_t* A, const float* code,
                                                       const float* absmax, int64_t n,
                                                       int64_t blocksize, void* out) {
    return run_op<Op::dequantize_blockwise>({.device = device, .stream = stream, .dtype = dtype, .A = A,
                                             .code = code, .absmax = absmax, .n = n, .blocksize = blocksize,
                                             .out = out});
}
