// The LLM.int8() ops (bnb_int8_vectorwise_quant, _double_quant,
// _vectorwise_dequant, _linear_matmul, _mm_dequant, _scaled_mm) with every
// argument drawn from the input: on valid arguments every vector path gives
// the scalar path's bytes; on invalid ones the call fails with a message.
#include "fuzz_support.h"

using namespace bnb_fuzz;

namespace {

constexpr int64_t kMaxDimension = 80;
constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 8;

enum class Op { kQuant, kDoubleQuant, kDequant, kMatmul, kMmDequant, kScaledMm, kCount };

bool count_ok(int64_t v) { return v >= 0 && v <= kMaxCount; }
bool product_ok(int64_t a, int64_t b) { return a == 0 || b <= kMaxCount / a; }

struct Call {
    Op op;
    bnb_dtype dtype;
    bnb_dtype bias_dtype;
    Count rows, cols, inner;  // [rows, cols] matrices; products: M = rows, N = cols, K = inner
    float threshold;
    bool bias;
    bool outliers;
    int64_t workspace_bytes;
    std::string variant;
};

bool uses_dtype(Op op) { return op != Op::kMatmul; }
bool is_product(Op op) { return op == Op::kMatmul || op == Op::kScaledMm; }

std::string argument_error(const Call& c) {
    if (uses_dtype(c.op) && !is_float_dtype(c.dtype)) return "dtype is not a float dtype";
    if ((c.op == Op::kMmDequant || c.op == Op::kScaledMm) && c.bias && !is_float_dtype(c.bias_dtype)) {
        return "bias_dtype is not a float dtype";
    }
    const int64_t r = c.rows.value, k = c.cols.value, i = c.inner.value;
    if (!count_ok(r) || !count_ok(k)) return "a count is out of range";
    if (is_product(c.op)) {
        if (!count_ok(i)) return "K is out of range";
        if (!product_ok(r, i) || !product_ok(k, i) || !product_ok(r, k)) return "a product of counts is too large";
    } else if (!product_ok(r, k)) {
        return "rows * cols is too large";
    }
    if ((c.op == Op::kQuant || c.op == Op::kDoubleQuant) && !(c.threshold >= 0.0f && std::isfinite(c.threshold))) {
        return "threshold is negative or not finite";
    }
    if (c.op == Op::kScaledMm && !count_ok(c.workspace_bytes)) return "workspace_bytes is out of range";
    return "";
}

float pick_threshold(FuzzedDataProvider& in, Values& values) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
        case 0: return 0.0f;
        case 1: return values.next();  // anything, NaN and negative included
        default: return std::ldexp(static_cast<float>(in.ConsumeIntegralInRange<int>(1, 16)), in.ConsumeIntegralInRange<int>(-8, 4));
    }
}

bnb_status call_op(const Call& c, Buffers& b, const int* ix) {
    auto ptr = [&](int i) -> void* { return ix[i] >= 0 ? b.data(ix[i]) : nullptr; };
    const int64_t r = c.rows.value, k = c.cols.value, inner = c.inner.value;
    switch (c.op) {
        case Op::kQuant:
            return bnb_int8_vectorwise_quant(kCpu, nullptr, c.dtype, ptr(0), r, k, c.threshold,
                                             static_cast<int8_t*>(ptr(1)), static_cast<float*>(ptr(2)),
                                             static_cast<int64_t*>(ptr(5)), static_cast<int64_t*>(ptr(6)));
        case Op::kDoubleQuant:
            return bnb_int8_double_quant(kCpu, nullptr, c.dtype, ptr(0), r, k, c.threshold,
                                         static_cast<int8_t*>(ptr(1)), static_cast<int8_t*>(ptr(3)),
                                         static_cast<float*>(ptr(2)), static_cast<float*>(ptr(4)),
                                         static_cast<int64_t*>(ptr(5)), static_cast<int64_t*>(ptr(6)));
        case Op::kDequant:
            return bnb_int8_vectorwise_dequant(kCpu, nullptr, c.dtype, static_cast<const int8_t*>(ptr(0)),
                                               static_cast<const float*>(ptr(1)), r, k, ptr(2));
        case Op::kMatmul:
            return bnb_int8_linear_matmul(kCpu, nullptr, static_cast<const int8_t*>(ptr(0)), r, inner,
                                          static_cast<const int8_t*>(ptr(1)), k, static_cast<int32_t*>(ptr(2)));
        case Op::kMmDequant:
            return bnb_int8_mm_dequant(kCpu, nullptr, static_cast<const int32_t*>(ptr(0)), r, k,
                                       static_cast<const float*>(ptr(1)), static_cast<const float*>(ptr(2)),
                                       c.bias_dtype, ptr(3), c.dtype, ptr(4));
        case Op::kScaledMm:
            return bnb_int8_scaled_mm(kCpu, nullptr, c.dtype, static_cast<const int8_t*>(ptr(0)), r, inner,
                                      static_cast<const int8_t*>(ptr(1)), k, static_cast<const float*>(ptr(2)),
                                      static_cast<const float*>(ptr(3)), c.bias_dtype, ptr(4), ptr(5),
                                      static_cast<const int64_t*>(ptr(6)), static_cast<const int64_t*>(ptr(7)),
                                      ptr(8), c.workspace_bytes, ptr(9));
        case Op::kCount: break;
    }
    return BNB_STATUS_INTERNAL;
}

