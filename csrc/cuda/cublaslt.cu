// The run-time loading of cuBLASLt (see cublaslt.h).
#include "cublaslt.h"

#if BNB_GPU_HAS_CUBLASLT
#include <dlfcn.h>

#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace bnb::cuda {
namespace {

#define BNB_STRINGIFY_VALUE(x) #x
#define BNB_STRINGIFY(x) BNB_STRINGIFY_VALUE(x)
constexpr const char* kCublasLtSoname = "libcublasLt.so." BNB_STRINGIFY(CUBLAS_VER_MAJOR);

struct LoadedCublasLt {
    CublasLt api{};
    std::string why_not;  // empty when every symbol was found
};

const LoadedCublasLt& loaded_cublaslt() {
    static const LoadedCublasLt loaded = [] {
        LoadedCublasLt result;
        void* library = dlopen(kCublasLtSoname, RTLD_NOW | RTLD_LOCAL);
        if (library == nullptr) {
            const char* error = dlerror();
            result.why_not = std::string("cuBLASLt could not be loaded: ") + (error != nullptr ? error : kCublasLtSoname);
            return result;
        }
        const auto symbol = [&](auto& slot, const char* name) {
            slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(dlsym(library, name));
            if (slot == nullptr && result.why_not.empty()) {
                result.why_not = std::string("cuBLASLt lacks ") + name + " (" + kCublasLtSoname + ")";
            }
        };
        CublasLt& api = result.api;
        symbol(api.create, "cublasLtCreate");
        symbol(api.status_string, "cublasLtGetStatusString");
        symbol(api.desc_create, "cublasLtMatmulDescCreate");
        symbol(api.desc_destroy, "cublasLtMatmulDescDestroy");
        symbol(api.desc_set_attribute, "cublasLtMatmulDescSetAttribute");
        symbol(api.layout_create, "cublasLtMatrixLayoutCreate");
        symbol(api.layout_destroy, "cublasLtMatrixLayoutDestroy");
        symbol(api.preference_create, "cublasLtMatmulPreferenceCreate");
        symbol(api.preference_destroy, "cublasLtMatmulPreferenceDestroy");
        symbol(api.preference_set_attribute, "cublasLtMatmulPreferenceSetAttribute");
        symbol(api.algo_get_heuristic, "cublasLtMatmulAlgoGetHeuristic");
        symbol(api.matmul, "cublasLtMatmul");
        return result;
    }();
    return loaded;
}

}  // namespace

const CublasLt* cublaslt() { return loaded_cublaslt().why_not.empty() ? &loaded_cublaslt().api : nullptr; }

const char* cublaslt_why_not() { return loaded_cublaslt().why_not.c_str(); }

cublasLtHandle_t cublaslt_handle(int device, const char* op, bnb_status* status) {
    static std::mutex mutex;
    static std::vector<cublasLtHandle_t> handles;
    const std::lock_guard<std::mutex> lock(mutex);
    if (handles.size() <= static_cast<size_t>(device)) handles.resize(static_cast<size_t>(device) + 1, nullptr);
    cublasLtHandle_t& handle = handles[static_cast<size_t>(device)];
    if (handle == nullptr) {
        const cublasStatus_t created = cublaslt()->create(&handle);
        if (created != CUBLAS_STATUS_SUCCESS) {
            handle = nullptr;
            *status = fail(BNB_STATUS_BACKEND_ERROR,
                           std::string(op) + ": cublasLtCreate failed: " + cublaslt()->status_string(created));
        }
    }
    return handle;
}

}  // namespace bnb::cuda
#endif
