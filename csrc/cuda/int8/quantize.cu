// LLM.int8() row-wise quantization (int8_vectorwise_quant) and its column-wise
// companion (int8_double_quant), bit-identical to upstream (formats.md 5.1, 5.2).
//
// Launches:
//   threshold 0, row-wise only     one row pass
//   threshold 0, double quant      column pass (col_stats), row pass
//   threshold > 0, few rows        one block does everything (flags, rows, compaction)
//   threshold > 0, many rows       column pass (flags, col_stats), row pass whose last
//                                  block compacts the flags into outlier_cols
// The column flags are one byte per column in the last `cols` bytes of the
// outlier_cols buffer (cols int64 entries): with one column block per strip every
// byte is written by exactly one thread, so nothing needs clearing first (tall
// inputs split their rows and clear the flags with a memset first), and compacting in ascending order never
// overwrites a flag that is still to be read (entry j ends at byte 8 (j + 1) <=
// 7 cols + c_j + 1, the flag of the next column). Nothing is allocated and nothing
// waits on the host: a CUDA graph captures every path.
#include <algorithm>

#include "../cuda_ops.h"
#include "../quantize_common.cuh"
#include "tuning_sm90.h"

namespace bnb::cuda {
namespace {

namespace tune = int8_tuning;

struct QuantizeParams {
    const void* A;
    int64_t rows;
    int64_t cols;
    float threshold;
    int8_t* out_row;
    float* row_stats;
    int8_t* out_col;
    float* col_stats;
    int64_t* outlier_cols;
    int64_t* outlier_count;
    bool vector_ok;  // rows start 16-byte aligned in A and 8-byte aligned in the outputs
};

__device__ __forceinline__ uint8_t* column_flags(const QuantizeParams& p) {
    return reinterpret_cast<uint8_t*>(p.outlier_cols) + 7 * p.cols;
}

// The larger of two magnitudes (sign bits clear), compared as integers so that
// a NaN wins over everything: a NaN in a row or column makes its statistic NaN
// and so the matmul's output non-finite, where fmaxf (upstream) would drop it
// and give finite, wrong numbers.
__device__ __forceinline__ float max_magnitude(float a, float b) {
    return __int_as_float(max(__float_as_int(a), __float_as_int(b)));
}

// Max over the G threads of a row group (G = 32: one warp; G = blockDim.x: the
// block, through `scratch`, one float per warp).
template <int G>
__device__ __forceinline__ float group_max_of(float value, float* scratch) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) value = max_magnitude(value, __shfl_xor_sync(kFullWarp, value, offset));
    if constexpr (G > kWarpSize) {
        const int warp = threadIdx.x / kWarpSize;
        __syncthreads();  // scratch may still be read from the previous row
        if (threadIdx.x % kWarpSize == 0) scratch[warp] = value;
        __syncthreads();
        value = scratch[0];
        for (int w = 1; w < G / kWarpSize; ++w) value = max_magnitude(value, scratch[w]);
    }
    return value;
}

__device__ __forceinline__ int8_t saturate_int8(int q) { return static_cast<int8_t>(max(-127, min(127, q))); }

// out_col's arithmetic (formats.md 5.2): the multiply by 127 rounds to T, the
// division is IEEE (PyTorch's), the rounding half to even.
template <typename T>
__device__ __forceinline__ int8_t column_code(float a, float col_stat) {
    const float scaled = Element<T>::to_float(Element<T>::from_float(a * 127.0f));
    return saturate_int8(__float2int_rn(__fdiv_rn(scaled, col_stat)));
}

template <int V>
__device__ __forceinline__ void store_codes(int8_t* dst, const int8_t (&codes)[8], int64_t first, int64_t n,
                                            bool vector_ok) {
    if (vector_ok && first + 8 <= n) {
        uint2 packed;
        packed.x = (uint8_t)codes[0] | ((uint8_t)codes[1] << 8) | ((uint8_t)codes[2] << 16) | ((uint32_t)(uint8_t)codes[3] << 24);
        packed.y = (uint8_t)codes[4] | ((uint8_t)codes[5] << 8) | ((uint8_t)codes[6] << 16) | ((uint32_t)(uint8_t)codes[7] << 24);
        *reinterpret_cast<uint2*>(dst + first) = packed;
    } else {
        for (int j = 0; j < 8 && first + j < n; ++j) dst[first + j] = codes[j];
    }
}

