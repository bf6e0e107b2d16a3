#include "op_calls.h"

#include <cstring>

#include "ops.h"

namespace bnb_test {
namespace {

constexpr size_t kBufferBytes = static_cast<size_t>(kCallCapacity) * 4;
// Counts of the valid calls: not a multiple of any blocksize, so that tails run.
constexpr int64_t kValidCount = 1000;
// A [3, 80] x [16, 80]^T product: blocks of 64 span weight rows.
constexpr int64_t kValidM = 3, kValidN = 16, kValidK = 80;
constexpr int64_t kValidWorkspaceBytes = 4096;

void fill_finite_floats(void* data) {
    auto* values = static_cast<float*>(data);
    for (int64_t i = 0; i < kCallCapacity; ++i) values[i] = static_cast<float>((i * 37) % 101 - 50) / 16.0f;
}

void fill_codebook(void* data, bnb_codebook which) {
    ASSERT_TRUE(succeeded(bnb_codebook_copy(which, static_cast<float*>(data), bnb_codebook_size(which))));
}

void fill_scales(void* data) {
    auto* values = static_cast<float*>(data);
    for (int64_t i = 0; i < kCallCapacity; ++i) values[i] = 1.0f + static_cast<float>(i % 5);
}

void fill_bytes(void* data) {
    auto* bytes = static_cast<uint8_t*>(data);
    for (int64_t i = 0; i < kCallCapacity; ++i) bytes[i] = static_cast<uint8_t>(i * 13);
}

template <typename T>
T* pointer(const OpCall& call, const char* name) {
    return static_cast<T*>(call.pointers.at(name));
}

// Each op: its Args from a call (for the family header's description), the C
// function called positionally, and a valid call.
template <bnb::Op op>
struct Case;

template <>
struct Case<bnb::Op::quantize_blockwise> {
    static constexpr bool kTakesQuantType = false;
    static bnb::QuantizeBlockwiseArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .dtype = c.dtype, .A = pointer<const void>(c, "A"),
                .code = pointer<const float>(c, "code"), .n = c.counts.at("n"), .blocksize = c.blocksize,
                .out = pointer<uint8_t>(c, "out"), .absmax = pointer<float>(c, "absmax")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_quantize_blockwise(a.device, a.stream, a.dtype, a.A, a.code, a.n, a.blocksize, a.out, a.absmax);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call;
        call.counts = {{"n", kValidCount}};
        call.pointers = {{"A", b.storage("floats_in")},
                         {"code", b.storage("code")},
                         {"out", b.storage("bytes_out")},
                         {"absmax", b.storage("absmax_out")}};
        return call;
    }
};

template <>
struct Case<bnb::Op::dequantize_blockwise> {
    static constexpr bool kTakesQuantType = false;
    static bnb::DequantizeBlockwiseArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .dtype = c.dtype, .A = pointer<const uint8_t>(c, "A"),
                .code = pointer<const float>(c, "code"), .absmax = pointer<const float>(c, "absmax"),
                .n = c.counts.at("n"), .blocksize = c.blocksize, .out = pointer<void>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_dequantize_blockwise(a.device, a.stream, a.dtype, a.A, a.code, a.absmax, a.n, a.blocksize, a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call;
        call.counts = {{"n", kValidCount}};
        call.pointers = {{"A", b.storage("bytes_in")},
                         {"code", b.storage("code")},
                         {"absmax", b.storage("absmax_in")},
                         {"out", b.storage("floats_out")}};
        return call;
    }
};

template <>
struct Case<bnb::Op::quantize_4bit> {
    static constexpr bool kTakesQuantType = true;
    static bnb::Quantize4bitArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .quant_type = c.quant_type, .dtype = c.dtype,
                .A = pointer<const void>(c, "A"), .n = c.counts.at("n"), .blocksize = c.blocksize,
                .packed = pointer<uint8_t>(c, "packed"), .absmax = pointer<float>(c, "absmax")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_quantize_4bit(a.device, a.stream, a.quant_type, a.dtype, a.A, a.n, a.blocksize, a.packed,
                                 a.absmax);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call;
        call.counts = {{"n", kValidCount}};
        call.pointers = {{"A", b.storage("floats_in")},
                         {"packed", b.storage("bytes_out")},
                         {"absmax", b.storage("absmax_out")}};
        return call;
    }
};

template <>
struct Case<bnb::Op::dequantize_4bit> {
    static constexpr bool kTakesQuantType = true;
    static bnb::Dequantize4bitArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .quant_type = c.quant_type, .dtype = c.dtype,
                .packed = pointer<const uint8_t>(c, "packed"), .absmax = pointer<const float>(c, "absmax"),
                .n = c.counts.at("n"), .blocksize = c.blocksize, .out = pointer<void>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_dequantize_4bit(a.device, a.stream, a.quant_type, a.dtype, a.packed, a.absmax, a.n, a.blocksize,
                                   a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call;
        call.counts = {{"n", kValidCount}};
        call.pointers = {{"packed", b.storage("bytes_in")},
                         {"absmax", b.storage("absmax_in")},
                         {"out", b.storage("floats_out")}};
        return call;
    }
};

OpCall gemm_shape_call() {
    OpCall call;
    call.counts = {{"M", kValidM}, {"N", kValidN}, {"K", kValidK}};
    return call;
}

