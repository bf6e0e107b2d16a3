/*
 * bitsandbytes C ABI.
 *
 * Plain C (C99), no C++ or torch types. Every function that can fail returns a
 * bnb_status; on failure bnb_last_error() returns a message (thread-local) that
 * names the offending argument. Pointers are raw host or device pointers of the
 * device passed in; element counts are int64_t; a stream is a void* (NULL = the
 * default stream of the device; ignored on the CPU).
 */
#ifndef BITSANDBYTES_BITSANDBYTES_H
#define BITSANDBYTES_BITSANDBYTES_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(BNB_BUILDING_LIBRARY)
#    define BNB_API __declspec(dllexport)
#  else
#    define BNB_API __declspec(dllimport)
#  endif
#else
#  define BNB_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a declaration below changes incompatibly. */
#define BNB_ABI_VERSION 2

/* The enums are int-sized in C. A C++ translation unit gives them int as a fixed
 * underlying type, so that any int a caller passes (an unknown dtype, say) is a
 * value the library can reject with BNB_STATUS_INVALID_ARGUMENT, not undefined
 * behaviour in C++. */
#ifdef __cplusplus
#  define BNB_ENUM(name) enum name : int
#else
#  define BNB_ENUM(name) enum name
#endif

typedef BNB_ENUM(bnb_status) {
    BNB_STATUS_SUCCESS = 0,
    BNB_STATUS_INVALID_ARGUMENT = 1, /* a value, pointer or size is not acceptable */
    BNB_STATUS_UNSUPPORTED = 2,      /* the backend lacks this op or this combination */
    BNB_STATUS_BACKEND_UNAVAILABLE = 3, /* backend not built, or no such device */
    BNB_STATUS_BACKEND_ERROR = 4,    /* the device runtime reported an error */
    BNB_STATUS_OUT_OF_MEMORY = 5,
    BNB_STATUS_INTERNAL = 6
} bnb_status;

typedef BNB_ENUM(bnb_dtype) {
    BNB_DTYPE_FLOAT32 = 0,
    BNB_DTYPE_FLOAT16 = 1,
    BNB_DTYPE_BFLOAT16 = 2,
    BNB_DTYPE_UINT8 = 3,
    BNB_DTYPE_INT8 = 4,
    BNB_DTYPE_INT32 = 5
} bnb_dtype;

typedef BNB_ENUM(bnb_device_type) {
    BNB_DEVICE_CPU = 0,
    BNB_DEVICE_CUDA = 1,
    BNB_DEVICE_HIP = 2,
    BNB_DEVICE_METAL = 3
} bnb_device_type;
#define BNB_DEVICE_TYPE_COUNT 4

typedef struct bnb_device {
    bnb_device_type type;
    int32_t index; /* ordinal of the device; 0 on the CPU */
} bnb_device;

typedef BNB_ENUM(bnb_quant_type) {
    BNB_QUANT_NF4 = 0,
    BNB_QUANT_FP4 = 1
} bnb_quant_type;

typedef BNB_ENUM(bnb_codebook) {
    BNB_CODEBOOK_DYNAMIC_SIGNED = 0,   /* 256 entries, create_dynamic_map(signed=True) */
    BNB_CODEBOOK_DYNAMIC_UNSIGNED = 1, /* 256 entries, create_dynamic_map(signed=False) */
    BNB_CODEBOOK_NF4 = 2,              /* 16 entries, get_4bit_type("nf4") */
    BNB_CODEBOOK_FP4 = 3,              /* 16 entries, get_4bit_type("fp4") */
    BNB_CODEBOOK_NF4_THRESHOLDS = 4,   /* 15 entries: the NF4 code of s counts the thresholds s exceeds */
    BNB_CODEBOOK_FP4_THRESHOLDS = 5    /* 7 entries, increasing: the same between FP4 magnitudes */
} bnb_codebook;

/* ---- library ----------------------------------------------------------- */

