#include "op_calls.h"

#include <cstring>

namespace bnb_test {
namespace {

constexpr size_t kBufferBytes = static_cast<size_t>(kCallCapacity) * 4;

void fill_finite_floats(void* data) {
    auto* values = static_cast<float*>(data);
    for (int64_t i = 0; i < kCallCapacity; ++i) values[i] = static_cast<float>((i * 37) % 101 - 50) / 16.0f;
}

void fill_dynamic_code(void* data) {
    ASSERT_TRUE(succeeded(bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, static_cast<float*>(data), 256)));
}

void fill_scales(void* data) {
    auto* values = static_cast<float*>(data);
    for (int64_t i = 0; i < kCallCapacity; ++i) values[i] = 1.0f + static_cast<float>(i % 5);
}

void fill_bytes(void* data) {
    auto* bytes = static_cast<uint8_t*>(data);
    for (int64_t i = 0; i < kCallCapacity; ++i) bytes[i] = static_cast<uint8_t>(i * 13);
}

OpCall quantize_blockwise_call(OpBuffers& buffers) {
    OpCall call;
    call.pointers = {{"A", buffers.storage("floats_in")},
                     {"code", buffers.storage("code")},
                     {"out", buffers.storage("bytes_out")},
                     {"absmax", buffers.storage("absmax_out")}};
    return call;
}

OpCall dequantize_blockwise_call(OpBuffers& buffers) {
    OpCall call;
    call.pointers = {{"A", buffers.storage("bytes_in")},
                     {"code", buffers.storage("code")},
                     {"absmax", buffers.storage("absmax_in")},
                     {"out", buffers.storage("floats_out")}};
    return call;
}

OpCall quantize_4bit_call(OpBuffers& buffers) {
    OpCall call;
    call.pointers = {{"A", buffers.storage("floats_in")},
                     {"packed", buffers.storage("bytes_out")},
                     {"absmax", buffers.storage("absmax_out")}};
    return call;
}

OpCall dequantize_4bit_call(OpBuffers& buffers) {
    OpCall call;
    call.pointers = {{"packed", buffers.storage("bytes_in")},
                     {"absmax", buffers.storage("absmax_in")},
                     {"out", buffers.storage("floats_out")}};
    return call;
}

bnb_status invoke_quantize_blockwise(const OpCall& c) {
    return bnb_quantize_blockwise(c.device, c.stream, c.dtype, c.pointers.at("A"),
                                  static_cast<const float*>(c.pointers.at("code")), c.n, c.blocksize,
                                  static_cast<uint8_t*>(c.pointers.at("out")), static_cast<float*>(c.pointers.at("absmax")));
}

bnb_status invoke_dequantize_blockwise(const OpCall& c) {
    return bnb_dequantize_blockwise(c.device, c.stream, c.dtype, static_cast<const uint8_t*>(c.pointers.at("A")),
                                    static_cast<const float*>(c.pointers.at("code")),
                                    static_cast<const float*>(c.pointers.at("absmax")), c.n, c.blocksize,
                                    c.pointers.at("out"));
}

bnb_status invoke_quantize_4bit(const OpCall& c) {
    return bnb_quantize_4bit(c.device, c.stream, c.quant_type, c.dtype, c.pointers.at("A"), c.n, c.blocksize,
                             static_cast<uint8_t*>(c.pointers.at("packed")), static_cast<float*>(c.pointers.at("absmax")));
}

bnb_status invoke_dequantize_4bit(const OpCall& c) {
    return bnb_dequantize_4bit(c.device, c.stream, c.quant_type, c.dtype,
                               static_cast<const uint8_t*>(c.pointers.at("packed")),
                               static_cast<const float*>(c.pointers.at("absmax")), c.n, c.blocksize,
                               c.pointers.at("out"));
}

}  // namespace

OpBuffers::OpBuffers() {
    for (const char* role : {"floats_in", "code", "absmax_in", "bytes_in", "bytes_out", "absmax_out", "floats_out"}) {
        buffers_.emplace(role, AlignedBytes(kBufferBytes));
    }
    fill_finite_floats(storage("floats_in"));
    fill_dynamic_code(storage("code"));
    fill_scales(storage("absmax_in"));
    fill_bytes(storage("bytes_in"));
}

const std::vector<OpSpec>& all_op_specs() {
    static const std::vector<OpSpec> specs = {
        {"quantize_blockwise",
         {{"A", Alignment::ElementOfDtype, false},
          {"code", Alignment::Float32, false},
          {"out", Alignment::Byte, true},
          {"absmax", Alignment::Float32, true}},
         {64, 128, 256, 512, 1024, 2048, 4096},
         false,
         quantize_blockwise_call,
         invoke_quantize_blockwise},
        {"dequantize_blockwise",
         {{"A", Alignment::Byte, false},
          {"code", Alignment::Float32, false},
          {"absmax", Alignment::Float32, false},
          {"out", Alignment::ElementOfDtype, true}},
         {16, 32, 64, 128, 256, 512, 1024, 2048, 4096},
         false,
         dequantize_blockwise_call,
         invoke_dequantize_blockwise},
        {"quantize_4bit",
         {{"A", Alignment::ElementOfDtype, false},
          {"packed", Alignment::Byte, true},
          {"absmax", Alignment::Float32, true}},
         {32, 64, 128, 256, 512, 1024, 2048, 4096},
         true,
         quantize_4bit_call,
         invoke_quantize_4bit},
        {"dequantize_4bit",
         {{"packed", Alignment::Byte, false},
          {"absmax", Alignment::Float32, false},
          {"out", Alignment::ElementOfDtype, true}},
         {32, 64, 128, 256, 512, 1024, 2048, 4096},
         true,
         dequantize_4bit_call,
         invoke_dequantize_4bit},
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