// One row, quantized by the G threads of a group (`lane` in [0, G)).
// kZeroColumns: whole outlier columns are zero (more than one row), read from the
// flags a column pass wrote.
template <typename T, int G, bool kOutliers, bool kColumnWise, bool kZeroColumns>
__device__ void quantize_row(const QuantizeParams& p, int64_t row, int lane, float* scratch) {
    const T* A = static_cast<const T*>(p.A) + row * p.cols;
    const int64_t cols = p.cols;
    float absmax = 0.0f;
    for (int64_t first = int64_t{lane} * 8; first < cols; first += int64_t{G} * 8) {
        float v[8];
        load8(A, first, cols, p.vector_ok, v);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float a = fabsf(v[j]);
            if (!kOutliers || !(a >= p.threshold)) absmax = max_magnitude(absmax, a);
        }
    }
    absmax = group_max_of<G>(absmax, scratch);
    if (lane == 0) p.row_stats[row] = absmax;
    const float scale = __fdividef(127.0f, absmax);
    const uint8_t* flags = kZeroColumns ? column_flags(p) : nullptr;
    int8_t* out_row = p.out_row + row * cols;
    int8_t* out_col = kColumnWise ? p.out_col + row * cols : nullptr;
    for (int64_t first = int64_t{lane} * 8; first < cols; first += int64_t{G} * 8) {
        float v[8];
        load8(A, first, cols, p.vector_ok, v);
        int8_t codes[8];
        int8_t column_codes[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const bool outlier = kOutliers && fabsf(v[j]) >= p.threshold;
            const bool zero_column = kZeroColumns && first + j < cols && flags[first + j] != 0;
            codes[j] = outlier || zero_column ? 0 : static_cast<int8_t>(__float2int_rn(mul_ftz(v[j], scale)));
            if constexpr (kColumnWise) {
                column_codes[j] = first + j < cols ? column_code<T>(outlier ? 0.0f : v[j], p.col_stats[first + j]) : 0;
            }
        }
        store_codes<8>(out_row, codes, first, cols, p.vector_ok);
        if constexpr (kColumnWise) store_codes<8>(out_col, column_codes, first, cols, p.vector_ok);
    }
}

// Column stats and outlier flags of the 8 columns from `first` over rows
// [row_begin, row_end) in steps of `row_step`.
template <typename T, bool kOutliers>
__device__ __forceinline__ void scan_columns(const QuantizeParams& p, int64_t first, int64_t row_begin,
                                             int64_t row_end, int64_t row_step, float (&colmax)[8], bool (&flag)[8]) {
    const T* A = static_cast<const T*>(p.A);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        colmax[j] = 0.0f;
        flag[j] = false;
    }
    if (first >= p.cols) return;
    for (int64_t row = row_begin; row < row_end; row += row_step) {
        float v[8];
        load8(A + row * p.cols, first, p.cols, p.vector_ok, v);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float a = fabsf(v[j]);
            if (kOutliers && a >= p.threshold) {
                flag[j] = true;
            } else {
                colmax[j] = max_magnitude(colmax[j], a);
            }
        }
    }
}

// Writes the flagged columns ascending to outlier_cols and their number to
// *outlier_count; the whole block calls it, after every read of the flags.
__device__ void compact_flags(const QuantizeParams& p, int* scratch) {
    const uint8_t* flags = column_flags(p);
    constexpr int kPerThread = 8;
    int64_t total = 0;
    const int warps = blockDim.x / kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    for (int64_t tile = 0; tile < p.cols; tile += int64_t{blockDim.x} * kPerThread) {
        const int64_t first = tile + int64_t{threadIdx.x} * kPerThread;
        bool mine[kPerThread];
        int count = 0;
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
            mine[j] = first + j < p.cols && flags[first + j] != 0;
            count += mine[j];
        }
        // Exclusive scan of the counts over the block: within the warp, then the warps.
        int inclusive = count;
#pragma unroll
        for (int offset = 1; offset < kWarpSize; offset *= 2) {
            const int other = __shfl_up_sync(kFullWarp, inclusive, offset);
            if (lane >= offset) inclusive += other;
        }
        if (lane == kWarpSize - 1) scratch[warp] = inclusive;
        __syncthreads();  // every flag of this tile is read before any entry is written
        int before = inclusive - count;
        int tile_total = 0;
        for (int w = 0; w < warps; ++w) {
            if (w < warp) before += scratch[w];
            tile_total += scratch[w];
        }
        int64_t index = total + before;
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
            if (mine[j]) p.outlier_cols[index++] = first + j;
        }
        total += tile_total;
        __syncthreads();  // scratch is reused by the next tile
    }
    if (threadIdx.x == 0) *p.outlier_count = total;
}

