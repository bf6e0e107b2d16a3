// The backend interface: one table of function pointers per device type.
//
// A backend (csrc/<name>) fills a BackendOps and registers it at load time with
// BNB_REGISTER_BACKEND. A null slot means the backend lacks that op; the core
// reports BNB_STATUS_UNSUPPORTED naming op and backend. Arguments reach a backend
// already validated by the core (src/ops/<family>.cpp): kernels check nothing again.
#pragma once

#include <cstdint>

#include "bitsandbytes/bitsandbytes.h"
#include "ops.h"
#include "status.h"

namespace bnb {

struct BackendOps {
    const char* name;
    // How many devices of this type can run kernels now (0: the backend is unavailable);
    // the core accepts device indices below it.
    int (*device_count)();
    // Its kernels find a value's block by division, so they take blocks of any
    // length: every positive blocksize of an op whose format admits it
    // (formats::BlocksizeRule::any_positive).
    bool blocks_of_any_length;

    // One slot per op of src/ops.def, named after it.
#define BNB_OP(family, op, Args) bnb_status (*op)(const Args&);
#include "ops.def"
#undef BNB_OP

    // ---- queries: what a backend answers about itself (null: not applicable) ----
    // Largest M for which gemm_4bit's fused kernels beat dequantize + dense GEMM.
    bnb_status (*gemm_4bit_fused_max_rows)(const Gemm4bitShape& shape, int64_t* max_rows);
    // Workspace bytes gemm_4bit needs for the shape (0 when its kernel needs none).
    bnb_status (*gemm_4bit_workspace_size)(const Gemm4bitShape& shape, int64_t* bytes);
    // Workspace bytes int8_scaled_mm needs for the shape (0 when its kernel needs none).
    bnb_status (*int8_scaled_mm_workspace_size)(const Int8ScaledMmShape& shape, int64_t* bytes);
    // Paged memory (bnb_paged_*): allocate zero-filled `bytes` (the core has checked
    // that bytes > 0), free, and prefetch to the device or the host on a stream.
    bnb_status (*paged_alloc)(bnb_device device, int64_t bytes, void** out);
    bnb_status (*paged_free)(bnb_device device, void* ptr);
    bnb_status (*paged_prefetch)(bnb_device device, void* stream, const void* ptr, int64_t bytes, bool to_device);
    // Kernel variants (instruction sets): the one in use, whether `name` can run
    // here, and switching to it; see bnb_backend_variant in the C ABI.
    const char* (*variant)();
    int (*variant_supported)(const char* name);
    bnb_status (*select_variant)(const char* name);
};

// The slot of `op` in a table (null when the backend lacks it).
const void* op_slot(const BackendOps& ops, Op op);

void register_backend(bnb_device_type type, const BackendOps* ops);

// The registered table, or nullptr when the backend was not built.
const BackendOps* backend_ops(bnb_device_type type);

struct BackendRegistrar {
    BackendRegistrar(bnb_device_type type, const BackendOps* ops) { register_backend(type, ops); }
};

}  // namespace bnb

#define BNB_REGISTER_BACKEND(type, ops) \
    static const ::bnb::BackendRegistrar bnb_backend_registrar_##type{type, &(ops)}
