// The CPU backend's 4-bit matmul slots (gemm_4bit, gemv_4bit and the fused-row
// and workspace queries): the tile plan, the codebook, the split among threads
// and the tile kind of the active instruction set (kernels.h describes the kernel).
#include <algorithm>
#include <limits>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "codebooks.h"
#include "common/cpu_isa.h"
#include "common/float_mode.h"
#include "common/float_types.h"
#include "common/parallel.h"
#include "gemm_4bit/gemm_4bit.h"
#include "status.h"

namespace bnb::cpu {
namespace {

// Tiles taken from the caller's workspace: 16 W rows of up to 2 KiB (32 KiB,
// L1-resident: 512 float32 or 1024 bf16 columns; float32 tiles of 256 and 1024
// columns measured slower) against blocks of up to 256 rows of A.
constexpr int64_t kWorkspaceTileRowBytes = 2048;
constexpr int64_t kWorkspaceRowsOfA = 256;
// Without workspace, tiles small enough for each thread's stack (20 KiB).
constexpr int64_t kStackTileRowBytes = 1024;
constexpr int64_t kStackRowsOfA = 64;
constexpr int64_t kTileRows = 16;
constexpr int64_t kStackScratchFloats = (kTileRows * kStackTileRowBytes) / 4 + kStackRowsOfA * kTileRows;
// Work (multiply-adds, a dequantized weight counted as 4) that takes a thread
// about 50 us, below which waking another costs more than it saves (parallel.h).
constexpr int64_t kMinWorkPerThread = int64_t{1} << 21;

static_assert(kTileRows % kGemm4bitTileRowMultiple == 0 && kTileRows % kGemm4bitMicroColumns == 0);
static_assert((kWorkspaceTileRowBytes / 4) % kGemm4bitTileColumnMultiple == 0 &&
              (kStackTileRowBytes / 4) % kGemm4bitTileColumnMultiple == 0);

Gemm4bitTilePlan plan_for(int64_t M, int64_t K, int64_t weight_bytes, int64_t tile_row_bytes, int64_t max_rows_of_A) {
    return {.tile_rows = kTileRows,
            .k_chunk = std::clamp(round_up_to_multiple(K, kGemm4bitTileColumnMultiple), kGemm4bitTileColumnMultiple,
                                  tile_row_bytes / weight_bytes),
            .m_block = std::clamp<int64_t>(M, 1, max_rows_of_A)};
}

// One thread's share of the workspace, a multiple of its alignment so that every
// share starts aligned.
int64_t share_bytes(const Gemm4bitTilePlan& plan, int64_t weight_bytes) {
    const int64_t bytes = plan.tile_rows * plan.k_chunk * weight_bytes +
                          plan.m_block * plan.tile_rows * static_cast<int64_t>(sizeof(float));
    return round_up_to_multiple(bytes, kWorkspaceAlignment);
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// bf16 rows from which AUTO (and DEQUANTIZE) multiply bnb_dequantize_4bit's bf16
// weights with AVX512-BF16 instead of float32 weights with FMA: the largest M
// where float32 weights are still about as fast, measured in benchmarks/RESULTS.md.
constexpr int64_t kBf16TileMaxFusedRows = 4;

// Only the AVX-512 path has bf16 tiles (Gemm4bitKernels), and they need AVX512-BF16.
bool bf16_tiles_usable(bnb_dtype dtype, bnb_gemm_4bit_algo algo) {
    return dtype == BNB_DTYPE_BFLOAT16 && algo != BNB_GEMM_4BIT_GENERIC &&
           BNB_CPU_ACTIVE_KERNELS(kGemm4bitKernels).bf16_tiles != nullptr && cpu_has_avx512_bf16();
}

// The largest M served with float32 weights (the kernel bnb_gemm_4bit_fused_max_rows describes).
int64_t float_weight_max_rows(bnb_dtype dtype, bnb_gemm_4bit_algo algo) {
    return bf16_tiles_usable(dtype, algo) ? kBf16TileMaxFusedRows : std::numeric_limits<int64_t>::max();
}

int64_t weight_bytes_for(bnb_dtype dtype, bnb_gemm_4bit_algo algo, int64_t M) {
    return M > float_weight_max_rows(dtype, algo) ? 2 : 4;
}

int64_t workspace_bytes_for(bnb_dtype dtype, bnb_gemm_4bit_algo algo, int64_t M, int64_t K) {
    const int64_t weight_bytes = weight_bytes_for(dtype, algo, M);
    return share_bytes(plan_for(M, K, weight_bytes, kWorkspaceTileRowBytes, kWorkspaceRowsOfA), weight_bytes) *
           max_threads();
}

Gemm4bitRunItems run_items_for(const Gemm4bitArgs& args) {
    const Gemm4bitKernels& kernels = BNB_CPU_ACTIVE_KERNELS(kGemm4bitKernels);
    return weight_bytes_for(args.dtype, args.algo, args.M) == 2 ? kernels.bf16_tiles : kernels.float_tiles;
}

const char* algo_name(bnb_gemm_4bit_algo algo) {
    return algo == BNB_GEMM_4BIT_SIMT ? "BNB_GEMM_4BIT_SIMT" : "BNB_GEMM_4BIT_TENSOR_CORE";
}

}  // namespace

bnb_status gemm_4bit(const Gemm4bitArgs& args) {
    if (args.algo == BNB_GEMM_4BIT_SIMT || args.algo == BNB_GEMM_4BIT_TENSOR_CORE) {
        return fail(BNB_STATUS_UNSUPPORTED, std::string("algo: the CPU backend has no ") + algo_name(args.algo) +
                                                " kernel (its tiled kernel serves AUTO, GENERIC and DEQUANTIZE)");
    }
    const int64_t needed_bytes = workspace_bytes_for(args.dtype, args.algo, args.M, args.K);
    const bool use_workspace = args.workspace != nullptr && args.workspace_bytes >= needed_bytes;
    if (args.algo == BNB_GEMM_4BIT_DEQUANTIZE && !use_workspace) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    "workspace_bytes: BNB_GEMM_4BIT_DEQUANTIZE needs a workspace of at least " +
                        std::to_string(needed_bytes) + " bytes (bnb_gemm_4bit_workspace_size), got " +
                        std::to_string(args.workspace != nullptr ? args.workspace_bytes : 0));
    }