// threshold 0, or the row pass after a column pass. With kOutliers, the last block
// to finish compacts the flags: *outlier_count (zeroed by the column pass) counts
// the finished blocks.
template <typename T, int G, bool kOutliers, bool kColumnWise, bool kZeroColumns>
__global__ void __launch_bounds__(tune::kQuantizeThreads) quantize_rows_kernel(QuantizeParams p) {
    __shared__ float scratch[tune::kQuantizeThreads / kWarpSize];
    __shared__ int compact_scratch[tune::kQuantizeThreads / kWarpSize];
    __shared__ bool last_block;
    constexpr int kRowsPerBlock = tune::kQuantizeThreads / G;
    const int64_t row = int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / G;
    if (row < p.rows) quantize_row<T, G, kOutliers, kColumnWise, kZeroColumns>(p, row, threadIdx.x % G, scratch);
    if constexpr (kOutliers) {
        __syncthreads();
        if (threadIdx.x == 0) {
            __threadfence();
            const unsigned long long finished =
                atomicAdd(reinterpret_cast<unsigned long long*>(p.outlier_count), 1ull);
            last_block = finished == gridDim.x - 1;
        }
        __syncthreads();
        if (last_block) {
            __threadfence();
            compact_flags(p, compact_scratch);
        }
    }
}

// One block per strip of 64 columns and split of the rows (gridDim.y splits):
// col_stats (double quant) and the outlier flags. With one split a block writes
// every column's result; with more, the host has zeroed both, and the splits
// combine by an integer atomicMax of the magnitudes (max_magnitude's order) and by
// setting flags. Block 0 also zeroes the row pass's finished-block counter.
template <typename T, bool kOutliers, bool kColumnWise>
__global__ void __launch_bounds__(tune::kColumnStrip / 8 * tune::kColumnRowSlots) quantize_columns_kernel(QuantizeParams p) {
    constexpr int kLanes = tune::kColumnStrip / 8;
    __shared__ float max_slots[tune::kColumnRowSlots][tune::kColumnStrip + 1];
    __shared__ bool flag_slots[tune::kColumnRowSlots][tune::kColumnStrip];
    const int slot = threadIdx.x / kLanes;
    const int lane = threadIdx.x % kLanes;
    const int64_t strip = int64_t{blockIdx.x} * tune::kColumnStrip;
    const int64_t split_rows = ceil_div(p.rows, int64_t{gridDim.y});
    const int64_t row_begin = int64_t{blockIdx.y} * split_rows;
    const int64_t row_end = std::min(p.rows, row_begin + split_rows);
    const bool split = gridDim.y > 1;
    float colmax[8];
    bool flag[8];
    scan_columns<T, kOutliers>(p, strip + lane * 8, row_begin + slot, row_end, tune::kColumnRowSlots, colmax, flag);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        max_slots[slot][lane * 8 + j] = colmax[j];
        flag_slots[slot][lane * 8 + j] = flag[j];
    }
    __syncthreads();
    if (threadIdx.x < tune::kColumnStrip && strip + threadIdx.x < p.cols) {
        float column_max = 0.0f;
        bool column_flag = false;
        for (int s = 0; s < tune::kColumnRowSlots; ++s) {
            column_max = max_magnitude(column_max, max_slots[s][threadIdx.x]);
            column_flag |= flag_slots[s][threadIdx.x];
        }
        const int64_t column = strip + threadIdx.x;
        if constexpr (kColumnWise) {
            if (split) {
                atomicMax(reinterpret_cast<int*>(p.col_stats + column), __float_as_int(column_max));
            } else {
                p.col_stats[column] = column_max;
            }
        }
        if constexpr (kOutliers) {
            if (!split || column_flag) column_flags(p)[column] = column_flag ? 1 : 0;
        }
    }
    if (kOutliers && blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *p.outlier_count = 0;
}

