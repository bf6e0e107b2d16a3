#include "op_calls.h"

#include <cstring>

#include "ops.h"

namespace bnb_test {
namespace {

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

void fill_int32(void* data) {
    auto* values = static_cast<int32_t*>(data);
    for (int64_t i = 0; i < kCallCapacity; ++i) values[i] = static_cast<int32_t>((i * 7919) % 40001) - 20000;
}

// Three ascending column indices below the valid calls' K.
void fill_outlier_columns(void* indices, void* count) {
    auto* columns = static_cast<int64_t*>(indices);
    columns[0] = 1;
    columns[1] = 17;
    columns[2] = 64;
    *static_cast<int64_t*>(count) = 3;
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
    static constexpr bool kTakesFloatDtype = true;
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
    static constexpr bool kTakesFloatDtype = true;
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
    static constexpr bool kTakesFloatDtype = true;
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
    static constexpr bool kTakesFloatDtype = true;
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
    static constexpr bool kTakesFloatDtype = true;
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
    static constexpr bool kTakesFloatDtype = true;
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

// LLM.int8(): rows x cols = M x K of the product's shape, threshold 2.0 so that
// the valid calls report outliers (the inputs reach +-3.1).
constexpr float kValidThreshold = 2.0f;

OpCall int8_matrix_call() {
    OpCall call;
    call.counts = {{"rows", kValidM}, {"cols", kValidK}};
    call.threshold = kValidThreshold;
    return call;
}

bnb::Int8QuantizeArgs int8_quantize_args(const OpCall& c, bool column_wise) {
    return {.device = c.device, .stream = c.stream, .dtype = c.dtype, .A = pointer<const void>(c, "A"),
            .rows = c.counts.at("rows"), .cols = c.counts.at("cols"), .threshold = c.threshold,
            .out_row = pointer<int8_t>(c, "out_row"), .row_stats = pointer<float>(c, "row_stats"),
            .out_col = column_wise ? pointer<int8_t>(c, "out_col") : nullptr,
            .col_stats = column_wise ? pointer<float>(c, "col_stats") : nullptr,
            .outlier_cols = pointer<int64_t>(c, "outlier_cols"), .outlier_count = pointer<int64_t>(c, "outlier_count"),
            .column_wise = column_wise};
}

std::map<std::string, void*> int8_quantize_pointers(OpBuffers& b) {
    return {{"A", b.storage("floats_in")},
            {"out_row", b.storage("bytes_out")},
            {"row_stats", b.storage("absmax_out")},
            {"outlier_cols", b.storage("indices_out")},
            {"outlier_count", b.storage("count_out")}};
}

template <>
struct Case<bnb::Op::int8_vectorwise_quant> {
    static constexpr bool kTakesQuantType = false;
    static constexpr bool kTakesFloatDtype = true;
    static bnb::Int8QuantizeArgs args(const OpCall& c) { return int8_quantize_args(c, false); }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_int8_vectorwise_quant(a.device, a.stream, a.dtype, a.A, a.rows, a.cols, a.threshold, a.out_row,
                                         a.row_stats, a.outlier_cols, a.outlier_count);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call = int8_matrix_call();
        call.pointers = int8_quantize_pointers(b);
        return call;
    }
};

template <>
struct Case<bnb::Op::int8_double_quant> {
    static constexpr bool kTakesQuantType = false;
    static constexpr bool kTakesFloatDtype = true;
    static bnb::Int8QuantizeArgs args(const OpCall& c) { return int8_quantize_args(c, true); }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_int8_double_quant(a.device, a.stream, a.dtype, a.A, a.rows, a.cols, a.threshold, a.out_row,
                                     a.out_col, a.row_stats, a.col_stats, a.outlier_cols, a.outlier_count);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call = int8_matrix_call();
        call.pointers = int8_quantize_pointers(b);
        call.pointers["out_col"] = b.storage("bytes_out_2");
        call.pointers["col_stats"] = b.storage("stats_out_2");
        return call;
    }
};

template <>
struct Case<bnb::Op::int8_vectorwise_dequant> {
    static constexpr bool kTakesQuantType = false;
    static constexpr bool kTakesFloatDtype = true;
    static bnb::Int8DequantizeArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .dtype = c.dtype, .A = pointer<const int8_t>(c, "A"),
                .stats = pointer<const float>(c, "stats"), .rows = c.counts.at("rows"), .cols = c.counts.at("cols"),
                .out = pointer<void>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_int8_vectorwise_dequant(a.device, a.stream, a.dtype, a.A, a.stats, a.rows, a.cols, a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call = int8_matrix_call();
        call.pointers = {{"A", b.storage("bytes_in")}, {"stats", b.storage("absmax_in")}, {"out", b.storage("floats_out")}};
        return call;
    }
};

template <>
struct Case<bnb::Op::int8_linear_matmul> {
    static constexpr bool kTakesQuantType = false;
    static constexpr bool kTakesFloatDtype = false;
    static bnb::Int8MatmulArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .A = pointer<const int8_t>(c, "A"),
                .B = pointer<const int8_t>(c, "B"), .M = c.counts.at("M"), .N = c.counts.at("N"),
                .K = c.counts.at("K"), .out = pointer<int32_t>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_int8_linear_matmul(a.device, a.stream, a.A, a.M, a.K, a.B, a.N, a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call = gemm_shape_call();
        call.pointers = {{"A", b.storage("bytes_in")}, {"B", b.storage("codes_in")}, {"out", b.storage("floats_out")}};
        return call;
    }
};

template <>
struct Case<bnb::Op::int8_mm_dequant> {
    static constexpr bool kTakesQuantType = false;
    static constexpr bool kTakesFloatDtype = true;
    static bnb::Int8MmDequantArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .A = pointer<const int32_t>(c, "A"),
                .row_stats = pointer<const float>(c, "row_stats"), .col_stats = pointer<const float>(c, "col_stats"),
                .bias_dtype = c.dtype, .bias = pointer<const void>(c, "bias"), .rows = c.counts.at("rows"),
                .cols = c.counts.at("cols"), .dtype = c.dtype, .out = pointer<void>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_int8_mm_dequant(a.device, a.stream, a.A, a.rows, a.cols, a.row_stats, a.col_stats, a.bias_dtype,
                                   a.bias, a.dtype, a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call;
        call.counts = {{"rows", kValidM}, {"cols", kValidN}};
        call.pointers = {{"A", b.storage("ints_in")},         {"row_stats", b.storage("absmax_in")},
                         {"col_stats", b.storage("offset")},  {"bias", b.storage("bias")},
                         {"out", b.storage("floats_out")}};
        return call;
    }
};

// With bias, outlier columns and a workspace, so that every pointer is checked.
template <>
struct Case<bnb::Op::int8_scaled_mm> {
    static constexpr bool kTakesQuantType = false;
    static constexpr bool kTakesFloatDtype = true;
    static bnb::Int8ScaledMmArgs args(const OpCall& c) {
        return {.device = c.device, .stream = c.stream, .dtype = c.dtype, .A = pointer<const int8_t>(c, "A"),
                .B = pointer<const int8_t>(c, "B"), .row_stats = pointer<const float>(c, "row_stats"),
                .col_stats = pointer<const float>(c, "col_stats"), .bias_dtype = c.dtype,
                .bias = pointer<const void>(c, "bias"), .X = pointer<const void>(c, "X"),
                .outlier_cols = pointer<const int64_t>(c, "outlier_cols"),
                .outlier_count = pointer<const int64_t>(c, "outlier_count"), .M = c.counts.at("M"),
                .N = c.counts.at("N"), .K = c.counts.at("K"), .workspace = pointer<void>(c, "workspace"),
                .workspace_bytes = kValidWorkspaceBytes, .out = pointer<void>(c, "out")};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        return bnb_int8_scaled_mm(a.device, a.stream, a.dtype, a.A, a.M, a.K, a.B, a.N, a.row_stats, a.col_stats,
                                  a.bias_dtype, a.bias, a.X, a.outlier_cols, a.outlier_count, a.workspace,
                                  a.workspace_bytes, a.out);
    }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call = gemm_shape_call();
        call.pointers = {{"A", b.storage("bytes_in")},          {"B", b.storage("codes_in")},
                         {"row_stats", b.storage("absmax_in")}, {"col_stats", b.storage("offset")},
                         {"bias", b.storage("bias")},           {"X", b.storage("floats_in")},
                         {"outlier_cols", b.storage("indices_in")}, {"outlier_count", b.storage("count_in")},
                         {"workspace", b.storage("workspace")}, {"out", b.storage("floats_out")}};
        return call;
    }
};

