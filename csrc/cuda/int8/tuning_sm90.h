// Launch shapes and kernel choices of the LLM.int8() ops, chosen on an H200
// (sm_90, 132 SMs) from the measurements in benchmarks/RESULTS.md ("LLM.int8()").
// It is the only architecture measured, so every GPU uses it; another
// architecture's measurements become another tuning_sm<arch>.h chosen in select.cu.
#pragma once

#include <algorithm>
#include <cstdint>

namespace bnb::cuda::int8_tuning {

// ---- quantization ----------------------------------------------------------------------
constexpr int kQuantizeThreads = 256;
// Rows wider than this get a whole block each; narrower rows one warp each.
constexpr int64_t kWarpRowMaxCols = 2048;
// With outliers, up to this many rows are quantized by one block in one launch
// (column flags, rows, compaction); more rows take a column pass and a row pass,
// the row pass compacting the columns in its last block.
constexpr int64_t kSingleBlockRows = 16;
// Each thread keeps a maximum per row (128 registers at most).
constexpr int kSingleBlockThreads = 512;
// The column pass: one block per strip of 64 columns, 32 row slots of 8 lanes.
constexpr int kColumnStrip = 64;
constexpr int kColumnRowSlots = 32;
// Inputs taller than this split the column pass's rows across blocks, this many
// rows each (8 per row slot): one block per strip would read tall inputs with too
// few blocks to fill the GPU.
constexpr int64_t kColumnSplitRows = 256;

// ---- int8 products -----------------------------------------------------------------------
// Weight streaming (mma.sync m16n8k32, operands loaded straight into registers):
// a block owns 16 rows of B and up to 8 * kStreamMaxTiles rows of A, its warps
// splitting K. Up to kStreamMaxRows rows of A it reads B once at near copy
// bandwidth; above, cuBLASLt's tiled int8 GEMM plus the fused epilogue kernel.
constexpr int kStreamWarps = 8;
constexpr int kStreamMaxTiles = 8;
constexpr int64_t kStreamMaxRows = 8 * kStreamMaxTiles;

// Epilogue kernel (int32 product to the output dtype, with outlier columns): a
// block covers 32 rows x 64 columns, each thread 2 rows x 4 columns.
constexpr int kEpilogueThreads = 256;
constexpr int kEpilogueRows = 32;
constexpr int kEpilogueCols = 64;
constexpr int kOutlierChunk = 16;  // outlier columns staged in shared memory at a time
// With outliers, a block walks up to kEpilogueMaxRowTiles row tiles of its column
// strip (gathering the outlier weights once) while the grid still has
// kEpilogueBlocksPerSm blocks per SM.
constexpr int64_t kEpilogueMaxRowTiles = 16;
constexpr int64_t kEpilogueBlocksPerSm = 16;
inline int64_t epilogue_row_tiles_per_block(int64_t tiles, int sm_count) {
    const int64_t blocks = kEpilogueBlocksPerSm * sm_count;
    return std::clamp<int64_t>(tiles / blocks, 1, kEpilogueMaxRowTiles);
}

// cuBLASLt's own workspace for the int8 GEMM (NVIDIA's recommendation for Hopper).
inline int64_t cublaslt_workspace_bytes(int compute_capability) {
    return compute_capability >= 90 ? int64_t{32} << 20 : int64_t{4} << 20;
}

// Generic fallback (any shape, alignment or GPU): one output per thread.
constexpr int kGenericThreads = 256;

}  // namespace bnb::cuda::int8_tuning
