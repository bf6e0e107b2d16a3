// bnb_paged_*: memory that the device's driver pages between host and device
// (paged optimizer states). The backends own the mechanism; the core checks the
// arguments and that the backend has it.
#include <string>

#include "validate.h"

using namespace bnb;

namespace {

// The backend of `device`, which must have the paged-memory function `slot`.
template <typename Slot>
bnb_status paged_backend(bnb_device device, Slot BackendOps::*slot, const char* what, const BackendOps** ops) {
    BNB_CHECK(check_device(device, ops));
    return check_op_slot(*ops, (*ops)->*slot != nullptr, what);
}

}  // namespace

extern "C" BNB_API bnb_status bnb_paged_alloc(bnb_device device, int64_t bytes, void** out) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(paged_backend(device, &BackendOps::paged_alloc, "paged_alloc", &ops));
    if (out == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "out must not be NULL");
    *out = nullptr;
    if (bytes <= 0) return fail(BNB_STATUS_INVALID_ARGUMENT, "bytes must be > 0, got " + std::to_string(bytes));
    // The backends round the size up (to pages, to alignment) in int64_t.
    BNB_CHECK(check_count(bytes, "bytes"));
    return ops->paged_alloc(device, bytes, out);
}

extern "C" BNB_API bnb_status bnb_paged_free(bnb_device device, void* ptr) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(paged_backend(device, &BackendOps::paged_free, "paged_free", &ops));
    if (ptr == nullptr) return BNB_STATUS_SUCCESS;  // as free(NULL)
    return ops->paged_free(device, ptr);
}

extern "C" BNB_API bnb_status bnb_paged_prefetch(bnb_device device, void* stream, const void* ptr, int64_t bytes,
                                                 int to_device) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(paged_backend(device, &BackendOps::paged_prefetch, "paged_prefetch", &ops));
    BNB_CHECK(check_count(bytes, "bytes"));
    if (bytes == 0) return BNB_STATUS_SUCCESS;
    if (ptr == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "ptr must not be NULL when bytes > 0");
    return ops->paged_prefetch(device, stream, ptr, bytes, to_device != 0);
}