// Few rows with outliers (rows <= kSingleBlockRows): one block. Each thread owns 8
// columns over every row, so one read of A, with every row's load in flight at
// once, gives it its columns' outlier flags and col_stats and its share of every
// row's absmax; the row maxima are reduced over the block, the thread writes its
// columns' codes from a second read (L2), and the block compacts the flags. (A warp
// per row read a wide row in many dependent steps.) Measured on the H200
// (benchmarks/RESULTS.md): 4.8 / 9.1 us for one row of 4096 / 8192 columns, 18 / 50 us
// for 16 rows, where the loads of one thread still follow one another; issuing
// 8 rows' loads before any use (tried) was no faster for 16 rows and slower for one.
template <typename T, bool kColumnWise>
__global__ void __launch_bounds__(tune::kSingleBlockThreads) quantize_single_block_kernel(QuantizeParams p) {
    constexpr int kRows = static_cast<int>(tune::kSingleBlockRows);
    constexpr int kWarps = tune::kSingleBlockThreads / kWarpSize;
    __shared__ float warp_row_max[kWarps][kRows];
    __shared__ float row_absmax[kRows];
    __shared__ int compact_scratch[kWarps];
    uint8_t* flags = column_flags(p);
    const T* A = static_cast<const T*>(p.A);
    const int64_t cols = p.cols;
    const int rows = static_cast<int>(p.rows);
    const int64_t stride = int64_t{blockDim.x} * 8;
    float row_max[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) row_max[r] = 0.0f;
    for (int64_t first = int64_t{threadIdx.x} * 8; first < cols; first += stride) {
        float column_max[8] = {};
        bool flag[8] = {};
        BNB_UNROLL_WITH_EXIT
        for (int r = 0; r < kRows; ++r) {
            if (r >= rows) break;
            float v[8];
            load8(A + r * cols, first, cols, p.vector_ok, v);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const float a = fabsf(v[j]);
                if (a >= p.threshold) {
                    flag[j] = true;
                } else {
                    column_max[j] = max_magnitude(column_max[j], a);
                    row_max[r] = max_magnitude(row_max[r], a);
                }
            }
        }
        for (int j = 0; j < 8 && first + j < cols; ++j) {
            flags[first + j] = flag[j] ? 1 : 0;
            if constexpr (kColumnWise) p.col_stats[first + j] = column_max[j];
        }
    }
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float value = group_max_of<kWarpSize>(row_max[r], nullptr);
        if (lane == 0) warp_row_max[warp][r] = value;
    }
    __syncthreads();
    if (threadIdx.x < rows) {
        float value = warp_row_max[0][threadIdx.x];
        for (int w = 1; w < kWarps; ++w) value = max_magnitude(value, warp_row_max[w][threadIdx.x]);
        row_absmax[threadIdx.x] = value;
        p.row_stats[threadIdx.x] = value;
    }
    __syncthreads();
    for (int64_t first = int64_t{threadIdx.x} * 8; first < cols; first += stride) {
        // This thread's own flags and col_stats from the first read.
        bool zero_column[8];
        float column_stat[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const bool inside = first + j < cols;
            zero_column[j] = rows > 1 && inside && flags[first + j] != 0;
            column_stat[j] = kColumnWise && inside ? p.col_stats[first + j] : 0.0f;
        }
        BNB_UNROLL_WITH_EXIT
        for (int r = 0; r < kRows; ++r) {
            if (r >= rows) break;
            float v[8];
            load8(A + r * cols, first, cols, p.vector_ok, v);
            const float scale = __fdividef(127.0f, row_absmax[r]);
            int8_t codes[8];
            int8_t column_codes[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const bool outlier = fabsf(v[j]) >= p.threshold;
                codes[j] = outlier || zero_column[j] ? 0 : static_cast<int8_t>(__float2int_rn(mul_ftz(v[j], scale)));
                if constexpr (kColumnWise) {
                    column_codes[j] = first + j < cols ? column_code<T>(outlier ? 0.0f : v[j], column_stat[j]) : 0;
                }
            }
            store_codes<8>(p.out_row + r * cols, codes, first, cols, p.vector_ok);
            if constexpr (kColumnWise) store_codes<8>(p.out_col + r * cols, column_codes, first, cols, p.vector_ok);
        }
    }
    __syncthreads();  // every flag is written before the compaction reads them
    compact_flags(p, compact_scratch);
}

