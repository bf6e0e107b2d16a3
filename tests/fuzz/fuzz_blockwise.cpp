// bnb_quantize_blockwise / bnb_dequantize_blockwise with every argument drawn
// from the input: on valid arguments every vector path gives the scalar path's
// bytes; on invalid ones (dtype, count, blocksize, a NULL, misaligned or
// overlapping buffer) the call fails with a message.
#include "fuzz_support.h"

using namespace bnb_fuzz;

namespace {

constexpr int64_t kMaxElements = 4500;

// The 256-entry code: the signed or unsigned dynamic map, or arbitrary values
// (unsorted, repeated, NaN, infinite).
void fill_code(FuzzedDataProvider& in, Values& values, float* code) {
    const uint8_t kind = in.ConsumeIntegral<uint8_t>();
    if (kind < 200) {
        const bnb_codebook which = kind < 150 ? BNB_CODEBOOK_DYNAMIC_SIGNED : BNB_CODEBOOK_DYNAMIC_UNSIGNED;
        require(bnb_codebook_copy(which, code, 256) == BNB_STATUS_SUCCESS, "bnb_codebook_copy failed");
        return;
    }
    for (int i = 0; i < 256; ++i) code[i] = values.next();
}

struct Shape {
    bool quantize;
    bnb_dtype dtype;
    Count n;
    int64_t blocksize;
};

// Why the library must refuse these arguments ("" if it must not).
std::string argument_error(const Shape& s) {
    if (!is_float_dtype(s.dtype)) return "dtype is not a float dtype";
    if (s.n.value < 0 || s.n.value > std::numeric_limits<int64_t>::max() / 8) return "n is out of range";
    // The CPU takes blocks of any positive length (bnb_backend_any_blocksize).
    if (s.blocksize <= 0) return "blocksize is not positive";
    return "";
}

void run(FuzzedDataProvider& in) {
    Shape s;
    s.quantize = in.ConsumeBool();
    s.dtype = pick_dtype(in);
    s.n = pick_count(in, kMaxElements);
    s.blocksize = pick_blocksize(in, {64, 128, 256, 512, 1024, 2048, 4096});
    const std::string variant = pick_vector_variant(in);
    Values values(in);
    const char* op = s.quantize ? "bnb_quantize_blockwise" : "bnb_dequantize_blockwise";
    const std::string call = std::string(op) + "(dtype " + std::to_string(s.dtype) + ", n " +
                             std::to_string(s.n.value) + ", blocksize " + std::to_string(s.blocksize) + ")";
    std::string error = argument_error(s);

    if (s.n.huge) {
        // Sizes no buffer has: the call must be refused before any element is touched.
        alignas(64) uint8_t dummy[64] = {};
        const bnb_status status =
            s.quantize ? bnb_quantize_blockwise(kCpu, nullptr, s.dtype, dummy, reinterpret_cast<float*>(dummy),
                                                s.n.value, s.blocksize, nullptr, nullptr)
                       : bnb_dequantize_blockwise(kCpu, nullptr, s.dtype, dummy, reinterpret_cast<float*>(dummy),
                                                  reinterpret_cast<float*>(dummy), s.n.value, s.blocksize, nullptr);
        check_status(status, error.empty() ? "out is NULL for a huge n" : error, call);
        return;
    }

    const int64_t n = s.n.value;
    const int64_t element = std::max<int64_t>(dtype_bytes(s.dtype), 1);
    const int64_t blocks = s.blocksize > 0 ? n / s.blocksize + (n % s.blocksize != 0) : 0;
    Buffers buffers;
    const int a = buffers.add("A", s.quantize ? n * element : n, s.quantize ? element : 1, Access::kRead);
    const int code = buffers.add("code", 1024, 4, Access::kRead);
    const int absmax = buffers.add("absmax", blocks * 4, 4, s.quantize ? Access::kWrite : Access::kRead);
    const int out = buffers.add("out", s.quantize ? n : n * element, s.quantize ? 1 : element, Access::kWrite);
    if (buffers[a].data) values.fill(buffers.data(a), n, s.quantize ? s.dtype : BNB_DTYPE_UINT8);
    fill_code(in, values, reinterpret_cast<float*>(buffers.data(code)));
    if (!s.quantize && buffers[absmax].data) values.fill(buffers.data(absmax), blocks, BNB_DTYPE_FLOAT32);
    const std::string fault = buffers.apply_fault(in);
    if (error.empty() && n > 0) error = fault;

    auto call_once = [&] {
        return s.quantize ? bnb_quantize_blockwise(kCpu, nullptr, s.dtype, buffers.data(a),
                                                   reinterpret_cast<const float*>(buffers.data(code)), n,
                                                   s.blocksize, buffers.data(out),
                                                   reinterpret_cast<float*>(buffers.data(absmax)))
                          : bnb_dequantize_blockwise(kCpu, nullptr, s.dtype, buffers.data(a),
                                                     reinterpret_cast<const float*>(buffers.data(code)),
                                                     reinterpret_cast<const float*>(buffers.data(absmax)), n,
                                                     s.blocksize, buffers.data(out));
    };
    const std::string what = call + " on " + variant;
    const auto results = call_then_rerun_on_scalar(buffers, variant, call_once, error, what, fault, n > 0);
    if (!results) return;
    const auto& vector_result = *results;
    if (s.quantize) {
        require_same_bytes(vector_result[out].data(), buffers.data(out), n, what + ": out");
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
