// bnb_quantize_4bit / bnb_dequantize_4bit.
#include "fourbit.h"

#include "../entry.h"

namespace bnb {
namespace {

template <typename Args>
bnb_status check_fourbit(const Args& args, Op op) {
    BNB_CHECK(check_quant_type(args.quant_type));
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_count(args.n, "n"));
    return check_blocksize(args.blocksize, op, args.device.type);
}

}  // namespace

bnb_status check_arguments(const Quantize4bitArgs& args, Op op) { return check_fourbit(args, op); }
bnb_status check_arguments(const Dequantize4bitArgs& args, Op op) { return check_fourbit(args, op); }

}  // namespace bnb

using bnb::Op;
using bnb::run_op;

extern "C" BNB_API bnb_status bnb_quantize_4bit(bnb_device device, void* stream, bnb_quant_type quant_type,
                                                bnb_dtype dtype, const void* A, int64_t n,
                                                int64_t blocksize, uint8_t* packed, float* absmax) {
    return run_op<Op::quantize_4bit>({.device = device, .stream = stream, .quant_type = quant_type, .dtype = dtype,
                                      .A = A, .n = n, .blocksize = blocksize, .packed = packed, .absmax = absmax});
}

extern "C" BNB_API bnb_status bnb_dequantize_4bit(bnb_device device, void* stream,
                                                  bnb_quant_type quant_type, bnb_dtype dtype,
                                                  const uint8_t* packed, const float* absmax,
                                                  int64_t n, int64_t blocksize, void* out) {
    return run_op<Op::dequantize_4bit>({.device = device, .stream = stream, .quant_type = quant_type,
                                        .dtype = dtype, .packed = packed, .absmax = absmax, .n = n,
                                        .blocksize = blocksize, .out = out});
}
