// bnb_gemm_4bit / bnb_gemv_4bit with every argument drawn from the input
// (shape, dtype, quant type or codebook, blocksize, plain or nested statistics,
// bias, algo, workspace of any size): on valid arguments the scalar path and
// the input's vector path each give the float64 product of the dequantized
// weight within float32 accumulation error; on invalid ones the call fails
// with a message.
#include "fuzz_support.h"

using namespace bnb_fuzz;

namespace {

constexpr int64_t kMaxDimension = 70;
constexpr int64_t kBlocksizes[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 8;

struct Call {
    bool gemv;
    bnb_dtype dtype;
    bnb_quant_type quant_type;
    Count M, N, K;
    int64_t blocksize;
    bool nested;
    bool bias;
    bnb_gemm_4bit_algo algo;
    int64_t workspace_bytes;  // 0: no workspace
    std::string variant;
};

bool count_ok(int64_t v) { return v >= 0 && v <= kMaxCount; }
bool product_ok(int64_t a, int64_t b) { return a == 0 || b <= kMaxCount / a; }

std::string argument_error(const Call& c) {
    if (!is_float_dtype(c.dtype)) return "dtype is not a float dtype";
    if (!c.gemv && c.quant_type != BNB_QUANT_NF4 && c.quant_type != BNB_QUANT_FP4) return "quant_type is out of range";
    const int64_t M = c.M.value, N = c.N.value, K = c.K.value;
    if (!count_ok(M) || !count_ok(N) || !count_ok(K)) return "a count is out of range";
    if (!product_ok(M, K) || !product_ok(N, K) || !product_ok(M, N)) return "a product of counts is too large";
    if (std::find(std::begin(kBlocksizes), std::end(kBlocksizes), c.blocksize) == std::end(kBlocksizes)) {
        return "blocksize is not one of 32 .. 4096";
    }
    if (static_cast<int>(c.algo) < 0 || static_cast<int>(c.algo) > BNB_GEMM_4BIT_DEQUANTIZE) return "algo is out of range";
    if (c.workspace_bytes < 0 || c.workspace_bytes > kMaxCount) return "workspace_bytes is out of range";
    return "";
}

// What the CPU backend, in its active variant, refuses of otherwise valid
// arguments (the matmul is not empty). The workspace a call needs depends on
// the variant (bf16 tiles take half the bytes).
std::string backend_error(const Call& c) {
    if (c.algo == BNB_GEMM_4BIT_SIMT || c.algo == BNB_GEMM_4BIT_TENSOR_CORE) return "the CPU has no such kernel";
    if (c.algo == BNB_GEMM_4BIT_DEQUANTIZE) {
        int64_t needed = 0;
        require(bnb_gemm_4bit_workspace_size(kCpu, c.dtype, c.M.value, c.N.value, c.K.value, c.blocksize, c.nested,
                                             c.algo, &needed) == BNB_STATUS_SUCCESS,
                "bnb_gemm_4bit_workspace_size refused valid arguments: " + std::string(bnb_last_error()));
        if (c.workspace_bytes < needed) return "DEQUANTIZE without its workspace";
    }
    return "";
}

// Round to nearest even, as the conversion of a finite float to bf16.
float round_to_bf16(float value) {
    const uint32_t bits = bits_of(value);
    return float_from_bits((bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u);
}

float flush(float value) { return std::fabs(value) < 0x1p-126f ? 0.0f * value : value; }

double unit_roundoff(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? 0x1p-24 : dtype == BNB_DTYPE_FLOAT16 ? 0x1p-11 : 0x1p-8;
}

// Every element of `out` within float32 accumulation error of the float64
// product of A and the dequantized weight (plus one rounding to the dtype, and
// bf16 weights where the vector path multiplies them); elements whose sum
// overflows the dtype or involves a non-finite value are left out.
void check_product(const Call& c, const void* A, const std::vector<float>& W, const void* bias, const void* out,
                   const std::string& what) {
    const int64_t M = c.M.value, N = c.N.value, K = c.K.value;
    const double largest = c.dtype == BNB_DTYPE_FLOAT16 ? 32768.0 : 1e37;
    const double accumulation = (static_cast<double>(K) + 64.0) * 0x1p-24;
    const double weight_rounding = c.dtype == BNB_DTYPE_BFLOAT16 ? 0x1p-8 : 0.0;
    const double absolute = c.dtype == BNB_DTYPE_FLOAT16 ? 0x1p-24 : (static_cast<double>(K) + 64.0) * 0x1p-125;
    // AVX512-BF16's dot product (the bf16 tiles) reads subnormal inputs as zero.
    const bool bf16_dot = c.dtype == BNB_DTYPE_BFLOAT16;
    for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
            double sum = bias != nullptr ? load_float(bias, n, c.dtype) : 0.0;
            double magnitude = std::fabs(sum);
            double activations = 0.0;
            double subnormal_products = 0.0;
            for (int64_t k = 0; k < K; ++k) {
                const double a = load_float(A, m * K + k, c.dtype);
                const double product = a * W[static_cast<size_t>(n * K + k)];
                sum += product;
                magnitude += std::fabs(product);
                activations += std::fabs(a);
                if (std::fabs(a) < 0x1p-126) subnormal_products += std::fabs(product);
                // A weight that overflows bf16 is infinite in the bf16 tiles (as in dequantize's output).
                if (bf16_dot && std::isinf(round_to_bf16(W[static_cast<size_t>(n * K + k)]))) magnitude = INFINITY;
            }
            if (!std::isfinite(magnitude) || !std::isfinite(activations) || magnitude > largest) continue;
            const double got = load_float(out, m * N + n, c.dtype);
            const double tolerance = (accumulation + weight_rounding) * magnitude * (1.0 + unit_roundoff(c.dtype)) +
                                     unit_roundoff(c.dtype) * std::fabs(sum) + activations * 0x1p-125 + absolute +
                                     (bf16_dot ? subnormal_products : 0.0);
            if (!(std::fabs(got - sum) <= tolerance)) {
                finding(what + ": out[" + std::to_string(m) + ", " + std::to_string(n) + "] = " + show(got) + ", expected " +
                        show(sum) + " (tolerance " + show(tolerance) + ")");
            }
        }
    }
}

void run(FuzzedDataProvider& in) {
    Call c;
    c.gemv = in.ConsumeBool();
    c.dtype = pick_dtype(in);
    c.quant_type = pick_enum<bnb_quant_type>(in, 2);
    c.M = pick_count(in, kMaxDimension);
    c.N = pick_count(in, kMaxDimension);
    c.K = pick_count(in, kMaxDimension);
    c.blocksize = pick_blocksize(in, {32, 64, 128, 256, 512, 1024, 2048, 4096});
    c.nested = !c.gemv && in.ConsumeBool();
    c.bias = !c.gemv && in.ConsumeBool();
    c.algo = c.gemv ? BNB_GEMM_4BIT_AUTO : pick_enum<bnb_gemm_4bit_algo>(in, 5);
    c.variant = pick_vector_variant(in);
    const uint8_t workspace_kind = c.gemv ? 0 : in.ConsumeIntegralInRange<uint8_t>(0, 4);
    // A size the library must refuse, or one small enough to allocate.
    int64_t workspace_draw = pick_count(in, 1 << 17).value;
    if (workspace_draw >= 0 && workspace_draw <= kMaxCount) workspace_draw %= int64_t{1} << 17;
    Values values(in);

    c.workspace_bytes = 0;
    int64_t needed = 0;
    select_variant(c.variant);
    if (argument_error(c).empty() && !c.gemv) {
        bnb_gemm_4bit_workspace_size(kCpu, c.dtype, c.M.value, c.N.value, c.K.value, c.blocksize, c.nested, c.algo,
                                     &needed);
    }
    switch (workspace_kind) {
        case 1: c.workspace_bytes = needed; break;
        case 2: c.workspace_bytes = std::max<int64_t>(needed - 1, 0); break;
        case 3: c.workspace_bytes = workspace_draw; break;
        case 4: c.workspace_bytes = needed + workspace_draw % 4096; break;
        default: break;
    }
    const std::string call =
        std::string(c.gemv ? "bnb_gemv_4bit" : "bnb_gemm_4bit") + "(dtype " + std::to_string(c.dtype) +
        ", quant_type " + std::to_string(c.quant_type) + ", M " + std::to_string(c.M.value) + ", N " +
        std::to_string(c.N.value) + ", K " + std::to_string(c.K.value) + ", blocksize " + std::to_string(c.blocksize) +
        (c.nested ? ", nested" : "") + (c.bias ? ", bias" : "") + ", algo " + std::to_string(c.algo) +
        ", workspace " + std::to_string(c.workspace_bytes) + ")";
    const std::string described = call + " on " + c.variant;
    std::string error = argument_error(c);
    const bool empty = c.M.value == 0 || c.N.value == 0;

    if (c.M.huge || c.N.huge || c.K.huge) {
        alignas(256) static uint8_t dummy[256];
        const float* f = reinterpret_cast<const float*>(dummy);
        const bnb_status status =
            c.gemv ? bnb_gemv_4bit(kCpu, nullptr, c.dtype, dummy, c.M.value, c.K.value, dummy, c.N.value, f, f,
                                   c.blocksize, nullptr)
                   : bnb_gemm_4bit(kCpu, nullptr, c.dtype, c.quant_type, dummy, c.M.value, c.K.value, dummy,
                                   c.N.value, c.blocksize, f, c.nested ? dummy : nullptr, f, f,
                                   c.bias ? dummy : nullptr, c.algo, nullptr, c.workspace_bytes, nullptr);
        if (error.empty() && !empty) error = "out is NULL for a huge count";
        check_status(status, error, call);
        return;
    }

    const int64_t M = c.M.value, N = c.N.value, K = c.K.value;
    const int64_t element = std::max<int64_t>(dtype_bytes(c.dtype), 1);
    if (error.empty() && !empty) error = backend_error(c);

    const int64_t weights = N * K;
    const int64_t blocks = c.blocksize > 0 ? weights / c.blocksize + (weights % c.blocksize != 0) : 0;
    const int64_t absmax_entries = c.nested ? blocks / 256 + (blocks % 256 != 0) : blocks;
    Buffers buffers;
    const int a = buffers.add("A", M * K * element, element, Access::kRead);
    const int b = buffers.add("B", (weights + 1) / 2, 1, Access::kRead);
    const int code = buffers.add("code", c.gemv ? 64 : 0, 4, Access::kRead);
    const int absmax = buffers.add("absmax", absmax_entries * 4, 4, Access::kRead);
    // A nested call passes absmax_8bit even for an empty weight (K == 0): one
    // byte, which the library must not read.
    const int absmax_8bit = buffers.add("absmax_8bit", c.nested ? std::max<int64_t>(blocks, 1) : 0, 1, Access::kRead,
                                         true);
    if (c.nested) buffers[absmax_8bit].bytes = blocks;  // what the call may touch: the one byte is a stand-in
    const int absmax_code = buffers.add("absmax_code", c.nested ? 1024 : 0, 4, Access::kRead);
    const int absmax_offset = buffers.add("absmax_offset", c.nested ? 4 : 0, 4, Access::kRead);
    const int bias = buffers.add("bias", c.bias ? N * element : 0, element, Access::kRead, true);
    const int workspace = buffers.add("workspace", c.workspace_bytes <= kMaxCount ? c.workspace_bytes : 0, 256,
                                       Access::kWrite, true);
    const int out = buffers.add("out", M * N * element, element, Access::kWrite);
    values.fill(buffers.data(a), M * K, c.dtype);
    values.fill_bytes(buffers.data(b), (weights + 1) / 2);
    float codebook[16];
    if (c.gemv) {
        // NF4's or FP4's table as upstream passes it, or any 16 floats.
        if (in.ConsumeBool()) {
            for (float& entry : codebook) entry = values.next();
        } else {
            bnb_codebook_copy(c.quant_type == BNB_QUANT_FP4 ? BNB_CODEBOOK_FP4 : BNB_CODEBOOK_NF4, codebook, 16);
        }
        std::memcpy(buffers.data(code), codebook, sizeof codebook);
    } else if (c.quant_type == BNB_QUANT_NF4 || c.quant_type == BNB_QUANT_FP4) {
        bnb_codebook_copy(c.quant_type == BNB_QUANT_FP4 ? BNB_CODEBOOK_FP4 : BNB_CODEBOOK_NF4, codebook, 16);
    }
    values.fill(buffers.data(absmax), absmax_entries, BNB_DTYPE_FLOAT32);
    values.fill_bytes(buffers.data(absmax_8bit), c.nested ? blocks : 0);
    if (c.nested) {
        bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, reinterpret_cast<float*>(buffers.data(absmax_code)), 256);
        values.fill(buffers.data(absmax_offset), 1, BNB_DTYPE_FLOAT32);
    }
    values.fill(buffers.data(bias), c.bias ? N : 0, c.dtype);
    const std::string fault = buffers.apply_fault(in);
    if (error.empty() && !empty && !fault.empty()) {
        // gemv's codebook and gemm's nested statistics are part of the arguments.
        error = fault;
    }
    // An argument rule, so also for an empty product.
    if (error.empty() && c.nested && (buffers.data(absmax_code) == nullptr || buffers.data(absmax_offset) == nullptr)) {
        error = "nested without absmax_code or absmax_offset";
    }