/* Semantic version of the library, e.g. "0.50.2". */
BNB_API const char* bnb_version(void);
/* BNB_ABI_VERSION of the loaded library. */
BNB_API int bnb_abi_version(void);
/* Message of the last failed call on this thread ("" if none). */
BNB_API const char* bnb_last_error(void);
/* Name of a status code, e.g. "BNB_STATUS_INVALID_ARGUMENT". */
BNB_API const char* bnb_status_name(bnb_status status);
/* 1 if the backend is built and at least one device of that type is usable. */
BNB_API int bnb_backend_available(bnb_device_type type);
/* 1 if the backend was compiled into this library (devices may still be absent). */
BNB_API int bnb_backend_built(bnb_device_type type);
/* Human-readable backend name ("cpu", "cuda", "hip", "metal"). */
BNB_API const char* bnb_backend_name(bnb_device_type type);

/* ---- ops and backends -------------------------------------------------- */

/* Number of array ops of this library; bnb_op_name(0 .. count - 1) names them
 * ("quantize_blockwise", "gemm_4bit", ...), each the bnb_<name> function below. */
BNB_API int bnb_op_count(void);
/* Name of op `index`, or NULL outside [0, bnb_op_count()). */
BNB_API const char* bnb_op_name(int index);
/* 1 if the backend is built and implements the op named `op` (0 for an unknown name). */
BNB_API int bnb_backend_supports(bnb_device_type type, const char* op);
/*
 * The blocksizes that op `op` accepts on every backend, in increasing order:
 * *count receives how many there are, and out[0 .. min(count, capacity)) the
 * values (out may be NULL when capacity is 0). An op without a blocksize
 * argument has none (count 0).
 */
BNB_API bnb_status bnb_op_blocksizes(const char* op, int64_t* out, int64_t capacity, int64_t* count);
/*
 * 1 if the format of op `op` holds for blocks of any length (blockwise 8-bit), so
 * that a backend whose kernels take such blocks accepts every positive blocksize
 * besides the listed ones; 0 otherwise (and for an unknown name).
 */
BNB_API int bnb_op_any_blocksize(const char* op);
/*
 * 1 if backend `type` is built and accepts every positive blocksize for `op`
 * (the CPU for blockwise 8-bit, as upstream's CPU path); 0 when it takes only
 * the list of bnb_op_blocksizes.
 */
BNB_API int bnb_backend_any_blocksize(bnb_device_type type, const char* op);
/* Blocksize of nested ("double") quantization of 4-bit absmax: 256. */
BNB_API int64_t bnb_nested_blocksize(void);

/*
 * Kernel variants of a backend (the CPU's instruction sets: "scalar", "avx2",
 * "avx512"); every variant computes the same bytes. bnb_backend_variant names the
 * one in use (NULL for a backend without variants or not built);
 * bnb_backend_variant_supported says whether this machine can run `name`
 * ("auto" always can); bnb_backend_select_variant switches every later call of the
 * process to `name` ("auto" = the best supported): BNB_STATUS_INVALID_ARGUMENT for
 * an unknown name, BNB_STATUS_UNSUPPORTED for one this machine cannot run or a
 * backend without variants. The environment variable BNB_CPU_ISA caps the CPU's
 * choice at load time.
 */
BNB_API const char* bnb_backend_variant(bnb_device_type type);
BNB_API int bnb_backend_variant_supported(bnb_device_type type, const char* name);
BNB_API bnb_status bnb_backend_select_variant(bnb_device_type type, const char* name);

/* ---- codebooks --------------------------------------------------------- */

/* Number of float32 entries of a codebook (256 or 16); 0 for an unknown one. */
BNB_API int64_t bnb_codebook_size(bnb_codebook which);
/* Copies the codebook into out[0..capacity); capacity must be >= its size. */
BNB_API bnb_status bnb_codebook_copy(bnb_codebook which, float* out, int64_t capacity);

/* ---- blockwise 8-bit --------------------------------------------------- */

