// Pieces shared by the quantizers (blockwise 8-bit and 4-bit) and dequantizers:
// the 8-element loads, the per-block absmax reduction, the 8-bit code search
// (also the optimizers' requantization), the 4-bit encoders and the 16-byte stores.
#pragma once

#include <type_traits>

#include "cuda_common.cuh"
#include "tuning.h"

namespace bnb::cuda {

// ---- loads and stores ----------------------------------------------------------------

// v[j] = A[first + j] as float32 for j < 8; elements at or past n read as 0.
// `vector_ok`: A is 16-byte aligned, so full groups load with 16-byte accesses.
template <typename T>
__device__ __forceinline__ void load8(const T* __restrict__ A, int64_t first, int64_t n, bool vector_ok,
                                      float (&v)[8]) {
    if (vector_ok && first + 8 <= n) {
        if constexpr (sizeof(T) == 4) {
            const float4 low = __ldg(reinterpret_cast<const float4*>(A + first));
            const float4 high = __ldg(reinterpret_cast<const float4*>(A + first + 4));
            v[0] = low.x; v[1] = low.y; v[2] = low.z; v[3] = low.w;
            v[4] = high.x; v[5] = high.y; v[6] = high.z; v[7] = high.w;
        } else {
            const uint4 raw = __ldg(reinterpret_cast<const uint4*>(A + first));
            const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
            for (int w = 0; w < 4; ++w) {
                v[2 * w] = Element<T>::low_of(words[w]);
                v[2 * w + 1] = Element<T>::high_of(words[w]);
            }
        }
    } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = first + j < n ? Element<T>::to_float(A[first + j]) : 0.0f;
    }
}

// Elements of T in one 16-byte vector.
template <typename T>
constexpr int kPerVector = 16 / static_cast<int>(sizeof(T));

// Rounds values to T and stores them as one 16-byte vector at dst (16-byte aligned).
template <typename T>
__device__ __forceinline__ void store_vector(T* dst, const float (&values)[kPerVector<T>]) {
    if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float4*>(dst) = make_float4(values[0], values[1], values[2], values[3]);
    } else {
        uint4 packed;
        packed.x = Element<T>::pack2(values[0], values[1]);
        packed.y = Element<T>::pack2(values[2], values[3]);
        packed.z = Element<T>::pack2(values[4], values[5]);
        packed.w = Element<T>::pack2(values[6], values[7]);
        *reinterpret_cast<uint4*>(dst) = packed;
    }
}

// ---- absmax of a quantization block -----------------------------------------------------

// Max of `value` over the `group` consecutive threads (a power of two, 4 to 512,
// dividing blockDim.x) that hold one quantization block. fmaxf drops NaN, as
// upstream's reduction does. Every thread of the block must call it.
__device__ __forceinline__ float group_max(float value, int group, float* warp_scratch) {
    const int lanes = group < kWarpSize ? group : kWarpSize;
    for (int offset = 1; offset < lanes; offset <<= 1) {
        value = fmaxf(value, __shfl_xor_sync(kFullWarp, value, offset));
    }
    if (group <= kWarpSize) return value;
    const int warp = threadIdx.x / kWarpSize;
    if (threadIdx.x % kWarpSize == 0) warp_scratch[warp] = value;
    __syncthreads();
    const int warps = group / kWarpSize;
    const int first = warp / warps * warps;
    float result = warp_scratch[first];
    for (int w = 1; w < warps; ++w) result = fmaxf(result, warp_scratch[first + w]);
    return result;
}

// |v| reduced into `local` (subnormals flush to 0 under fast math, as upstream).
__device__ __forceinline__ float absmax8(const float (&v)[8]) {
    float local = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) local = fmaxf(local, fabsf(v[j]));
    return local;
}

// ---- 8-bit code search (formats.md section 2, step 4) ---------------------------------------

constexpr int kCodeSize = 256;
constexpr int kSearchLevels = 7;
constexpr int kTreeNodes = (1 << kSearchLevels) - 1;  // the pivots compared during the descent

// Upstream's deterministic code search (dQuantize) visits the pivots of a fixed
// binary tree: 127, then 127 -+ 64, ... (odd indices), ending on an even leaf p.
// The tree is stored breadth-first (node i has children 2i + 1 and 2i + 2), so
// the lanes of a warp read distinct banks at every level. Node (level l,
// position k) is pivot (2k + 1) * 2^(7 - l) - 1.
__device__ __forceinline__ int tree_pivot(int node) {
    const int level = 31 - __clz(node + 1);
    const int position = node + 1 - (1 << level);
    return ((2 * position + 1) << (kSearchLevels - level)) - 1;
}

// The upper bracket of the top leaf (p = 254, reached when s exceeds every pivot):
// quantize_blockwise substitutes code[255] for it, the optimizers' requantization
// (formats.md section 6.0) keeps the search's start value 1.0.
enum class TopBracket { kCode, kOne };