template <typename T, int G, bool kOutliers, bool kColumnWise, bool kZeroColumns>
void launch_rows(const QuantizeParams& p, cudaStream_t stream) {
    constexpr int kRowsPerBlock = tune::kQuantizeThreads / G;
    const int64_t blocks = ceil_div(p.rows, kRowsPerBlock);
    quantize_rows_kernel<T, G, kOutliers, kColumnWise, kZeroColumns>
        <<<static_cast<unsigned>(blocks), tune::kQuantizeThreads, 0, stream>>>(p);
}

template <typename T, bool kOutliers, bool kColumnWise, bool kZeroColumns>
void launch_rows_for_width(const QuantizeParams& p, cudaStream_t stream) {
    if (p.cols <= tune::kWarpRowMaxCols) {
        launch_rows<T, kWarpSize, kOutliers, kColumnWise, kZeroColumns>(p, stream);
    } else {
        launch_rows<T, tune::kQuantizeThreads, kOutliers, kColumnWise, kZeroColumns>(p, stream);
    }
}

// The column pass, its rows split across blocks when there are many (the
// splits' results are combined into zeroed statistics and flags). Returns the
// clearing's error (the launch's is the stream's last error).
template <typename T, bool kOutliers, bool kColumnWise>
cudaError_t launch_columns(const QuantizeParams& p, cudaStream_t stream) {
    constexpr int kColumnThreads = tune::kColumnStrip / 8 * tune::kColumnRowSlots;
    const dim3 grid(static_cast<unsigned>(ceil_div(p.cols, tune::kColumnStrip)),
                    static_cast<unsigned>(std::min<int64_t>(ceil_div(p.rows, tune::kColumnSplitRows), 65535)));
    cudaError_t cleared = cudaSuccess;
    if (grid.y > 1 && kColumnWise) cleared = cudaMemsetAsync(p.col_stats, 0, p.cols * sizeof(float), stream);
    if (grid.y > 1 && kOutliers && cleared == cudaSuccess) {
        cleared = cudaMemsetAsync(reinterpret_cast<uint8_t*>(p.outlier_cols) + 7 * p.cols, 0, p.cols, stream);
    }
    if (cleared != cudaSuccess) return cleared;
    quantize_columns_kernel<T, kOutliers, kColumnWise><<<grid, kColumnThreads, 0, stream>>>(p);
    return cudaSuccess;
}

// Returns the first error of a memset (kernel launches: the stream's last error).
template <typename T, bool kColumnWise>
cudaError_t launch_quantize(const QuantizeParams& p, bool outliers, cudaStream_t stream) {
    cudaError_t cleared = cudaSuccess;
    if (!outliers) {
        if constexpr (kColumnWise) cleared = launch_columns<T, false, true>(p, stream);
        if (cleared == cudaSuccess) launch_rows_for_width<T, false, kColumnWise, false>(p, stream);
    } else if (p.rows <= tune::kSingleBlockRows) {
        quantize_single_block_kernel<T, kColumnWise><<<1, tune::kSingleBlockThreads, 0, stream>>>(p);
    } else {
        cleared = launch_columns<T, true, kColumnWise>(p, stream);
        if (cleared == cudaSuccess) launch_rows_for_width<T, true, kColumnWise, true>(p, stream);
    }
    return cleared;
}

bnb_status quantize(const Int8QuantizeArgs& args, const char* op) {
    const DeviceGuard guard(args.device.index);
    const int64_t element = dtype_size(args.dtype);
    const QuantizeParams params{args.A,          args.rows,      args.cols,         args.threshold,
                                args.out_row,    args.row_stats, args.out_col,      args.col_stats,
                                args.outlier_cols, args.outlier_count,
                                is_aligned(args.A, 16) && (args.cols * element) % 16 == 0 && args.cols % 8 == 0 &&
                                    is_aligned(args.out_row, 8) && (!args.column_wise || is_aligned(args.out_col, 8))};
    const cudaStream_t stream = to_stream(args.stream);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const cudaError_t cleared = args.column_wise ? launch_quantize<T, true>(params, args.outliers(), stream)
                                                     : launch_quantize<T, false>(params, args.outliers(), stream);
        if (cleared != cudaSuccess) return check_cuda(cleared, op);
        return check_launch(op);
    });
}

}  // namespace

bnb_status int8_vectorwise_quant(const Int8QuantizeArgs& args) { return quantize(args, "int8_vectorwise_quant"); }

bnb_status int8_double_quant(const Int8QuantizeArgs& args) { return quantize(args, "int8_double_quant"); }

}  // namespace bnb::cuda
