// The backend interface: one table of function pointers per device type.
//
// A backend (csrc/<name>) fills a BackendOps and registers it at load time with
// BNB_REGISTER_BACKEND. A null slot means the backend lacks that op; the core
// reports BNB_STATUS_UNSUPPORTED naming op and backend. Arguments reach a backend
// already validated by the core (src/ops/*.cpp): kernels check nothing again.
#pragma once

#include <cstdint>

#include "bitsandbytes/bitsandbytes.h"
#include "status.h"

namespace bnb {

struct QuantizeBlockwiseArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;  // of A
    const void* A;
    const float* code;  // 256 entries
    int64_t n;
    int64_t blocksize;
    uint8_t* out;
    float* absmax;
};

struct DequantizeBlockwiseArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;  // of out
    const uint8_t* A;
    const float* code;  // 256 entries
    const float* absmax;
    int64_t n;
    int64_t blocksize;
    void* out;
};

struct Quantize4bitArgs {
    bnb_device device;
    void* stream;
    bnb_quant_type quant_type;
    bnb_dtype dtype;  // of A
    const void* A;
    int64_t n;
    int64_t blocksize;
    uint8_t* packed;  // (n + 1) / 2 bytes
    float* absmax;
};

struct Dequantize4bitArgs {
    bnb_device device;
    void* stream;
    bnb_quant_type quant_type;
    bnb_dtype dtype;  // of out
    const uint8_t* packed;
    const float* absmax;
    int64_t n;
    int64_t blocksize;
    void* out;
};

struct BackendOps {
    const char* name;
    // True if at least one device of this type can run kernels now.
    bool (*available)();
    bnb_status (*quantize_blockwise)(const QuantizeBlockwiseArgs&);
    bnb_status (*dequantize_blockwise)(const DequantizeBlockwiseArgs&);
    bnb_status (*quantize_4bit)(const Quantize4bitArgs&);
    bnb_status (*dequantize_4bit)(const Dequantize4bitArgs&);
};

void register_backend(bnb_device_type type, const BackendOps* ops);

// The registered table, or nullptr when the backend was not built.
const BackendOps* backend_ops(bnb_device_type type);

struct BackendRegistrar {
    BackendRegistrar(bnb_device_type type, const BackendOps* ops) { register_backend(type, ops); }
};

}  // namespace bnb

#define BNB_REGISTER_BACKEND(type, ops) \
    static const ::bnb::BackendRegistrar bnb_backend_registrar_##type{type, &(ops)}