// The optimizers' Args hold a list of tensors: the calls here update one, kept
// with the hyper-parameters in storage of the thread (rebuilt by each args()).
// Adam uses every buffer of a two-state optimizer.
template <bool kBlockwise>
struct OptimizerCase {
    static constexpr bool kTakesQuantType = false;
    static constexpr bool kTakesFloatDtype = true;
    static bnb::OptimizerUpdateArgs args(const OpCall& c) {
        thread_local bnb_optimizer_tensor tensor;
        thread_local bnb_optimizer_hparams hparams;
        tensor = {.n = c.counts.at("n"), .g = pointer<const void>(c, "g"), .p = pointer<void>(c, "p"),
                  .state1 = pointer<void>(c, "state1"), .state2 = pointer<void>(c, "state2"),
                  .absmax1 = kBlockwise ? pointer<float>(c, "absmax1") : nullptr,
                  .absmax2 = kBlockwise ? pointer<float>(c, "absmax2") : nullptr, .unorm_vec = nullptr,
                  .param_norm = 0.0f};
        hparams = {.beta1 = 0.9f, .beta2 = 0.999f, .beta3 = 0.0f, .alpha = 0.0f, .eps = 1e-8f,
                   .weight_decay = 0.01f, .lr = 1e-3f, .gnorm_scale = 1.0f, .max_unorm = 0.0f, .step = 1,
                   .skip_zeros = 0};
        return {.device = c.device, .stream = c.stream, .optimizer = BNB_OPTIMIZER_ADAM, .dtype = c.dtype,
                .tensors = &tensor, .count = 1,
                .qmap1 = kBlockwise ? pointer<const float>(c, "qmap1") : nullptr,
                .qmap2 = kBlockwise ? pointer<const float>(c, "qmap2") : nullptr, .hparams = &hparams,
                .blockwise = kBlockwise};
    }
    static bnb_status invoke(const OpCall& c) {
        const auto a = args(c);
        if constexpr (kBlockwise) {
            return bnb_optimizer_update_8bit_blockwise(a.device, a.stream, a.optimizer, a.dtype, a.tensors, a.count,
                                                       a.qmap1, a.qmap2, a.hparams);
        } else {
            return bnb_optimizer_update_32bit(a.device, a.stream, a.optimizer, a.dtype, a.tensors, a.count,
                                              a.hparams);
        }
    }
    static bnb::Buffers describe(const OpCall& c) { return bnb::buffers(args(c), 0); }
    static OpCall valid_call(OpBuffers& b) {
        OpCall call;
        call.counts = {{"n", kValidCount}};
        call.pointers = {{"g", b.storage("floats_in")}, {"p", b.storage("floats_out")}};
        if constexpr (kBlockwise) {
            call.pointers.insert({{"state1", b.storage("bytes_out")},   {"state2", b.storage("bytes_out_2")},
                                  {"absmax1", b.storage("absmax_out")}, {"absmax2", b.storage("stats_out_2")},
                                  {"qmap1", b.storage("code")},         {"qmap2", b.storage("unsigned_code")}});
        } else {
            call.pointers.insert({{"state1", b.storage("absmax_out")}, {"state2", b.storage("stats_out_2")}});
        }
        return call;
    }
};

