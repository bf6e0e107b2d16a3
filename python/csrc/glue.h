// Helpers shared by the op glue: tensor checks, dtype/device/stream conversion,
// and the one mapping from a C ABI status to a Python exception.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <string>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb::glue {

// Raises ValueError (invalid argument), NotImplementedError (unsupported) or
// RuntimeError (anything else) with the library's message, prefixed by `op`.
void check_status(bnb_status status, const char* op);

bnb_dtype to_bnb_dtype(c10::ScalarType dtype);
bool is_float_dtype(c10::ScalarType dtype);

bnb_device to_bnb_device(const c10::Device& device);

// The current stream of `device` in torch, as the C ABI's void* (null on the CPU).
void* current_stream(const c10::Device& device);

// Every tensor argument must live on `device` (the first input's).
void check_same_device(const at::Tensor& tensor, const c10::Device& device, const char* name);

// Shape of the logical elements of a packed 4-bit tensor.
int64_t checked_numel(c10::IntArrayRef shape, const char* name);

}  // namespace bnb::glue