/*
 * Quantizes n elements of A (dtype fp32/fp16/bf16) in blocks of `blocksize`
 * against the 256-entry float32 `code`: out[i] = uint8 code index,
 * absmax[b] = max |A| of block b (ceil(n / blocksize) entries).
 * blocksize: 64, 128, 256, 512, 1024, 2048 or 4096; on the CPU any positive one
 * (bnb_backend_any_blocksize).
 */
BNB_API bnb_status bnb_quantize_blockwise(bnb_device device, void* stream, bnb_dtype dtype,
                                          const void* A, const float* code, int64_t n,
                                          int64_t blocksize, uint8_t* out, float* absmax);

/*
 * out[i] = dtype(code[A[i]] * absmax[i / blocksize]) for n elements.
 * blocksize: a power of two from 16 to 4096 (every blocksize quantize accepts, and
 * those of 4-bit); on the CPU any positive one (bnb_backend_any_blocksize).
 */
BNB_API bnb_status bnb_dequantize_blockwise(bnb_device device, void* stream, bnb_dtype dtype,
                                            const uint8_t* A, const float* code,
                                            const float* absmax, int64_t n, int64_t blocksize,
                                            void* out);

/* ---- 4-bit NF4 / FP4 --------------------------------------------------- */

/*
 * Quantizes n elements of A (fp32/fp16/bf16) to 4-bit codes of `quant_type`,
 * two per byte, the lower flat index in the high nibble: packed has
 * (n + 1) / 2 bytes (any storage dtype of the caller, reinterpreted).
 * absmax has ceil(n / blocksize) entries.
 * blocksize: 32, 64, 128, 256, 512, 1024, 2048 or 4096.
 */
BNB_API bnb_status bnb_quantize_4bit(bnb_device device, void* stream, bnb_quant_type quant_type,
                                     bnb_dtype dtype, const void* A, int64_t n, int64_t blocksize,
                                     uint8_t* packed, float* absmax);

/* out[i] = dtype(codebook[nibble i] * absmax[i / blocksize]) for n elements. */
BNB_API bnb_status bnb_dequantize_4bit(bnb_device device, void* stream,
                                       bnb_quant_type quant_type, bnb_dtype dtype,
                                       const uint8_t* packed, const float* absmax, int64_t n,
                                       int64_t blocksize, void* out);

/* ---- 4-bit inference matmul ------------------------------------------- */

/* Which kernel computes bnb_gemm_4bit; AUTO lets the backend's tuning table choose. */
typedef BNB_ENUM(bnb_gemm_4bit_algo) {
    BNB_GEMM_4BIT_AUTO = 0,
    BNB_GEMM_4BIT_GENERIC = 1,     /* any shape and alignment; slow */
    BNB_GEMM_4BIT_SIMT = 2,        /* few rows, K % 32 == 0, 16-byte aligned A and B */
    BNB_GEMM_4BIT_TENSOR_CORE = 3, /* fp16/bf16, up to 64 rows, K % 32 == 0, aligned; sm_80+ */
    BNB_GEMM_4BIT_DEQUANTIZE = 4   /* W dequantized into the workspace, then a dense GEMM */
} bnb_gemm_4bit_algo;

/*
 * out[m, n] = sum_k A[m, k] * W[n, k] (+ bias[n]) for m < M, n < N, with float32
 * accumulation and one rounding to `dtype` (the dtype of A, bias and out).
 * W[n, k] = codebook(quant_type)[nibble n*K + k of B] * scale[(n*K + k) / blocksize],
 * B holding (N*K + 1) / 2 packed bytes as bnb_quantize_4bit writes them.
 * scale: absmax[j] when absmax_8bit is NULL; otherwise nested statistics (blocksize
 * 256): absmax_code[absmax_8bit[j]] * absmax[j / 256] + absmax_offset[0], where
 * absmax_code has 256 entries and absmax_offset one.
 * bias: N entries or NULL. A is [M, K] and out [M, N], both row-major.
 * blocksize: 32, 64, 128, 256, 512, 1024, 2048 or 4096.
 * The backend chooses the kernel for the shape (AUTO) among the fused kernels and,
 * for many rows, dequantizing W into `workspace` followed by a dense GEMM; that path
 * needs workspace_bytes >= what bnb_gemm_4bit_workspace_size reports. With less
 * workspace (NULL and 0 included) AUTO stays on the fused kernels, which serve any M.
 */
