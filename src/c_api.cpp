// Library-level entry points of the C ABI: version, errors, backends, codebooks.
#include <cstring>
#include <string>

#include "codebooks.h"
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