// The bracketing values upstream keeps (last pivot below and above s) are the
// leaf's in-order neighbours p - 1 and p + 1, except at the top as above; at the
// bottom (p = 0) the result is 0 whatever the lower bracket.
template <TopBracket kTop>
__device__ __forceinline__ uint32_t search_code(const float* tree, const float* code, float s) {
    int node = 0;
#pragma unroll
    for (int level = 0; level < kSearchLevels; ++level) node = 2 * node + (s > tree[node] ? 2 : 1);
    const int p = 2 * (node - kTreeNodes);
    const float value = code[p];
    if (s > value) {
        const float upper = kTop == TopBracket::kOne && p == kCodeSize - 2 ? 1.0f : code[p + 1];
        return static_cast<uint32_t>(s > (upper + value) * 0.5f ? p + 1 : p);
    }
    if (p == 0) return 0;
    return static_cast<uint32_t>(s < (code[p - 1] + value) * 0.5f ? p - 1 : p);
}

// ---- the same search through buckets of the value's float bits -----------------------------
//
// For a code whose 255 decision thresholds t_i = (upper_i + code[i]) / 2 (computed
// as above) satisfy code[i] < t_i < code[i + 1], the descent's result is the number
// of thresholds s passes: s > t_i for even i, s >= t_i for odd i (the descent's
// ties go to the even leaf). The thresholds are then increasing, so the ones below
// the bucket of s are all passed, the ones above it none, and only those inside the
// bucket are compared: one table read plus, for the dynamic maps, about one
// comparison, where the descent reads 9 dependent entries. Every comparison is the
// descent's (flushed to zero under fast math), so zero and subnormals share one
// bucket; NaN gives code 0, as the descent. A code breaking the condition (unsorted,
// repeated entries, NaN) keeps the descent: the tables record which applies.
//
// Buckets: 32 per octave of |s| in [2^-24, 1), one below (normal magnitudes), one
// for [1, inf], per sign, and the zero/subnormal bucket between the two signs, so
// that the bucket index grows with s.
constexpr int kBucketMantissaBits = 5;
constexpr int kBucketOctaves = 24;
constexpr int kBucketsPerSign = (kBucketOctaves << kBucketMantissaBits) + 2;
constexpr int kCodeBuckets = 2 * kBucketsPerSign + 1;
constexpr int kThresholds = kCodeSize - 1;

__device__ __forceinline__ int code_bucket(float s) {
    const uint32_t bits = __float_as_uint(s);
    const uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude < 0x00800000u) return kBucketsPerSign;  // zero, subnormal
    const int octave_step = static_cast<int>(magnitude >> (23 - kBucketMantissaBits)) -
                            ((127 - kBucketOctaves) << kBucketMantissaBits) + 1;
    const int step = min(max(octave_step, 0), kBucketsPerSign - 1);
    return bits >> 31 ? kBucketsPerSign - 1 - step : kBucketsPerSign + 1 + step;
}

struct CodeBuckets {
    float threshold[kThresholds];
    uint8_t first[kCodeBuckets + 1];  // thresholds in buckets below; [k + 1] ends bucket k
    int exact;                        // the condition holds: search by buckets
    int sign_prefix;                  // exact: codes below this one have the sign bit set
};

