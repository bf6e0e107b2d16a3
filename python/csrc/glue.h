// Helpers shared by the op glue: tensor checks, dtype/device/stream conversion,
// and the one mapping from a C ABI status to a Python exception.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <string>
#include <type_traits>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb::glue {

// Error messages are assembled here, not by TORCH_CHECK's stream formatting: with a
// partly static libstdc++ (seen on the H100 machine's toolchain) the extension's own
// instantiation of the integer stream inserter crashed the process inside the error
// path, so numbers are formatted with std::to_string and TORCH_CHECK receives one string.
inline void append_text(std::string& out, const char* text) { out += text; }
inline void append_text(std::string& out, const std::string& text) { out += text; }
inline void append_text(std::string& out, c10::string_view text) { out.append(text.data(), text.size()); }
inline void append_text(std::string& out, char text) { out += text; }
inline void append_text(std::string& out, bool value) { out += value ? "true" : "false"; }
template <typename Number, std::enable_if_t<std::is_arithmetic_v<Number>, int> = 0>
void append_text(std::string& out, Number value) {
    out += std::to_string(value);
}
inline void append_text(std::string& out, c10::ScalarType dtype) { out += c10::toString(dtype); }
void append_text(std::string& out, const c10::Device& device);
void append_text(std::string& out, c10::IntArrayRef shape);

template <typename... Parts>
std::string text(const Parts&... parts) {
    std::string out;
    (append_text(out, parts), ...);
    return out;
}

// Raises ValueError (invalid argument), NotImplementedError (unsupported) or
// RuntimeError (anything else) with the library's message, prefixed by `op`.
void check_status(bnb_status status, const char* op);

bnb_dtype to_bnb_dtype(c10::ScalarType dtype);
// RuntimeError "invalid blocksize B: must be one of ..." unless `op` (a name of
// bnb_op_name) accepts `blocksize`; the list is the library's (bnb_op_blocksizes).
void check_op_blocksize(const char* op, int64_t blocksize);
// "nf4" or "fp4"; ValueError naming quant_type otherwise.
bnb_quant_type parse_quant_type(c10::string_view quant_type);
bool is_float_dtype(c10::ScalarType dtype);

bnb_device to_bnb_device(const c10::Device& device);

// The current stream of `device` in torch, as the C ABI's void* (null on the CPU).
void* current_stream(const c10::Device& device);

// Every tensor argument must live on `device` (the first input's).
void check_same_device(const at::Tensor& tensor, const c10::Device& device, const char* name);

// Scratch memory for a C ABI call: `bytes` of BNB_WORKSPACE_ALIGNMENT-aligned memory on the
// device of `options`, from torch's allocator (so it follows the current stream and CUDA-graph
// capture). torch's CPU allocator aligns to less, so the buffer has room to round the start up.
struct Workspace {
    at::Tensor buffer;      // keeps the memory alive
    void* start = nullptr;  // aligned; null when bytes == 0
    int64_t bytes = 0;
};
Workspace allocate_workspace(int64_t bytes, const at::TensorOptions& options);

// The backend that serves torch's CUDA device type (HIP on ROCm builds), for bnb_backend_supports.
bnb_device_type cuda_backend_type();

// Shape of the logical elements of a packed 4-bit tensor.
int64_t checked_numel(c10::IntArrayRef shape, const char* name);

}  // namespace bnb::glue

// TORCH_CHECK_VALUE / _TYPE / _NOT_IMPLEMENTED / TORCH_CHECK with the message built by text().
#define BNB_CHECK_VALUE(cond, ...) \
    do { if (C10_UNLIKELY(!(cond))) TORCH_CHECK_VALUE(false, ::bnb::glue::text(__VA_ARGS__)); } while (0)
#define BNB_CHECK_TYPE(cond, ...) \
    do { if (C10_UNLIKELY(!(cond))) TORCH_CHECK_TYPE(false, ::bnb::glue::text(__VA_ARGS__)); } while (0)
#define BNB_CHECK_NOT_IMPLEMENTED(cond, ...) \
    do { if (C10_UNLIKELY(!(cond))) TORCH_CHECK_NOT_IMPLEMENTED(false, ::bnb::glue::text(__VA_ARGS__)); } while (0)
#define BNB_CHECK_RUNTIME(cond, ...) \
    do { if (C10_UNLIKELY(!(cond))) TORCH_CHECK(false, ::bnb::glue::text(__VA_ARGS__)); } while (0)
