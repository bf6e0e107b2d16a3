// bnb_quantize_4bit / bnb_dequantize_4bit with every argument drawn from the
// input: on valid arguments every vector path gives the scalar path's bytes; on
// invalid ones (quant type, dtype, count, blocksize, a NULL, misaligned or
// overlapping buffer) the call fails with a message.
#include "fuzz_support.h"

using namespace bnb_fuzz;

namespace {

constexpr int64_t kMaxElements = 4500;
constexpr int64_t kBlocksizes[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};

struct Shape {
    bool quantize;
    bnb_quant_type quant_type;
    bnb_dtype dtype;
    Count n;
    int64_t blocksize;
};

std::string argument_error(const Shape& s) {
    if (s.quant_type != BNB_QUANT_NF4 && s.quant_type != BNB_QUANT_FP4) return "quant_type is out of range";
    if (!is_float_dtype(s.dtype)) return "dtype is not a float dtype";
    if (s.n.value < 0 || s.n.value > std::numeric_limits<int64_t>::max() / 8) return "n is out of range";
    if (std::find(std::begin(kBlocksizes), std::end(kBlocksizes), s.blocksize) == std::end(kBlocksizes)) {
        return "blocksize is not one of 32 .. 4096";
    }
    return "";
}

void run(FuzzedDataProvider& in) {
    Shape s;
    s.quantize = in.ConsumeBool();
    s.quant_type = pick_enum<bnb_quant_type>(in, 2);
    s.dtype = pick_dtype(in);
    s.n = pick_count(in, kMaxElements);
    s.blocksize = pick_blocksize(in, {32, 64, 128, 256, 512, 1024, 2048, 4096});
    const std::string variant = pick_vector_variant(in);
    Values values(in);
    const std::string call = std::string(s.quantize ? "bnb_quantize_4bit" : "bnb_dequantize_4bit") + "(quant_type " +
                             std::to_string(s.quant_type) + ", dtype " + std::to_string(s.dtype) + ", n " +
                             std::to_string(s.n.value) + ", blocksize " + std::to_string(s.blocksize) + ")";
    std::string error = argument_error(s);

    if (s.n.huge) {
        alignas(64) uint8_t dummy[64] = {};
        const bnb_status status =
            s.quantize ? bnb_quantize_4bit(kCpu, nullptr, s.quant_type, s.dtype, dummy, s.n.value, s.blocksize,
                                           nullptr, nullptr)
                       : bnb_dequantize_4bit(kCpu, nullptr, s.quant_type, s.dtype, dummy,
                                             reinterpret_cast<float*>(dummy), s.n.value, s.blocksize, nullptr);
        check_status(status, error.empty() ? "out is NULL for a huge n" : error, call);
        return;
    }

    const int64_t n = s.n.value;
    const int64_t element = std::max<int64_t>(dtype_bytes(s.dtype), 1);
    const int64_t blocks = s.blocksize > 0 ? n / s.blocksize + (n % s.blocksize != 0) : 0;
    Buffers buffers;
    const int a = s.quantize ? buffers.add("A", n * element, element, Access::kRead) : -1;
    const int packed = buffers.add("packed", (n + 1) / 2, 1, s.quantize ? Access::kWrite : Access::kRead);
    const int absmax = buffers.add("absmax", blocks * 4, 4, s.quantize ? Access::kWrite : Access::kRead);
    const int out = s.quantize ? -1 : buffers.add("out", n * element, element, Access::kWrite);
    if (s.quantize) {
        values.fill(buffers.data(a), n, s.dtype);
    } else {
        values.fill_bytes(buffers.data(packed), (n + 1) / 2);
        values.fill(buffers.data(absmax), blocks, BNB_DTYPE_FLOAT32);
    }
    const std::string fault = buffers.apply_fault(in);
    if (error.empty() && n > 0) error = fault;

    auto call_once = [&] {
        return s.quantize ? bnb_quantize_4bit(kCpu, nullptr, s.quant_type, s.dtype, buffers.data(a), n, s.blocksize,
                                              buffers.data(packed), reinterpret_cast<float*>(buffers.data(absmax)))
                          : bnb_dequantize_4bit(kCpu, nullptr, s.quant_type, s.dtype, buffers.data(packed),
                                                reinterpret_cast<const float*>(buffers.data(absmax)), n, s.blocksize,
                                                buffers.data(out));
    };
    const std::string what = call + " on " + variant;
    const auto results = call_then_rerun_on_scalar(buffers, variant, call_once, error, what, fault, n > 0);
    if (!results) return;
    const auto& vector_result = *results;
    if (s.quantize) {
        require_same_bytes(vector_result[packed].data(), buffers.data(packed), (n + 1) / 2, what + ": packed");
        require_same_floats(vector_result[absmax].data(), buffers.data(absmax), blocks, BNB_DTYPE_FLOAT32,
                            what + ": absmax");
    } else {
        require_same_floats(vector_result[out].data(), buffers.data(out), n, s.dtype, what + ": out");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    run(in);
    return 0;
}
