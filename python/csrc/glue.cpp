#include "glue.h"

#include <ATen/ops/empty.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <cstdint>
#include <vector>

namespace bnb::glue {

void append_text(std::string& out, const c10::Device& device) { out += device.str(); }

void append_text(std::string& out, c10::IntArrayRef shape) {
    out += '[';
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i > 0) out += ", ";
        out += std::to_string(shape[i]);
    }
    out += ']';
}

void check_status(bnb_status status, const char* op) {
    if (status == BNB_STATUS_SUCCESS) return;
    const std::string message = std::string("bitsandbytes.") + op + ": " + bnb_last_error();
    switch (status) {
        case BNB_STATUS_INVALID_ARGUMENT: BNB_CHECK_VALUE(false, message);
        case BNB_STATUS_UNSUPPORTED: BNB_CHECK_NOT_IMPLEMENTED(false, message);
        default: BNB_CHECK_RUNTIME(false, message, " (", bnb_status_name(status), ")");
    }
}

bool is_float_dtype(c10::ScalarType dtype) {
    return dtype == c10::kFloat || dtype == c10::kHalf || dtype == c10::kBFloat16;
}

void check_op_blocksize(const char* op, int64_t blocksize) {
    int64_t count = 0;
    check_status(bnb_op_blocksizes(op, nullptr, 0, &count), op);
    std::vector<int64_t> accepted(static_cast<size_t>(count));
    check_status(bnb_op_blocksizes(op, accepted.data(), count, &count), op);
    std::string list;
    for (int64_t value : accepted) {
        if (value == blocksize) return;
        list += (list.empty() ? "" : ", ") + std::to_string(value);
    }
    BNB_CHECK_RUNTIME(false, "invalid blocksize ", blocksize, ": must be one of ", list);
}

bnb_quant_type parse_quant_type(c10::string_view quant_type) {
    if (quant_type == "nf4") return BNB_QUANT_NF4;
    if (quant_type == "fp4") return BNB_QUANT_FP4;
    BNB_CHECK_VALUE(false, "quant_type must be 'nf4' or 'fp4', got '", quant_type, "'");
}

bnb_dtype to_bnb_dtype(c10::ScalarType dtype) {
    switch (dtype) {
        case c10::kFloat: return BNB_DTYPE_FLOAT32;
        case c10::kHalf: return BNB_DTYPE_FLOAT16;
        case c10::kBFloat16: return BNB_DTYPE_BFLOAT16;
        case c10::kByte: return BNB_DTYPE_UINT8;
        case c10::kChar: return BNB_DTYPE_INT8;
        case c10::kInt: return BNB_DTYPE_INT32;
        default: BNB_CHECK_TYPE(false, "bitsandbytes: unsupported dtype ", dtype);
    }
}

Workspace allocate_workspace(int64_t bytes, const at::TensorOptions& options) {
    constexpr int64_t kAlignment = BNB_WORKSPACE_ALIGNMENT;
    Workspace workspace;
    workspace.bytes = bytes;
    workspace.buffer = at::empty({bytes > 0 ? bytes + kAlignment - 1 : 0}, options.dtype(at::kByte));
    if (bytes > 0) {
        const auto address = reinterpret_cast<uintptr_t>(workspace.buffer.mutable_data_ptr());
        workspace.start = reinterpret_cast<void*>((address + kAlignment - 1) / kAlignment * kAlignment);
    }
    return workspace;
}

bnb_device_type cuda_backend_type() {
    return bnb_backend_built(BNB_DEVICE_HIP) ? BNB_DEVICE_HIP : BNB_DEVICE_CUDA;
}

bnb_device to_bnb_device(const c10::Device& device) {
    switch (device.type()) {
        case c10::DeviceType::CPU: return {BNB_DEVICE_CPU, 0};
        // ROCm builds of torch present HIP devices as CUDA.
        case c10::DeviceType::CUDA:
            return {cuda_backend_type(), device.has_index() ? device.index() : 0};
        default: BNB_CHECK_NOT_IMPLEMENTED(false, "bitsandbytes: no native kernels for device ", device);
    }
}

void* current_stream(const c10::Device& device) {
    if (device.is_cpu()) return nullptr;
    const auto* guard = c10::impl::getDeviceGuardImpl(device.type());
    return reinterpret_cast<void*>(guard->getStream(device).native_handle());
}

void check_same_device(const at::Tensor& tensor, const c10::Device& device, const char* name) {
    BNB_CHECK_VALUE(tensor.device() == device, name, " must be on ", device, " like A, got ",
                      tensor.device());
}

int64_t checked_numel(c10::IntArrayRef shape, const char* name) {
    int64_t numel = 1;
    for (int64_t size : shape) {
        BNB_CHECK_VALUE(size >= 0, name, " must not contain negative sizes, got ", shape);
        numel *= size;
    }
    return numel;
}

}  // namespace bnb::glue
