// cuBLASLt, opened at first use instead of linked: the library then loads where
// cuBLASLt is absent (a CPU-only torch beside a build with the CUDA backend), and
// in a torch process it shares the copy torch has loaded (same soname). Used by
// gemm_4bit's dense path and the int8 GEMM; the HIP build has none
// (BNB_GPU_HAS_CUBLASLT is 0 there and this header declares nothing).
#pragma once

#include "cuda_common.cuh"

#if BNB_GPU_HAS_CUBLASLT
#include <cublasLt.h>

namespace bnb::cuda {

struct CublasLt {
    decltype(&cublasLtCreate) create;
    decltype(&cublasLtGetStatusString) status_string;
    decltype(&cublasLtMatmulDescCreate) desc_create;
    decltype(&cublasLtMatmulDescDestroy) desc_destroy;
    decltype(&cublasLtMatmulDescSetAttribute) desc_set_attribute;
    decltype(&cublasLtMatrixLayoutCreate) layout_create;
    decltype(&cublasLtMatrixLayoutDestroy) layout_destroy;
    decltype(&cublasLtMatmulPreferenceCreate) preference_create;
    decltype(&cublasLtMatmulPreferenceDestroy) preference_destroy;
    decltype(&cublasLtMatmulPreferenceSetAttribute) preference_set_attribute;
    decltype(&cublasLtMatmulAlgoGetHeuristic) algo_get_heuristic;
    decltype(&cublasLtMatmul) matmul;
};

// The loaded API, or nullptr when cuBLASLt could not be opened; then
// cublaslt_why_not() says why.
const CublasLt* cublaslt();
const char* cublaslt_why_not();

// One handle per device, created on first use and kept for the process
// (destroying it at exit could run after the CUDA runtime has shut down). nullptr
// with *status set (naming `op`) when creation fails. Only after cublaslt() != nullptr.
cublasLtHandle_t cublaslt_handle(int device, const char* op, bnb_status* status);

}  // namespace bnb::cuda
#endif