void run(FuzzedDataProvider& in) {
    Call c;
    c.op = static_cast<Op>(in.ConsumeIntegralInRange<int>(0, static_cast<int>(Op::kCount) - 1));
    c.dtype = pick_dtype(in);
    c.bias_dtype = pick_dtype(in);
    c.rows = pick_count(in, kMaxDimension);
    c.cols = pick_count(in, kMaxDimension);
    c.inner = pick_count(in, kMaxDimension);
    c.bias = in.ConsumeBool();
    c.outliers = in.ConsumeBool();
    c.workspace_bytes = in.ConsumeBool() ? pick_count(in, 4096).value : 0;
    if (c.workspace_bytes > 4096 && c.workspace_bytes <= kMaxCount) c.workspace_bytes %= 4096;
    c.variant = pick_vector_variant(in);
    Values values(in);
    c.threshold = pick_threshold(in, values);
    static const char* kNames[] = {"vectorwise_quant", "double_quant", "vectorwise_dequant",
                                   "linear_matmul",    "mm_dequant",   "scaled_mm"};
    const std::string call = std::string("bnb_int8_") + kNames[static_cast<int>(c.op)] + "(dtype " +
                             std::to_string(c.dtype) + ", rows " + std::to_string(c.rows.value) + ", cols " +
                             std::to_string(c.cols.value) + ", K " + std::to_string(c.inner.value) + ", threshold " +
                             show(c.threshold) + (c.bias ? ", bias" : "") + (c.outliers ? ", outliers" : "") + ")";
    std::string error = argument_error(c);
    const bool huge = c.rows.huge || c.cols.huge || (is_product(c.op) && c.inner.huge);
    const int64_t r = c.rows.value, k = c.cols.value, inner = c.inner.value;
    const bool empty = r == 0 || k == 0;

    const int64_t el = std::max<int64_t>(dtype_bytes(c.dtype), 1);
    const int64_t bias_el = std::max<int64_t>(dtype_bytes(c.bias_dtype), 1);
    const bool outlier_pass = (c.op == Op::kQuant || c.op == Op::kDoubleQuant) && c.threshold > 0.0f;
    Buffers b;
    int ix[10];
    std::fill(std::begin(ix), std::end(ix), -1);
    if (huge) {
        // No buffer has these sizes: every pointer NULL (so no bias), and the call must be refused.
        c.bias = false;
        error = argument_error(c);
        if (error.empty() && !empty) error = "the buffers are NULL for a huge count";
        check_status(call_op(c, b, ix), error, call);
        return;
    }
    // Buffers in the order call_op reads them.
    switch (c.op) {
        case Op::kQuant:
        case Op::kDoubleQuant: {
            const bool col = c.op == Op::kDoubleQuant;
            ix[0] = b.add("A", r * k * el, el, Access::kRead);
            ix[1] = b.add("out_row", r * k, 1, Access::kWrite);
            ix[2] = b.add("row_stats", r * 4, 4, Access::kWrite);
            if (col) ix[3] = b.add("out_col", r * k, 1, Access::kWrite);
            if (col) ix[4] = b.add("col_stats", k * 4, 4, Access::kWrite);
            if (outlier_pass || c.outliers) {
                ix[5] = b.add("outlier_cols", k * 8, 8, Access::kWrite, !outlier_pass);
                ix[6] = b.add("outlier_count", 8, 8, Access::kWrite, !outlier_pass);
                // Without a threshold the call does not use them: no fault applies.
                if (!outlier_pass) b[ix[5]].bytes = b[ix[6]].bytes = 0;
            }
            values.fill(b.data(ix[0]), r * k, c.dtype);
            break;
        }
        case Op::kDequant:
            ix[0] = b.add("A", r * k, 1, Access::kRead);
            ix[1] = b.add("stats", r * 4, 4, Access::kRead);
            ix[2] = b.add("out", r * k * el, el, Access::kWrite);
            values.fill_bytes(b.data(ix[0]), r * k);
            values.fill(b.data(ix[1]), r, BNB_DTYPE_FLOAT32);
            break;
        case Op::kMatmul:
            ix[0] = b.add("A", r * inner, 1, Access::kRead);
            ix[1] = b.add("B", k * inner, 1, Access::kRead);
            ix[2] = b.add("out", r * k * 4, 4, Access::kWrite);
            values.fill_bytes(b.data(ix[0]), r * inner);
            values.fill_bytes(b.data(ix[1]), k * inner);
            break;
        case Op::kMmDequant:
            ix[0] = b.add("A", r * k * 4, 4, Access::kRead);
            ix[1] = b.add("row_stats", r * 4, 4, Access::kRead);
            ix[2] = b.add("col_stats", k * 4, 4, Access::kRead);
            // A given bias is non-NULL even with no columns (a one-byte stand-in).
            ix[3] = b.add("bias", c.bias ? std::max<int64_t>(k * bias_el, 1) : 0, bias_el, Access::kRead, true);
            if (c.bias) b[ix[3]].bytes = k * bias_el;
            ix[4] = b.add("out", r * k * el, el, Access::kWrite);
            values.fill_bytes(b.data(ix[0]), r * k * 4);
            values.fill(b.data(ix[1]), r, BNB_DTYPE_FLOAT32);
            values.fill(b.data(ix[2]), k, BNB_DTYPE_FLOAT32);
            values.fill(b.data(ix[3]), c.bias ? k : 0, c.bias_dtype);
            break;
        case Op::kScaledMm: {
            ix[0] = b.add("A", r * inner, 1, Access::kRead);
            ix[1] = b.add("B", k * inner, 1, Access::kRead);
            ix[2] = b.add("row_stats", r * 4, 4, Access::kRead);
            ix[3] = b.add("col_stats", k * 4, 4, Access::kRead);
            // A given bias is non-NULL even with no columns (a one-byte stand-in).
            ix[4] = b.add("bias", c.bias ? std::max<int64_t>(k * bias_el, 1) : 0, bias_el, Access::kRead, true);
            if (c.bias) b[ix[4]].bytes = k * bias_el;
            ix[5] = b.add("X", c.outliers ? r * inner * el : 0, el, Access::kRead);
            ix[6] = b.add("outlier_cols", c.outliers ? std::max<int64_t>(inner, 1) * 8 : 0, 8, Access::kRead);
            ix[7] = b.add("outlier_count", c.outliers ? 8 : 0, 8, Access::kRead);
            ix[8] = b.add("workspace", std::clamp<int64_t>(c.workspace_bytes, 0, 4096), 256, Access::kWrite, true);
            ix[9] = b.add("out", r * k * el, el, Access::kWrite);
            // The outlier list's capacity is K entries; with K == 0 one stands in.
            if (c.outliers) b[ix[6]].bytes = inner * 8;
            values.fill_bytes(b.data(ix[0]), r * inner);
            values.fill_bytes(b.data(ix[1]), k * inner);
            values.fill(b.data(ix[2]), r, BNB_DTYPE_FLOAT32);
            values.fill(b.data(ix[3]), k, BNB_DTYPE_FLOAT32);
            values.fill(b.data(ix[4]), c.bias ? k : 0, c.bias_dtype);
            if (c.outliers) {
                values.fill(b.data(ix[5]), r * inner, c.dtype);
                // An ascending list of columns below K, as vectorwise_quant writes it,
                // and a count of them (sometimes any count at all: the library clamps it).
                auto* list = reinterpret_cast<int64_t*>(b.data(ix[6]));
                int64_t count = 0;
                for (int64_t col = 0; col < inner; ++col) {
                    if (values.next_byte() < 40) list[count++] = col;
                }
                if (values.next_byte() < 16) count = pick_count(in, 2 * kMaxDimension).value;
                std::memcpy(b.data(ix[7]), &count, 8);
            }
            break;
        }
        case Op::kCount: break;
    }
    const std::string fault = b.apply_fault(in);
    if (error.empty() && !empty) error = fault;
    // An argument rule, so also for an empty product: both of the outlier list or neither.
    if (error.empty() && c.op == Op::kScaledMm && c.outliers && (b.data(ix[6]) == nullptr) != (b.data(ix[7]) == nullptr)) {
        error = fault;
    }
    if (error.empty() && c.op == Op::kScaledMm && !empty && c.workspace_bytes > 0 && b.data(ix[8]) == nullptr) {
        error = "workspace_bytes > 0 with a NULL workspace";
    }

    const std::string described = call + " on " + c.variant;
    const auto results =
        call_then_rerun_on_scalar(b, c.variant, [&] { return call_op(c, b, ix); }, error, described, fault, !empty);
    if (!results) return;
    const auto& vector_result = *results;
    for (int i = 0; i < b.size(); ++i) {
        const auto& item = b[i];
        if (item.access != Access::kWrite || item.bytes <= 0 || item.name == "workspace") continue;
        const auto& got = vector_result[static_cast<size_t>(i)];
        int64_t bytes = item.bytes;
        if (item.name == "outlier_cols") {
            // Entries past the count are the call's scratch.
            int64_t count = 0;
            std::memcpy(&count, b.data(ix[6]), 8);
            bytes = std::clamp<int64_t>(count, 0, k) * 8;
        }
        const bool floats = item.name == "out" && c.op != Op::kMatmul;
        const bool stats = item.name == "row_stats" || item.name == "col_stats";
        if (floats || stats) {
            const bnb_dtype dtype = stats ? BNB_DTYPE_FLOAT32 : c.dtype;
            require_same_floats(got.data(), item.data, bytes / dtype_bytes(dtype), dtype, described + ": " + item.name);
        } else {
            require_same_bytes(got.data(), item.data, bytes, described + ": " + item.name);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    run(in);
    return 0;
}
