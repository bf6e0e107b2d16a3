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

// bnb_gemm_4bit and bnb_gemv_4bit (one slot: gemv is gemm with a codebook
// pointer, plain absmax and no bias).
struct Gemm4bitArgs {
    bnb_device device;
    void* stream;
    bnb_dtype dtype;  // of A, bias and out
    bnb_quant_type quant_type;  // selects the codebook when `code` is null
    const float* code;          // 16 float32 entries (device memory), or null
    const void* A;              // [M, K]
    const uint8_t* B;           // (N * K + 1) / 2 packed bytes of W [N, K]
    const float* absmax;        // per block, or per 256 blocks when nested
    const uint8_t* absmax_8bit;  // per block when nested, else null
    const float* absmax_code;    // 256 entries when nested
    const float* absmax_offset;  // 1 entry when nested
    const void* bias;           // [N] or null
    int64_t M;
    int64_t N;
    int64_t K;
    int64_t blocksize;
    bnb_gemm_4bit_algo algo;
    void* out;  // [M, N]
};

struct Gemm4bitShape {
    bnb_device device;
    bnb_dtype dtype;
    int64_t N;
    int64_t K;
    int64_t blocksize;
};

struct BackendOps {
    const char* name;
    // How many devices of this type can run kernels now (0: the backend is unavailable);
    // the core accepts device indices below it.
    int (*device_count)();
    bnb_status (*quantize_blockwise)(const QuantizeBlockwiseArgs&);
    bnb_status (*dequantize_blockwise)(const DequantizeBlockwiseArgs&);
    bnb_status (*quantize_4bit)(const Quantize4bitArgs&);
    bnb_status (*dequantize_4bit)(const Dequantize4bitArgs&);
    bnb_status (*gemm_4bit)(const Gemm4bitArgs&);
    // Largest M for which gemm_4bit beats dequantize + dense GEMM (0: never).
    bnb_status (*gemm_4bit_fused_max_rows)(const Gemm4bitShape&, int64_t* max_rows);
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