BNB_API bnb_status bnb_gemm_4bit(bnb_device device, void* stream, bnb_dtype dtype,
                                 bnb_quant_type quant_type, const void* A, int64_t M, int64_t K,
                                 const uint8_t* B, int64_t N, int64_t blocksize,
                                 const float* absmax, const uint8_t* absmax_8bit,
                                 const float* absmax_code, const float* absmax_offset,
                                 const void* bias, bnb_gemm_4bit_algo algo, void* workspace,
                                 int64_t workspace_bytes, void* out);

/*
 * Bytes of workspace that bnb_gemm_4bit needs for this shape and algo (nested: 1 when
 * absmax_8bit will be given); 0 when the chosen kernel needs none. Device memory of
 * `device`, aligned to BNB_WORKSPACE_ALIGNMENT bytes, not shared with a call in flight
 * on another stream.
 */
#define BNB_WORKSPACE_ALIGNMENT 256
BNB_API bnb_status bnb_gemm_4bit_workspace_size(bnb_device device, bnb_dtype dtype, int64_t M, int64_t N,
                                                int64_t K, int64_t blocksize, int nested,
                                                bnb_gemm_4bit_algo algo, int64_t* bytes);

/*
 * bnb_gemm_4bit with the 16-entry float32 codebook `code` (device memory) instead
 * of a quant type, plain float32 absmax, no bias and no workspace (the fused kernels,
 * any M): upstream's gemv_4bit.
 */
BNB_API bnb_status bnb_gemv_4bit(bnb_device device, void* stream, bnb_dtype dtype, const void* A,
                                 int64_t M, int64_t K, const uint8_t* B, int64_t N,
                                 const float* code, const float* absmax, int64_t blocksize,
                                 void* out);

/*
 * The largest M for which the backend's fused kernels beat dequantizing W and a
 * dense GEMM, for an [N, K] weight (measured; see the backend's tuning table).
 * 0 means: always dequantize. BNB_STATUS_UNSUPPORTED where the backend has no
 * fused 4-bit matmul.
 */
BNB_API bnb_status bnb_gemm_4bit_fused_max_rows(bnb_device device, bnb_dtype dtype, int64_t N,
                                                int64_t K, int64_t blocksize, int64_t* max_rows);

/* ---- LLM.int8() ------------------------------------------------------- */

/*
 * Row-wise absmax quantization of A [rows, cols] (dtype fp32/fp16/bf16), row-major:
 * row_stats[r] = max |A[r, :]| over the elements below `threshold` (all when
 * threshold == 0), out[r, c] = round_half_even(A[r, c] * 127 / row_stats[r]) as int8.
 * threshold > 0 (LLM.int8() outliers): elements with |a| >= threshold are written as 0,
 * and the columns holding one are reported: outlier_cols[0..*outlier_count) ascending
 * (capacity `cols`; entries past the count are the call's scratch, unspecified); with
 * more than one row those whole columns are 0 in `out`. outlier_cols and outlier_count may be NULL when threshold == 0. An empty A writes
 * nothing (it has no outliers). Bit-identical to upstream's CUDA kernel (formats.md 5.1).
 */
BNB_API bnb_status bnb_int8_vectorwise_quant(bnb_device device, void* stream, bnb_dtype dtype,
                                             const void* A, int64_t rows, int64_t cols, float threshold,
                                             int8_t* out, float* row_stats, int64_t* outlier_cols,
                                             int64_t* outlier_count);

/*
 * bnb_int8_vectorwise_quant plus the column-wise quantization: col_stats[c] = max |A[:, c]|
 * over the elements below `threshold`, out_col[r, c] = int8(round_half_even(
 * dtype(A'[r, c] * 127) / col_stats[c])) with A' = A with the outlier elements set to 0.
 */
