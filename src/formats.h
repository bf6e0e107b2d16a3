// Facts of the formats that every layer checks against: the blocksizes each op
// accepts and the nested blocksize (formats.md sections 2 and 3). The codebooks
// live in codebooks.h. Python reads these through the C ABI (bnb_op_blocksizes,
// bnb_nested_blocksize) instead of retyping them.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace bnb::formats {

using Blocksizes = std::initializer_list<int64_t>;

// The blocksizes an op accepts. Every backend takes `listed`. Where the format
// holds for blocks of any length (`any_positive`), a backend whose kernels find
// a value's block by division rather than by a shift (BackendOps::
// blocks_of_any_length) takes every positive blocksize as well: upstream's CPU
// path quantizes blockwise 8-bit in blocks of any positive size, its GPU
// kernels only in the listed powers of two.
struct BlocksizeRule {
    Blocksizes listed;
    bool any_positive = false;
};

inline constexpr Blocksizes kQuantizeBlockwiseBlocksizes = {64, 128, 256, 512, 1024, 2048, 4096};
// Dequantization indexes absmax by a shift on the GPU: any power of two that a
// quantizer (8-bit or 4-bit) or a caller of upstream's CPU path produces.
inline constexpr Blocksizes kDequantizeBlockwiseBlocksizes = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
// 4-bit blocks hold whole bytes of two codes; upstream rejects other sizes on every device.
inline constexpr Blocksizes kFourBitBlocksizes = {32, 64, 128, 256, 512, 1024, 2048, 4096};

inline constexpr BlocksizeRule kQuantizeBlockwiseRule = {kQuantizeBlockwiseBlocksizes, true};
inline constexpr BlocksizeRule kDequantizeBlockwiseRule = {kDequantizeBlockwiseBlocksizes, true};
inline constexpr BlocksizeRule kFourBitRule = {kFourBitBlocksizes, false};
// Ops without a blocksize argument.
inline constexpr BlocksizeRule kNoBlocksizes = {{}, false};

// quantize_4bit(compress_statistics=True) always nests absmax in blocks of 256.
inline constexpr int64_t kNestedBlocksize = 256;

// Entries of the blockwise 8-bit code and of a 4-bit codebook.
inline constexpr int64_t kBlockwiseCodeEntries = 256;
inline constexpr int64_t kFourBitCodeEntries = 16;

// LLM.int8() (formats.md section 5): codes span +-127; the dequantization
// constants are the float32 values upstream multiplies by (1/127 and 1/127^2).
inline constexpr float kInt8MaxCode = 127.0f;
inline constexpr float kInt8InverseMaxCode = 7.874015718698502e-3f;
inline constexpr float kInt8InverseMaxCodeSquared = 6.200012e-05f;

}  // namespace bnb::formats
