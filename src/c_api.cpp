// Library-level entry points of the C ABI: version, errors, backends, the op
// list and its formats, codebooks.
#include <cstring>
#include <string>

#include "codebooks.h"
#include "formats.h"
#include "validate.h"

#ifndef BNB_VERSION_STRING
#error "BNB_VERSION_STRING must be defined by the build"
#endif

using namespace bnb;

extern "C" BNB_API const char* bnb_version(void) { return BNB_VERSION_STRING; }

extern "C" BNB_API int bnb_abi_version(void) { return BNB_ABI_VERSION; }

extern "C" BNB_API const char* bnb_last_error(void) { return last_error(); }

extern "C" BNB_API const char* bnb_status_name(bnb_status status) {
    switch (status) {
        case BNB_STATUS_SUCCESS: return "BNB_STATUS_SUCCESS";
        case BNB_STATUS_INVALID_ARGUMENT: return "BNB_STATUS_INVALID_ARGUMENT";
        case BNB_STATUS_UNSUPPORTED: return "BNB_STATUS_UNSUPPORTED";
        case BNB_STATUS_BACKEND_UNAVAILABLE: return "BNB_STATUS_BACKEND_UNAVAILABLE";
        case BNB_STATUS_BACKEND_ERROR: return "BNB_STATUS_BACKEND_ERROR";
        case BNB_STATUS_OUT_OF_MEMORY: return "BNB_STATUS_OUT_OF_MEMORY";
        case BNB_STATUS_INTERNAL: return "BNB_STATUS_INTERNAL";
    }
    return "BNB_STATUS_UNKNOWN";
}

extern "C" BNB_API const char* bnb_backend_name(bnb_device_type type) {
    switch (type) {
        case BNB_DEVICE_CPU: return "cpu";
        case BNB_DEVICE_CUDA: return "cuda";
        case BNB_DEVICE_HIP: return "hip";
        case BNB_DEVICE_METAL: return "metal";
    }
    return "unknown";
}

extern "C" BNB_API int bnb_backend_built(bnb_device_type type) { return backend_ops(type) != nullptr; }

extern "C" BNB_API int bnb_backend_available(bnb_device_type type) {
    const BackendOps* ops = backend_ops(type);
    return ops != nullptr && ops->device_count() > 0;
}

extern "C" BNB_API int bnb_op_count(void) { return kOpCount; }

extern "C" BNB_API const char* bnb_op_name(int index) {
    return index >= 0 && index < kOpCount ? kOpNames[index] : nullptr;
}

extern "C" BNB_API int bnb_backend_supports(bnb_device_type type, const char* op) {
    const BackendOps* ops = backend_ops(type);
    Op which;
    return ops != nullptr && find_op(op, &which) && op_slot(*ops, which) != nullptr;
}

extern "C" BNB_API bnb_status bnb_op_blocksizes(const char* op, int64_t* out, int64_t capacity, int64_t* count) {
    clear_error();
    Op which;
    if (!find_op(op, &which)) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    std::string("op must name an op of bnb_op_name, got ") + (op == nullptr ? "NULL" : op));
    }
    if (count == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "count must not be NULL");
    if (capacity < 0) return fail(BNB_STATUS_INVALID_ARGUMENT, "capacity must be >= 0, got " + std::to_string(capacity));
    if (capacity > 0 && out == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "out must not be NULL when capacity > 0");
    const formats::Blocksizes blocksizes = accepted_blocksizes(which).listed;
    *count = static_cast<int64_t>(blocksizes.size());
    int64_t written = 0;
    for (int64_t blocksize : blocksizes) {
        if (written == capacity) break;
        out[written++] = blocksize;
    }
    return BNB_STATUS_SUCCESS;
}

extern "C" BNB_API int bnb_op_any_blocksize(const char* op) {
    Op which;
    return find_op(op, &which) && accepted_blocksizes(which).any_positive;
}

extern "C" BNB_API int bnb_backend_any_blocksize(bnb_device_type type, const char* op) {
    const BackendOps* ops = backend_ops(type);
    Op which;
    return ops != nullptr && find_op(op, &which) && takes_any_positive_blocksize(which, *ops);
}

extern "C" BNB_API int64_t bnb_nested_blocksize(void) { return formats::kNestedBlocksize; }

extern "C" BNB_API const char* bnb_backend_variant(bnb_device_type type) {
    const BackendOps* ops = backend_ops(type);
    return ops != nullptr && ops->variant != nullptr ? ops->variant() : nullptr;
}

extern "C" BNB_API int bnb_backend_variant_supported(bnb_device_type type, const char* name) {
    const BackendOps* ops = backend_ops(type);
    return ops != nullptr && ops->variant_supported != nullptr && name != nullptr ? ops->variant_supported(name) : 0;
}

extern "C" BNB_API bnb_status bnb_backend_select_variant(bnb_device_type type, const char* name) {
    clear_error();
    const BackendOps* ops = backend_ops(type);
    if (ops == nullptr) {
        return fail(BNB_STATUS_BACKEND_UNAVAILABLE,
                    std::string("type: the ") + bnb_backend_name(type) + " backend is not built into this library");
    }
    if (ops->select_variant == nullptr) {
        return fail(BNB_STATUS_UNSUPPORTED, std::string("the ") + ops->name + " backend has no kernel variants");
    }
    if (name == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "name must not be NULL");
    return ops->select_variant(name);
}

extern "C" BNB_API int64_t bnb_codebook_size(bnb_codebook which) { return codebook_size(which); }

extern "C" BNB_API bnb_status bnb_codebook_copy(bnb_codebook which, float* out, int64_t capacity) {
    clear_error();
    const int64_t size = codebook_size(which);
    if (size == 0) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    "which must be a bnb_codebook, got " + std::to_string(static_cast<int>(which)));
    }
    if (out == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "out must not be NULL");
    if (capacity < size) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, "capacity must be >= " + std::to_string(size) +
                                                     ", got " + std::to_string(capacity));
    }
    std::memcpy(out, codebook_values(which), static_cast<size_t>(size) * sizeof(float));
    return BNB_STATUS_SUCCESS;
}