template <>
struct Case<bnb::Op::optimizer_update_32bit> : OptimizerCase<false> {};

template <>
struct Case<bnb::Op::optimizer_update_8bit_blockwise> : OptimizerCase<true> {};

template <bnb::Op op>
OpSpec spec() {
    using C = Case<op>;
    bnb::Buffers (*describe)(const OpCall&) = nullptr;
    if constexpr (requires(const OpCall& call) { C::describe(call); }) {
        describe = C::describe;
    } else {
        describe = [](const OpCall& call) { return bnb::buffers(C::args(call)); };
    }
    return {bnb::op_name(op), C::kTakesQuantType, C::kTakesFloatDtype, C::valid_call, C::invoke, describe};
}

}  // namespace

OpBuffers::OpBuffers() {
    for (const char* role : {"floats_in", "code", "unsigned_code", "fourbit_code", "absmax_in", "bytes_in", "codes_in", "offset",
                             "bias", "workspace", "bytes_out", "absmax_out", "floats_out", "ints_in", "indices_in",
                             "count_in", "bytes_out_2", "stats_out_2", "indices_out", "count_out"}) {
        buffers_.emplace(role, AlignedBytes(kCallBufferBytes));
    }
    fill_finite_floats(storage("floats_in"));
    fill_finite_floats(storage("bias"));
    fill_codebook(storage("code"), BNB_CODEBOOK_DYNAMIC_SIGNED);
    fill_codebook(storage("unsigned_code"), BNB_CODEBOOK_DYNAMIC_UNSIGNED);
    fill_codebook(storage("fourbit_code"), BNB_CODEBOOK_NF4);
    fill_scales(storage("absmax_in"));
    fill_scales(storage("offset"));
    fill_bytes(storage("bytes_in"));
    fill_bytes(storage("codes_in"));
    fill_int32(storage("ints_in"));
    fill_outlier_columns(storage("indices_in"), storage("count_in"));
}

void OpBuffers::vary(int seed) {
    // Scaled by a power of two and shifted: finite, and different for every seed.
    auto* floats = static_cast<float*>(storage("floats_in"));
    for (int64_t i = 0; i < kCallCapacity; ++i) floats[i] = floats[i] * static_cast<float>(1 << (seed % 4)) + 0.25f * seed;
    auto* bytes = static_cast<uint8_t*>(storage("bytes_in"));
    for (int64_t i = 0; i < kCallCapacity; ++i) bytes[i] = static_cast<uint8_t>(bytes[i] + 7 * seed);
    auto* ints = static_cast<int32_t*>(storage("ints_in"));
    for (int64_t i = 0; i < kCallCapacity; ++i) ints[i] += 1000 * seed;
}

std::vector<bnb::Buffer> results_of(const OpSpec& spec, const OpCall& call) {
    std::vector<bnb::Buffer> results;
    for (const bnb::Buffer& buffer : spec.describe(call)) {
        if (buffer.access == bnb::Access::kWrite && buffer.bytes > 0 && std::string(buffer.name) != "workspace") {
            results.push_back(buffer);
        }
    }
    return results;
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
