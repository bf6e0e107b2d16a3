// Facts of the formats that every layer checks against: the blocksizes each op
// accepts and the nested blocksize (formats.md sections 2 and 3). The codebooks
// live in codebooks.h. Python reads these through the C ABI (bnb_op_blocksizes,
// bnb_nested_blocksize) instead of retyping them.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace bnb::formats {

using Blocksizes = std::initializer_list<int64_t>;

inline constexpr Blocksizes kQuantizeBlockwiseBlocksizes = {64, 128, 256, 512, 1024, 2048, 4096};
// Dequantization indexes absmax by a shift on the GPU: any power of two that a
// quantizer (8-bit or 4-bit) or a caller of upstream's CPU path produces.
inline constexpr Blocksizes kDequantizeBlockwiseBlocksizes = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
inline constexpr Blocksizes kFourBitBlocksizes = {32, 64, 128, 256, 512, 1024, 2048, 4096};

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