// With nested statistics, a bias and a workspace, so that every pointer is checked.
template <>
struct Case<bnb::Op::gemm_4bit> {
    static constexpr bool kTakesQuantType = true;
    static bnb::Gemm4bitArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .dtype = c.dtype, .quant_type = c.quant_type,
                .code = nullptr, .A = pointer<const void>(c, "A"), .B = pointer<const uint8_t>(c, "B"),
                .absmax = pointer<const float>(c, "absmax"),
                .absmax_8bit = pointer<const uint8_t>(c, "absmax_8bit"),
                .absmax_code = pointer<const float>(c, "absmax_code"),
                .absmax_offset = pointer<const float>(c, "absmax_offset"), .bias = pointer<const void>(c, "bias"),
                .M = c.counts.at("M"), .N = c.counts.at("N"), .K = c.counts.at("K"), .blocksize = c.blocksize,
                .algo = BNB_GEMM_4BIT_AUTO, .workspace = pointer<void>(c, "workspace"),
                .workspace_bytes = kValidWorkspaceBytes, .out = pointer<void>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_gemm_4bit(a.device, a.stream, a.dtype, a.quant_type, a.A, a.M, a.K, a.B, a.N, a.blocksize,
                             a.absmax, a.absmax_8bit, a.absmax_code, a.absmax_offset, a.bias, a.algo, a.workspace,
                             a.workspace_bytes, a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call = gemm_shape_call();
        call.pointers = {{"A", b.storage("floats_in")},       {"B", b.storage("bytes_in")},
                         {"absmax", b.storage("absmax_in")},  {"absmax_8bit", b.storage("codes_in")},
                         {"absmax_code", b.storage("code")},  {"absmax_offset", b.storage("offset")},
                         {"bias", b.storage("bias")},         {"workspace", b.storage("workspace")},
                         {"out", b.storage("floats_out")}};
        return call;
    }
};

template <>
struct Case<bnb::Op::gemv_4bit> {
    static constexpr bool kTakesQuantType = false;
    static bnb::Gemm4bitArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .dtype = c.dtype, .quant_type = BNB_QUANT_NF4,
                .code = pointer<const float>(c, "code"), .A = pointer<const void>(c, "A"),
                .B = pointer<const uint8_t>(c, "B"), .absmax = pointer<const float>(c, "absmax"),
                .absmax_8bit = nullptr, .absmax_code = nullptr, .absmax_offset = nullptr, .bias = nullptr,
                .M = c.counts.at("M"), .N = c.counts.at("N"), .K = c.counts.at("K"), .blocksize = c.blocksize,
                .algo = BNB_GEMM_4BIT_AUTO, .workspace = nullptr, .workspace_bytes = 0,
                .out = pointer<void>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_gemv_4bit(a.device, a.stream, a.dtype, a.A, a.M, a.K, a.B, a.N, a.code, a.absmax, a.blocksize,
                             a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call = gemm_shape_call();
        call.pointers = {{"A", b.storage("floats_in")},
                         {"B", b.storage("bytes_in")},
                         {"code", b.storage("fourbit_code")},
                         {"absmax", b.storage("absmax_in")},
                         {"out", b.storage("floats_out")}};
        return call;
    }
};

template <bnb::Op op>
OpSpec spec() {
    using C = Case<op>;
    return {bnb::op_name(op), C::kTakesQuantType, C::valid_call, C::invoke,
            [](const OpCall& call) { return bnb::buffers(C::args(call)); }};
}

}  // namespace

OpBuffers::OpBuffers() {
    for (const char* role : {"floats_in", "code", "fourbit_code", "absmax_in", "bytes_in", "codes_in", "offset",
                             "bias", "workspace", "bytes_out", "absmax_out", "floats_out"}) {
        buffers_.emplace(role, AlignedBytes(kBufferBytes));
    }
    fill_finite_floats(storage("floats_in"));
    fill_finite_floats(storage("bias"));
    fill_codebook(storage("code"), BNB_CODEBOOK_DYNAMIC_SIGNED);
    fill_codebook(storage("fourbit_code"), BNB_CODEBOOK_NF4);
    fill_scales(storage("absmax_in"));
    fill_scales(storage("offset"));
    fill_bytes(storage("bytes_in"));
    fill_bytes(storage("codes_in"));
}

std::vector<int64_t> OpSpec::blocksizes() const {
    int64_t count = 0;
    EXPECT_TRUE(succeeded(bnb_op_blocksizes(name.c_str(), nullptr, 0, &count))) << name;
    std::vector<int64_t> values(static_cast<size_t>(count));
    EXPECT_TRUE(succeeded(bnb_op_blocksizes(name.c_str(), values.data(), count, &count))) << name;
    return values;
}

const std::vector<OpSpec>& all_op_specs() {
    static const std::vector<OpSpec> specs = {
#define BNB_OP(family, name, Args) spec<bnb::Op::name>(),
#include "ops.def"
#undef BNB_OP
    };
    return specs;
}

std::vector<OpSpec> four_bit_op_specs() {
    std::vector<OpSpec> specs;
    for (const OpSpec& spec : all_op_specs()) {
        if (spec.takes_quant_type) specs.push_back(spec);
    }
    return specs;
}

}  // namespace bnb_test