// Fills `buckets` for the code in shared memory (visible to the block); every thread
// of the block calls it, and it ends with the tables visible.
template <TopBracket kTop>
__device__ void build_code_buckets(CodeBuckets& buckets, const float* code) {
    bool holds = true;
    for (int i = threadIdx.x; i < kThresholds; i += blockDim.x) {
        const float upper = kTop == TopBracket::kOne && i == kCodeSize - 2 ? 1.0f : code[i + 1];
        const float threshold = (upper + code[i]) * 0.5f;
        buckets.threshold[i] = threshold;
        holds = holds && code[i] < threshold && (i == kCodeSize - 2 || threshold < code[i + 1]);
    }
    if (threadIdx.x == 0) buckets.sign_prefix = __float_as_uint(code[0]) >> 31 ? kCodeSize : 0;
    const int exact = __syncthreads_and(holds);
    // The sign bits of an increasing code change once, from set to clear.
    for (int i = threadIdx.x; i < kThresholds; i += blockDim.x) {
        if ((__float_as_uint(code[i]) >> 31) && !(__float_as_uint(code[i + 1]) >> 31)) buckets.sign_prefix = i + 1;
    }
    if (exact) {
        for (int k = threadIdx.x; k <= kCodeBuckets; k += blockDim.x) {
            int low = 0;  // the first threshold in bucket k or above
            int high = kThresholds;
            while (low < high) {
                const int middle = (low + high) / 2;
                if (code_bucket(buckets.threshold[middle]) < k) {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            buckets.first[k] = static_cast<uint8_t>(low);
        }
    }
    if (threadIdx.x == 0) buckets.exact = exact;
    __syncthreads();
}

// search_code's result, through the buckets when they apply (tree, code: search_code's tables).
template <TopBracket kTop>
__device__ __forceinline__ uint32_t find_code(const CodeBuckets& buckets, const float* tree, const float* code,
                                              float s) {
    if (!buckets.exact) return search_code<kTop>(tree, code, s);
    const int bucket = code_bucket(s);
    const uint32_t first = buckets.first[bucket];
    const uint32_t end = buckets.first[bucket + 1];
    uint32_t passed = first;
    for (uint32_t i = first; i < end; ++i) {
        const float threshold = buckets.threshold[i];
        passed += (i & 1u) ? s >= threshold : s > threshold;
    }
    return (__float_as_uint(s) & 0x7fffffffu) > 0x7f800000u ? 0u : passed;
}

// ---- 4-bit encoders (formats.md section 3.1) -----------------------------------------------
//
// The range of the scaled value is cut into equal cells that each hold at most one
// decision threshold, none closer than 0.03 cell widths to a cell edge, so that
//   code = base[cell] + (s > threshold[cell])
// is exact whatever rounding the cell index suffers. NF4 cells cover s in [-1, 1],
// FP4 cells |s| in [0, 1]; out-of-range values clamp to the end cells and NaN to
// cell 0, which give upstream's codes (checked against the threshold rule at
// every threshold and its float32 neighbours by tests/python/test_kernel_agreement.py
// and test_cuda_kernels.py, which compare with the CPU backend).

constexpr int kNf4Cells = 32;
constexpr int kFp4Cells = 16;
constexpr int kMaxCells = 32;

struct EncoderCells {
    float threshold[kMaxCells];  // +inf where the cell holds no threshold
    uint32_t base[kMaxCells];    // code (NF4) or magnitude rank (FP4) at the cell's lower edge
};

// Cell tables of a quant type, from the thresholds of codebooks.h.
inline EncoderCells encoder_cells(bnb_quant_type quant_type) {
    EncoderCells cells{};
    const bool nf4 = quant_type == BNB_QUANT_NF4;
    const int count = nf4 ? kNf4Cells : kFp4Cells;
    const float* thresholds = nf4 ? kNf4Thresholds : kFp4MagnitudeThresholds;
    const int threshold_count = nf4 ? 15 : 7;
    for (int cell = 0; cell < kMaxCells; ++cell) {
        const float low = nf4 ? cell / 16.0f - 1.0f : cell / 16.0f;
        const float high = low + 1.0f / 16.0f;
        cells.threshold[cell] = __builtin_huge_valf();
        cells.base[cell] = 0;
        if (cell >= count) continue;
        for (int k = 0; k < threshold_count; ++k) {
            if (thresholds[k] < low) cells.base[cell] += 1;
            else if (thresholds[k] < high) cells.threshold[cell] = thresholds[k];
        }
    }
    return cells;
}

// The cell table in shared memory, one copy per lane (no bank conflicts):
// entry (cell, lane) = {threshold, base as float bits}.
struct CellTable {
    float2 entries[kMaxCells][kWarpSize];
};

__device__ __forceinline__ void fill_cell_table(CellTable& table, const EncoderCells& cells) {
    for (int i = threadIdx.x; i < kMaxCells * kWarpSize; i += blockDim.x) {
        const int cell = i / kWarpSize;
        table.entries[cell][i % kWarpSize] = make_float2(cells.threshold[cell], __uint_as_float(cells.base[cell]));
    }
    __syncthreads();
}

__device__ __forceinline__ const float2* cell_column(const CellTable& table) {
    return &table.entries[0][threadIdx.x % kWarpSize];
}

// kFp4MagnitudeIndexAbove as nibbles indexed by rank (rank 0 -> index 0).
constexpr uint32_t fp4_rank_to_index() {
    uint32_t packed = 0;
    for (int rank = 1; rank <= 7; ++rank) packed |= uint32_t{kFp4MagnitudeIndexAbove[rank - 1]} << (4 * rank);
    return packed;
}

// NF4: the number of thresholds that s exceeds (strict >); NaN gives 0.
__device__ __forceinline__ uint32_t encode_nf4(const float2* column, float s) {
    const float position = fminf(fmaxf(fmaf(s, 16.0f, 16.0f), 0.0f), static_cast<float>(kNf4Cells - 1));
    const float2 entry = column[__float2int_rz(position) * kWarpSize];
    return __float_as_uint(entry.y) + (s > entry.x ? 1u : 0u);
}

// FP4: sign bit 8 for s < 0 (so -0, NaN and flushed negatives are positive), then
// the magnitude index of the rank of |s| among the 7 increasing thresholds.
__device__ __forceinline__ uint32_t encode_fp4(const float2* column, float s) {
    constexpr uint32_t kRankToIndex = fp4_rank_to_index();
    const float magnitude = fabsf(s);
    const float position = fminf(fmaxf(magnitude * 16.0f, 0.0f), static_cast<float>(kFp4Cells - 1));
    const float2 entry = column[__float2int_rz(position) * kWarpSize];
    const uint32_t rank = __float_as_uint(entry.y) + (magnitude > entry.x ? 1u : 0u);
    return ((kRankToIndex >> (4u * rank)) & 7u) | (s < 0.0f ? 8u : 0u);
}

template <bnb_quant_type Q>
__device__ __forceinline__ uint32_t encode_4bit(const float2* column, float s) {
    return Q == BNB_QUANT_NF4 ? encode_nf4(column, s) : encode_fp4(column, s);
}

}  // namespace bnb::cuda