    float code[formats::kFourBitCodeEntries];
    for (int i = 0; i < formats::kFourBitCodeEntries; ++i) {
        const float value = args.code != nullptr              ? args.code[i]
                            : args.quant_type == BNB_QUANT_NF4 ? kNf4Values[i]
                                                               : fp4_value(static_cast<uint8_t>(i));
        code[i] = flush_denormal(value);
    }
    const int64_t weight_bytes = weight_bytes_for(args.dtype, args.algo, args.M);
    const Gemm4bitTilePlan plan = use_workspace
                              ? plan_for(args.M, args.K, weight_bytes, kWorkspaceTileRowBytes, kWorkspaceRowsOfA)
                              : plan_for(args.M, args.K, weight_bytes, kStackTileRowBytes, kStackRowsOfA);
    const int64_t m_blocks = (args.M + plan.m_block - 1) / plan.m_block;
    const Gemm4bitProblem problem{.dtype = args.dtype,
                          .A = args.A,
                          .B = args.B,
                          .code = code,
                          .absmax = args.absmax,
                          .absmax_8bit = args.absmax_8bit,
                          .absmax_code = args.absmax_code,
                          .absmax_offset = args.nested() ? args.absmax_offset[0] : 0.0f,
                          .nested_blocksize = formats::kNestedBlocksize,
                          .bias = args.bias,
                          .out = args.out,
                          .M = args.M,
                          .N = args.N,
                          .K = args.K,
                          .blocksize = args.blocksize,
                          .plan = plan,
                          .m_blocks = m_blocks};
    const int64_t items = (args.N + plan.tile_rows - 1) / plan.tile_rows * m_blocks;
    const int64_t weights = args.N * args.K;
    const int64_t work_per_weight = std::max<int64_t>(args.M, 1) + 4;
    const int64_t work = weights > std::numeric_limits<int64_t>::max() / work_per_weight
                             ? std::numeric_limits<int64_t>::max()
                             : weights * work_per_weight;
    const Gemm4bitRunItems run_items = run_items_for(args);
    // One share of scratch per slice of the items; a thread runs one or more whole slices.
    const int64_t slices = max_threads();
    auto* workspace = static_cast<uint8_t*>(args.workspace);
    const int64_t share = share_bytes(plan, weight_bytes);
    for_each_block_range(slices, work, kMinWorkPerThread, [&](int64_t first_slice, int64_t last_slice) {
        const DefaultFloatMode float_mode;
        // Untouched (so never paged in) when the workspace serves.
        alignas(64) float stack_scratch[kStackScratchFloats];
        for (int64_t slice = first_slice; slice < last_slice; ++slice) {
            void* scratch = use_workspace ? static_cast<void*>(workspace + slice * share) : stack_scratch;
            run_items(problem, items * slice / slices, items * (slice + 1) / slices, scratch);
        }
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status gemm_4bit_fused_max_rows(const Gemm4bitShape& shape, int64_t* max_rows) {
    *max_rows = float_weight_max_rows(shape.dtype, shape.algo);
    return BNB_STATUS_SUCCESS;
}

bnb_status gemm_4bit_workspace_size(const Gemm4bitShape& shape, int64_t* bytes) {
    const bool tiled = shape.algo != BNB_GEMM_4BIT_SIMT && shape.algo != BNB_GEMM_4BIT_TENSOR_CORE;
    *bytes = tiled && shape.M > 0 && shape.N > 0 ? workspace_bytes_for(shape.dtype, shape.algo, shape.M, shape.K) : 0;
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