    auto call_once = [&] {
        if (c.gemv) {
            return bnb_gemv_4bit(kCpu, nullptr, c.dtype, buffers.data(a), M, K, buffers.data(b), N,
                                 reinterpret_cast<const float*>(buffers.data(code)),
                                 reinterpret_cast<const float*>(buffers.data(absmax)), c.blocksize, buffers.data(out));
        }
        return bnb_gemm_4bit(kCpu, nullptr, c.dtype, c.quant_type, buffers.data(a), M, K, buffers.data(b), N,
                             c.blocksize, reinterpret_cast<const float*>(buffers.data(absmax)),
                             c.nested ? buffers.data(absmax_8bit) : nullptr,
                             reinterpret_cast<const float*>(buffers.data(absmax_code)),
                             reinterpret_cast<const float*>(buffers.data(absmax_offset)), buffers.data(bias), c.algo,
                             buffers.data(workspace), c.workspace_bytes, buffers.data(out));
    };
    const bnb_status status = call_once();
    check_status(status, error, described + (fault.empty() ? "" : " with " + fault));
    if (status != BNB_STATUS_SUCCESS || empty) return;

    // The weight as bnb_dequantize_4bit's float32 output holds it.
    std::vector<float> W(static_cast<size_t>(weights));
    const auto* packed = buffers.data(b);
    const auto* scales = reinterpret_cast<const float*>(buffers.data(absmax));
    float offset = 0.0f;
    if (c.nested) std::memcpy(&offset, buffers.data(absmax_offset), 4);
    const auto* nested_code = reinterpret_cast<const float*>(buffers.data(absmax_code));
    for (int64_t i = 0; i < weights; ++i) {
        const int64_t block = i / c.blocksize;
        float scale = flush(scales[c.nested ? block / 256 : block]);
        if (c.nested) scale = flush(flush(flush(nested_code[buffers.data(absmax_8bit)[block]]) * scale) + offset);
        const uint8_t byte = packed[i / 2];
        const uint8_t nibble = (i & 1) ? (byte & 0x0f) : (byte >> 4);
        W[static_cast<size_t>(i)] = flush(flush(codebook[nibble]) * scale);
    }
    check_product(c, buffers.data(a), W, buffers.data(bias), buffers.data(out), described);
    if (c.variant == "scalar") return;
    select_variant("scalar");
    const std::string scalar_error = backend_error(c);  // before the call: the query clears the error
    const bnb_status scalar_status = call_once();
    check_status(scalar_status, scalar_error, call + " on scalar");
    if (scalar_status != BNB_STATUS_SUCCESS) return;
    check_product(c, buffers.data(a), W, buffers.data(bias), buffers.data(out), call + " on scalar");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    run(in);
    return 0;
}