BNB_API bnb_status bnb_int8_double_quant(bnb_device device, void* stream, bnb_dtype dtype, const void* A,
                                         int64_t rows, int64_t cols, float threshold, int8_t* out_row,
                                         int8_t* out_col, float* row_stats, float* col_stats,
                                         int64_t* outlier_cols, int64_t* outlier_count);

/* out[r, c] = dtype(float(A[r, c]) * stats[r] * float(1/127)) for A [rows, cols]. */
BNB_API bnb_status bnb_int8_vectorwise_dequant(bnb_device device, void* stream, bnb_dtype dtype,
                                               const int8_t* A, const float* stats, int64_t rows,
                                               int64_t cols, void* out);

/* out[M, N] = A[M, K] @ B[N, K]^T, exact int32 arithmetic (K == 0 gives zeros). */
BNB_API bnb_status bnb_int8_linear_matmul(bnb_device device, void* stream, const int8_t* A, int64_t M,
                                          int64_t K, const int8_t* B, int64_t N, int32_t* out);

/*
 * out[r, c] = dtype(A[r, c] * row_stats[r] * col_stats[c] * float(1/127^2) + bias[c]), A int32
 * [rows, cols], float32 arithmetic rounded once (bias: `cols` entries of bias_dtype, or NULL).
 */
BNB_API bnb_status bnb_int8_mm_dequant(bnb_device device, void* stream, const int32_t* A, int64_t rows,
                                       int64_t cols, const float* row_stats, const float* col_stats,
                                       bnb_dtype bias_dtype, const void* bias, bnb_dtype dtype, void* out);

/*
 * The LLM.int8() linear layer in one call: out [M, N] (dtype) = bnb_int8_mm_dequant of
 * A [M, K] @ B [N, K]^T with row_stats [M], col_stats [N] and bias, plus, when
 * outlier_cols is given, the outlier columns in 16/32-bit:
 *   out[m, n] += sum over j < *outlier_count of X[m, c_j] * dtype(B[n, c_j] * col_stats[n] / 127),
 * c_j = outlier_cols[j] (capacity K, as bnb_int8_vectorwise_quant writes them), X [M, K]
 * the activations in `dtype`. A's outlier columns must be 0 (vectorwise_quant does it).
 * The backend chooses the kernel; kernels that need scratch memory use `workspace`
 * (bnb_int8_scaled_mm_workspace_size bytes, BNB_WORKSPACE_ALIGNMENT-aligned device memory).
 */
BNB_API bnb_status bnb_int8_scaled_mm(bnb_device device, void* stream, bnb_dtype dtype, const int8_t* A,
                                      int64_t M, int64_t K, const int8_t* B, int64_t N, const float* row_stats,
                                      const float* col_stats, bnb_dtype bias_dtype, const void* bias,
                                      const void* X, const int64_t* outlier_cols, const int64_t* outlier_count,
                                      void* workspace, int64_t workspace_bytes, void* out);

/* Bytes of workspace bnb_int8_scaled_mm needs for the shape (outliers: 1 when outlier_cols will be given). */
BNB_API bnb_status bnb_int8_scaled_mm_workspace_size(bnb_device device, bnb_dtype dtype, int64_t M, int64_t N,
                                                     int64_t K, int outliers, int64_t* bytes);

/* ---- optimizers ------------------------------------------------------ */

/* The update rules of upstream's optimizer kernels (formats.md sections 6 and 7). */
typedef BNB_ENUM(bnb_optimizer) {
    BNB_OPTIMIZER_ADAM = 0,     /* two states: Adam, AdamW */
    BNB_OPTIMIZER_MOMENTUM = 1, /* one state: SGD with momentum */
    BNB_OPTIMIZER_RMSPROP = 2,  /* one state */
    BNB_OPTIMIZER_ADAGRAD = 3,  /* one state */
    BNB_OPTIMIZER_LION = 4,     /* one state */
    BNB_OPTIMIZER_LAMB = 5,     /* adam with update-norm clipping (32-bit) */
    BNB_OPTIMIZER_LARS = 6,     /* momentum with update-norm clipping (32-bit) */
    BNB_OPTIMIZER_ADEMAMIX = 7  /* two states, state1 holding m1 then m2 */
} bnb_optimizer;
#define BNB_OPTIMIZER_COUNT 8

/* The optimizer named `name` as upstream spells it ("adam", "momentum", ..., "ademamix"). */
BNB_API bnb_status bnb_optimizer_from_name(const char* name, bnb_optimizer* out);

/* The hyper-parameters of one update, shared by every tensor of the call. */
typedef struct bnb_optimizer_hparams {
    float beta1;
    float beta2;
    float beta3;        /* ademamix */
    float alpha;        /* ademamix */
    float eps;
    float weight_decay;
    float lr;
    float gnorm_scale;  /* the gradient is multiplied by it first */
    float max_unorm;    /* 32-bit: > 0 clips the update norm to max_unorm * param_norm */
    int64_t step;       /* the step being taken, from 1 */
    int skip_zeros;     /* nonzero: elements whose gradient is 0 are left untouched */
} bnb_optimizer_hparams;

/*
 * One parameter tensor of n elements and its states. 32-bit: state1/state2 are float32
 * [n] (ademamix: state1 [2, n], m1 then m2). 8-bit blockwise: uint8 codes, state1 into
 * qmap1 (signed dynamic map), state2 into qmap2 (unsigned), with float32 absmax per
 * 256-element block (ademamix: state1 [2, n] and absmax1 [2, blocks]). state2 and
 * absmax2 are used by the two-state optimizers (adam, lamb, ademamix) only; unorm_vec
 * (float32 [1], scratch of the call) and param_norm (||p||_2) only with max_unorm > 0.
 */
typedef struct bnb_optimizer_tensor {
    int64_t n;
    const void* g;    /* gradient, `dtype` */
    void* p;          /* parameter, `dtype`, updated in place */
    void* state1;
    void* state2;
    float* absmax1;
    float* absmax2;
    float* unorm_vec;
    float param_norm;
} bnb_optimizer_tensor;

/*
 * One optimizer step over `count` tensors whose gradients and parameters are all of
 * `dtype` (fp32/fp16/bf16), in place, with float32 states. Backends may update every
 * tensor of the list in one launch; the result is the same as one call per tensor.
 */
BNB_API bnb_status bnb_optimizer_update_32bit(bnb_device device, void* stream, bnb_optimizer optimizer,
                                              bnb_dtype dtype, const bnb_optimizer_tensor* tensors,
                                              int64_t count, const bnb_optimizer_hparams* hparams);

/* The same with 8-bit blockwise states (blocksize 256, dynamic maps qmap1/qmap2, 256 float32 each). */
BNB_API bnb_status bnb_optimizer_update_8bit_blockwise(bnb_device device, void* stream, bnb_optimizer optimizer,
                                                       bnb_dtype dtype, const bnb_optimizer_tensor* tensors,
                                                       int64_t count, const float* qmap1, const float* qmap2,
                                                       const bnb_optimizer_hparams* hparams);

/* ---- paged memory ----------------------------------------------------- */

/*
 * Memory the device's driver pages between host and device on demand (CUDA managed
 * memory), for optimizer states that may be evicted under memory pressure. `bytes`
 * must not exceed what the device has free (managed memory the card cannot back can
 * hang it); the memory is zero-filled. On the CPU it is ordinary host memory.
 */
BNB_API bnb_status bnb_paged_alloc(bnb_device device, int64_t bytes, void** out);
BNB_API bnb_status bnb_paged_free(bnb_device device, void* ptr);
/* Asynchronously moves [ptr, ptr + bytes) to the device (to_device != 0) or to the host, on `stream`. */
BNB_API bnb_status bnb_paged_prefetch(bnb_device device, void* stream, const void* ptr, int64_t bytes,
                                      int to_device);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* BITSANDBYTES_BITSANDBYTES_H */
