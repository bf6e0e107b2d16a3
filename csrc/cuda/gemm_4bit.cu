// The 4-bit inference matmul: out = A @ dequant(W).T (+ bias) without
// materialising W. Three kernels, chosen per shape by tuning.h:
//   SIMT         few rows of A (decode): lanes stream W in 32-element chunks;
//   tensor core  fp16/bf16 up to 64 rows: W dequantized in registers straight into
//                mma.m16n8k16 fragments;
//   generic      any shape or alignment (correct, slow).
// Larger batches are faster as dequantize + dense GEMM, which the caller runs
// (bnb_gemm_4bit_fused_max_rows says where the crossover is).
#include <algorithm>
#include <type_traits>

#include "cuda_ops.h"
#include "quantize_common.cuh"

#if !defined(__HIPCC__) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define BNB_HAS_MMA_M16N8K16 1
#endif

namespace bnb::cuda {
namespace {

constexpr int kChunk = 32;            // consecutive k of one 16-byte load of W
constexpr int kNestedBlocksize = 256;  // the nested statistics' blocksize (formats.md 3.3)

struct GemmParams {
    const void* A;
    const uint8_t* B;
    const float* absmax;
    const uint8_t* absmax_8bit;
    const float* absmax_code;
    const float* absmax_offset;
    const void* bias;
    void* out;
    const float* code;  // or null: codebook
    int64_t M;
    int64_t N;
    int64_t K;
    int log2_blocksize;
    Codebook16 codebook;
};

// The statistics of one quantization block as loaded: its absmax, or (nested) the
// 8-bit code and the float32 absmax of its group of 256 blocks.
struct RawScale {
    float absmax;
    uint32_t code;
};

// Scale of quantization block j. load() only issues independent global loads, so
// that a prefetch never waits; scale() de-nests with the same two roundings as
// dequantize_blockwise + offset.
template <bool NESTED>
struct Scales {
    const float* absmax;
    const uint8_t* absmax_8bit;
    const float* nested_code;  // shared memory
    float offset;

    __device__ __forceinline__ RawScale load(int64_t block) const {
        if constexpr (NESTED) {
            return {__ldg(absmax + block / kNestedBlocksize), __ldg(absmax_8bit + block)};
        } else {
            return {__ldg(absmax + block), 0u};
        }
    }

    __device__ __forceinline__ float scale(const RawScale& raw) const {
        if constexpr (NESTED) {
            return __fadd_rn(mul_ftz(nested_code[raw.code], raw.absmax), offset);
        } else {
            return raw.absmax;
        }
    }

    __device__ __forceinline__ float operator()(int64_t block) const { return scale(load(block)); }
};

template <bool NESTED>
__device__ __forceinline__ Scales<NESTED> load_scales(const GemmParams& p, float* nested_code) {
    if constexpr (NESTED) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) nested_code[i] = p.absmax_code[i];
        return {p.absmax, p.absmax_8bit, nested_code, __ldg(p.absmax_offset)};
    } else {
        return {p.absmax, nullptr, nullptr, 0.0f};
    }
}

template <typename T>
__device__ __forceinline__ float bias_of(const GemmParams& p, int64_t n) {
    return p.bias != nullptr ? Element<T>::to_float(static_cast<const T*>(p.bias)[n]) : 0.0f;
}

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullWarp, value, offset);
    return value;
}

// ---- generic ------------------------------------------------------------------------------

// One warp per output element; nibbles addressed by flat index, so any K and
// any alignment work.
template <typename T, bool NESTED>
__global__ void __launch_bounds__(256) gemm_4bit_generic_kernel(GemmParams p) {
    __shared__ float table[16];
    __shared__ float nested_code[NESTED ? 256 : 1];
    for (int i = threadIdx.x; i < 16; i += blockDim.x) table[i] = p.code != nullptr ? p.code[i] : p.codebook.values[i];
    const Scales<NESTED> scales = load_scales<NESTED>(p, nested_code);
    __syncthreads();
    const T* A = static_cast<const T*>(p.A);
    T* out = static_cast<T*>(p.out);
    const int lane = threadIdx.x % kWarpSize;
    const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarpSize;
    for (int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize; w < p.M * p.N;
         w += warps) {
        const int64_t m = w / p.N;
        const int64_t n = w % p.N;
        float acc = 0.0f;
        for (int64_t k = lane; k < p.K; k += kWarpSize) {
            const int64_t i = n * p.K + k;
            const uint32_t byte = p.B[i / 2];
            const uint32_t code = (i & 1) ? (byte & 15u) : (byte >> 4);
            const float weight = mul_ftz(table[code], scales(i >> p.log2_blocksize));
            acc = fmaf(weight, Element<T>::to_float(A[m * p.K + k]), acc);
        }
        acc = warp_sum(acc);
        if (lane == 0) out[m * p.N + n] = Element<T>::from_float(acc + bias_of<T>(p, n));
    }
}

// ---- SIMT ------------------------------------------------------------------------------------

// 16-byte vectors of A per 32-element chunk.
template <typename T>
constexpr int kChunkVectors = kChunk * static_cast<int>(sizeof(T)) / 16;

// sum_j a[j] * weights[j] over one chunk of A held in registers.
template <typename T>
__device__ __forceinline__ float dot_chunk(const uint4 (&a)[kChunkVectors<T>], const float (&weights)[kChunk]) {
    float sum = 0.0f;
#pragma unroll
    for (int v = 0; v < kChunkVectors<T>; ++v) {
        const uint32_t words[4] = {a[v].x, a[v].y, a[v].z, a[v].w};
        if constexpr (sizeof(T) == 4) {
#pragma unroll
            for (int w = 0; w < 4; ++w) sum = fmaf(__uint_as_float(words[w]), weights[4 * v + w], sum);
        } else {
#pragma unroll
            for (int w = 0; w < 4; ++w) {
                sum = fmaf(Element<T>::low_of(words[w]), weights[8 * v + 2 * w], sum);
                sum = fmaf(Element<T>::high_of(words[w]), weights[8 * v + 2 * w + 1], sum);
            }
        }
    }
    return sum;
}

template <typename T>
__device__ __forceinline__ void load_chunk(const T* __restrict__ a, uint4 (&out)[kChunkVectors<T>]) {
#pragma unroll
    for (int v = 0; v < kChunkVectors<T>; ++v) out[v] = __ldg(reinterpret_cast<const uint4*>(a) + v);
}

// Chunks a lane keeps in flight: one row of A fits in registers for 4 chunks of
// 16-bit values (2 of float32); with more rows A is re-read from L1 instead.
template <typename T, int MAX_ROWS>
constexpr int simt_unroll() {
    return MAX_ROWS == 1 && sizeof(T) == 4 ? 2 : 4;
}

// One warp per weight row n, for up to MAX_ROWS rows of A. Lane l takes the
// 32-element chunks l, l + 32, ... of the row: a 16-byte load of W and one scale
// per chunk, UNROLL chunks loaded before any is used; codebook values come from
// a per-lane table and each chunk's dot product is scaled once.
template <typename T, int MAX_ROWS, bool NESTED>
__global__ void __launch_bounds__(tuning::kSimtWarpsPerBlock* kWarpSize) gemm_4bit_simt_kernel(GemmParams p) {
    constexpr int kUnroll = simt_unroll<T, MAX_ROWS>();
    constexpr bool kHoistA = MAX_ROWS == 1;
    __shared__ LaneTable table;
    __shared__ float nested_code[NESTED ? 256 : 1];
    const Scales<NESTED> scales = load_scales<NESTED>(p, nested_code);
    fill_lane_table(table, p.code, p.codebook);
    const float* column = lane_column(table);
    const T* A = static_cast<const T*>(p.A);
    const int lane = threadIdx.x % kWarpSize;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * tuning::kSimtWarpsPerBlock + threadIdx.x / kWarpSize;
    if (row >= p.N) return;
    const int rows_of_A = static_cast<int>(p.M);
    const int64_t chunks = p.K / kChunk;
    const int64_t row_first = row * p.K;
    float acc[MAX_ROWS];
#pragma unroll
    for (int m = 0; m < MAX_ROWS; ++m) acc[m] = 0.0f;
    for (int64_t base = lane; base < chunks; base += int64_t{kWarpSize} * kUnroll) {
        uint4 packed[kUnroll];
        RawScale raw[kUnroll];
        uint4 act[kHoistA ? kUnroll : 1][kChunkVectors<T>];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t chunk = base + u * kWarpSize;
            packed[u] = make_uint4(0, 0, 0, 0);
            raw[u] = {0.0f, 0u};
            if (chunk < chunks) {
                const int64_t element = row_first + chunk * kChunk;
                packed[u] = __ldg(reinterpret_cast<const uint4*>(p.B + element / 2));
                raw[u] = scales.load(element >> p.log2_blocksize);
                if constexpr (kHoistA) load_chunk<T>(A + chunk * kChunk, act[u]);
            }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t chunk = base + u * kWarpSize;
            if (chunk < chunks) {
                float weights[kChunk];
                const uint32_t words[4] = {packed[u].x, packed[u].y, packed[u].z, packed[u].w};
#pragma unroll
                for (int b = 0; b < kChunk / 2; ++b) {
                    const uint32_t byte = (words[b / 4] >> (8 * (b % 4))) & 0xffu;
                    weights[2 * b] = column[(byte >> 4) * kWarpSize];
                    weights[2 * b + 1] = column[(byte & 15u) * kWarpSize];
                }
                const float scale = scales.scale(raw[u]);
                if constexpr (kHoistA) {
                    acc[0] = fmaf(dot_chunk<T>(act[u], weights), scale, acc[0]);
                } else {
#pragma unroll
                    for (int m = 0; m < MAX_ROWS; ++m) {
                        if (m < rows_of_A) {
                            uint4 a[kChunkVectors<T>];
                            load_chunk<T>(A + m * p.K + chunk * kChunk, a);
                            acc[m] = fmaf(dot_chunk<T>(a, weights), scale, acc[m]);
                        }
                    }
                }
            }
        }
    }
    T* out = static_cast<T*>(p.out);
#pragma unroll
    for (int m = 0; m < MAX_ROWS; ++m) {
        const float sum = warp_sum(acc[m]);
        if (lane == 0 && m < rows_of_A) out[m * p.N + row] = Element<T>::from_float(sum + bias_of<T>(p, row));
    }
}

// ---- tensor cores ------------------------------------------------------------------------------
//
// mma.m16n8k16 with W as the 16x16 A operand and A^T as the 16x8 B operand, so
// that 16 weight rows fill the M side and up to 8 rows of A the N side.
// The k order inside a step is free as long as both operands agree, so thread
// (group g, index t) loads 16 consecutive bytes (32 k) of its weight rows and
// uses bytes 2s, 2s+1 in step s: slots {2t, 2t+1} hold k = 32t + 4s + {0, 1} and
// slots {2t+8, 2t+9} hold k = 32t + 4s + {2, 3}. Its B fragments are then the
// consecutive A elements at the same k: words 2s and 2s+1 of A's 32-element run.

template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(BNB_HAS_MMA_M16N8K16)
    if constexpr (std::is_same_v<T, bf16>) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
#endif
}

// The codebook by packed byte: entry b holds the values of b's two nibbles as a
// pair of T (high nibble in the low half, the k order of the fragments), so one
// shared-memory load and one paired multiply dequantize two weights. The kernel is
// bound by instruction issue (Nsight Compute on the H100: SM throughput 73%, DRAM
// 39% at 28672x8192), and this halves the instructions per weight of a per-nibble
// float lookup. Each entry is stored kPairCopies times and lane l reads copy
// l % kPairCopies: copy c of entry b is in bank (16 b + c) % 32, so lanes collide
// only in pairs (l, l + 16) whose bytes differ but have the same parity.
constexpr int kPairCopies = 16;
using PairTable = uint32_t[256][kPairCopies];

template <typename T>
__device__ __forceinline__ void fill_pair_table(PairTable& table, const float* code, const Codebook16& codebook) {
    for (int i = threadIdx.x; i < 256 * kPairCopies; i += blockDim.x) {
        const int byte = i / kPairCopies;
        const float high = code != nullptr ? code[byte >> 4] : codebook.values[byte >> 4];
        const float low = code != nullptr ? code[byte & 15] : codebook.values[byte & 15];
        table[byte][i % kPairCopies] = Element<T>::pack2(high, low);
    }
}

// a * b per 16-bit half, rounded to nearest: both multiplied as T pairs.
template <typename T>
__device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t b) {
    using Pair = std::conditional_t<std::is_same_v<T, bf16>, __nv_bfloat162, __half2>;
    const Pair product = __hmul2(*reinterpret_cast<const Pair*>(&a), *reinterpret_cast<const Pair*>(&b));
    return *reinterpret_cast<const uint32_t*>(&product);
}

// The two weights of byte `shift / 8` of `word` as one fragment register: the
// codebook pair (rounded to T) times the block's scale (rounded to T, both halves).
// `shift` is a compile-time constant after unrolling: the byte's offset into the
// table (byte * 64 bytes) is one shift and one mask of the word.
template <typename T>
__device__ __forceinline__ uint32_t dequantize_pair(const uint32_t* pair_column, uint32_t word, int shift,
                                                    uint32_t scale_pair) {
    constexpr int kEntryShift = 6;  // log2(kPairCopies * sizeof(uint32_t))
    static_assert(kPairCopies * sizeof(uint32_t) == 1u << kEntryShift);
    const uint32_t offset = (shift >= kEntryShift ? word >> (shift - kEntryShift) : word << (kEntryShift - shift)) &
                            (0xffu << kEntryShift);
    const uint32_t pair = *reinterpret_cast<const uint32_t*>(reinterpret_cast<const char*>(pair_column) + offset);
    return mul2<T>(pair, scale_pair);
}

[[maybe_unused]] constexpr int kMmaChunk = 4 * kChunk;  // k per mma chunk: 4 threads of a group x 32

// What a warp loads for one chunk: its weight bytes and raw scales (and, for few
// rows of A, the chunk of A) one chunk ahead of the math.
template <typename T, int N_TILES, int M_TILES>
struct MmaStage {
    static constexpr bool kHoldsA = N_TILES <= 2;
    uint4 packed[M_TILES][2];
    RawScale raw[M_TILES][2];
    uint4 act[kHoldsA ? N_TILES : 1][4];
};

template <typename T, int N_TILES, int M_TILES, bool NESTED>
__global__ void __launch_bounds__(tuning::kMmaKWarps* kWarpSize) gemm_4bit_mma_kernel(GemmParams p) {
#if defined(BNB_HAS_MMA_M16N8K16)
    using Stage = MmaStage<T, N_TILES, M_TILES>;
    constexpr int kRows = 16 * M_TILES;  // weight rows of the block
    constexpr int kCols = 8 * N_TILES;   // rows of A
    constexpr int kPad = 4;              // spreads the partial-sum stores over the banks
    // The pair table serves the main loop, the partial sums the epilogue.
    __shared__ union {
        PairTable pairs;
        float partial[tuning::kMmaKWarps][kCols][kRows + kPad];
    } shared;
    __shared__ float nested_code[NESTED ? 256 : 1];
    const Scales<NESTED> scales = load_scales<NESTED>(p, nested_code);
    fill_pair_table<T>(shared.pairs, p.code, p.codebook);
    __syncthreads();
    const uint32_t* pair_column = &shared.pairs[0][threadIdx.x % kPairCopies];
    const T* A = static_cast<const T*>(p.A);
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    const int group = lane / 4;
    const int index = lane % 4;
    const int64_t row_base = static_cast<int64_t>(blockIdx.x) * kRows;
    const int64_t chunks = (p.K + kMmaChunk - 1) / kMmaChunk;

    float acc[M_TILES][N_TILES][4];
#pragma unroll
    for (int t = 0; t < M_TILES; ++t) {
#pragma unroll
        for (int nt = 0; nt < N_TILES; ++nt) {
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[t][nt][i] = 0.0f;
        }
    }

    // Weight rows of this thread: tile t, half h -> row_base + 16 t + 8 h + group.
    const auto load_stage = [&](int64_t chunk, Stage& stage) {
        const int64_t k0 = chunk * kMmaChunk + kChunk * index;
        const bool k_valid = k0 < p.K;
#pragma unroll
        for (int t = 0; t < M_TILES; ++t) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int64_t row = row_base + 16 * t + 8 * h + group;
                stage.packed[t][h] = make_uint4(0, 0, 0, 0);
                stage.raw[t][h] = {0.0f, 0u};
                if (k_valid && row < p.N) {
                    const int64_t element = row * p.K + k0;
                    stage.packed[t][h] = __ldg(reinterpret_cast<const uint4*>(p.B + element / 2));
                    stage.raw[t][h] = scales.load(element >> p.log2_blocksize);
                }
            }
        }
        if constexpr (Stage::kHoldsA) {
#pragma unroll
            for (int nt = 0; nt < N_TILES; ++nt) {
                const int64_t a_row = 8 * nt + group;
#pragma unroll
                for (int pair = 0; pair < 4; ++pair) {
                    stage.act[nt][pair] = make_uint4(0, 0, 0, 0);
                    if (k_valid && a_row < p.M) {
                        stage.act[nt][pair] = __ldg(reinterpret_cast<const uint4*>(A + a_row * p.K + k0) + pair);
                    }
                }
            }
        }
    };

    Stage next;
    int64_t chunk = warp;
    if (chunk < chunks) load_stage(chunk, next);
    for (; chunk < chunks; chunk += tuning::kMmaKWarps) {
        const Stage stage = next;
        // W is the stream from memory: fetch the warp's next chunk before this one's math.
        if (chunk + tuning::kMmaKWarps < chunks) load_stage(chunk + tuning::kMmaKWarps, next);
        const int64_t k0 = chunk * kMmaChunk + kChunk * index;
        const bool k_valid = k0 < p.K;
        uint32_t scale[M_TILES][2];
#pragma unroll
        for (int t = 0; t < M_TILES; ++t) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const float value = scales.scale(stage.raw[t][h]);
                scale[t][h] = Element<T>::pack2(value, value);
            }
        }
#pragma unroll
        for (int pair = 0; pair < 4; ++pair) {
            // 8 elements of A (mma steps 2 pair and 2 pair + 1) for each 8-row group.
            uint4 act[N_TILES];
#pragma unroll
            for (int nt = 0; nt < N_TILES; ++nt) {
                if constexpr (Stage::kHoldsA) {
                    act[nt] = stage.act[nt][pair];
                } else {
                    const int64_t a_row = 8 * nt + group;
                    act[nt] = make_uint4(0, 0, 0, 0);
                    if (k_valid && a_row < p.M) {
                        act[nt] = __ldg(reinterpret_cast<const uint4*>(A + a_row * p.K + k0) + pair);
                    }
                }
            }
#pragma unroll
            for (int sub = 0; sub < 2; ++sub) {
                const int step = 2 * pair + sub;
                const int word = step / 2;
                const int shift = 16 * (step % 2);  // byte 2 step of the 16 loaded bytes
#pragma unroll
                for (int t = 0; t < M_TILES; ++t) {
                    const uint32_t row_low[4] = {stage.packed[t][0].x, stage.packed[t][0].y, stage.packed[t][0].z,
                                                 stage.packed[t][0].w};
                    const uint32_t row_high[4] = {stage.packed[t][1].x, stage.packed[t][1].y, stage.packed[t][1].z,
                                                  stage.packed[t][1].w};
                    const uint32_t fragment[4] = {
                        dequantize_pair<T>(pair_column, row_low[word], shift, scale[t][0]),
                        dequantize_pair<T>(pair_column, row_high[word], shift, scale[t][1]),
                        dequantize_pair<T>(pair_column, row_low[word], shift + 8, scale[t][0]),
                        dequantize_pair<T>(pair_column, row_high[word], shift + 8, scale[t][1]),
                    };
#pragma unroll
                    for (int nt = 0; nt < N_TILES; ++nt) {
                        const uint32_t b0 = sub == 0 ? act[nt].x : act[nt].z;
                        const uint32_t b1 = sub == 0 ? act[nt].y : act[nt].w;
                        mma_m16n8k16<T>(acc[t][nt], fragment, b0, b1);
                    }
                }
            }
        }
    }

    // Each warp summed a different part of K: add the warps' tiles in a fixed order,
    // once every warp is done with the pair table that the partial sums overwrite.
    __syncthreads();
#pragma unroll
    for (int t = 0; t < M_TILES; ++t) {
#pragma unroll
        for (int nt = 0; nt < N_TILES; ++nt) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int w_row = 16 * t + group + (i >= 2 ? 8 : 0);
                const int a_row = 8 * nt + 2 * index + (i & 1);
                shared.partial[warp][a_row][w_row] = acc[t][nt][i];
            }
        }
    }
    __syncthreads();
    T* out = static_cast<T*>(p.out);
    for (int i = threadIdx.x; i < kCols * kRows; i += blockDim.x) {
        const int a_row = i / kRows;
        const int w_row = i % kRows;
        const int64_t n = row_base + w_row;
        if (a_row >= p.M || n >= p.N) continue;
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < tuning::kMmaKWarps; ++w) sum += shared.partial[w][a_row][w_row];
        out[a_row * p.N + n] = Element<T>::from_float(sum + bias_of<T>(p, n));
    }
#endif
}

// ---- launch ----------------------------------------------------------------------------------------

template <bool V>
using Bool = std::integral_constant<bool, V>;

template <typename F>
auto with_nested(bool nested, F&& body) {
    return nested ? body(Bool<true>{}) : body(Bool<false>{});
}

template <typename T, bool NESTED>
void launch_simt(const GemmParams& p, cudaStream_t stream) {
    const auto launch = [&](auto max_rows) {
        constexpr int kMaxRows = decltype(max_rows)::value;
        gemm_4bit_simt_kernel<T, kMaxRows, NESTED>
            <<<ceil_div(p.N, tuning::kSimtWarpsPerBlock), tuning::kSimtWarpsPerBlock * kWarpSize, 0, stream>>>(p);
    };
    using I = int;
    switch (tuning::simt_max_rows(p.M)) {
        case 1: launch(std::integral_constant<I, 1>{}); break;
        case 2: launch(std::integral_constant<I, 2>{}); break;
        case 4: launch(std::integral_constant<I, 4>{}); break;
        default: launch(std::integral_constant<I, 8>{}); break;
    }
}

template <typename T, bool NESTED>
void launch_mma(const GemmParams& p, cudaStream_t stream, int sm_count) {
    const tuning::MmaConfig config = tuning::mma_config(p.M, p.N, sm_count);
    const auto launch = [&](auto n_tiles, auto m_tiles) {
        constexpr int kNTiles = decltype(n_tiles)::value;
        constexpr int kMTiles = decltype(m_tiles)::value;
        gemm_4bit_mma_kernel<T, kNTiles, kMTiles, NESTED>
            <<<ceil_div(p.N, 16 * kMTiles), tuning::kMmaKWarps * kWarpSize, 0, stream>>>(p);
    };
    using I = int;
    using One = std::integral_constant<I, 1>;
    using Two = std::integral_constant<I, 2>;
    const bool two = config.m_tiles == 2;
    switch (config.n_tiles) {
        case 1: two ? launch(One{}, Two{}) : launch(One{}, One{}); break;
        case 2: two ? launch(Two{}, Two{}) : launch(Two{}, One{}); break;
        case 4:
            two ? launch(std::integral_constant<I, 4>{}, Two{}) : launch(std::integral_constant<I, 4>{}, One{});
            break;
        default: launch(std::integral_constant<I, 8>{}, One{}); break;
    }
}

template <typename T, bool NESTED>
void launch_generic(const GemmParams& p, cudaStream_t stream, int sm_count) {
    const int64_t blocks = std::min<int64_t>(ceil_div(p.M * p.N * kWarpSize, 256), int64_t{sm_count} * 32);
    gemm_4bit_generic_kernel<T, NESTED><<<std::max<int64_t>(blocks, 1), 256, 0, stream>>>(p);
}

const char* algo_name(bnb_gemm_4bit_algo algo) {
    switch (algo) {
        case BNB_GEMM_4BIT_GENERIC: return "BNB_GEMM_4BIT_GENERIC";
        case BNB_GEMM_4BIT_SIMT: return "BNB_GEMM_4BIT_SIMT";
        case BNB_GEMM_4BIT_TENSOR_CORE: return "BNB_GEMM_4BIT_TENSOR_CORE";
        default: return "BNB_GEMM_4BIT_AUTO";
    }
}

bool tensor_cores_usable(bnb_dtype dtype, int compute_capability) {
#if defined(__HIPCC__)
    (void)dtype;
    (void)compute_capability;
    return false;
#else
    return dtype != BNB_DTYPE_FLOAT32 && compute_capability >= 80;
#endif
}

}  // namespace

bnb_status gemm_4bit(const Gemm4bitArgs& args) {
    const DeviceGuard guard(args.device.index);
    const DeviceInfo info = device_info(args.device.index);
    const GemmParams params{args.A,
                            args.B,
                            args.absmax,
                            args.absmax_8bit,
                            args.absmax_code,
                            args.absmax_offset,
                            args.bias,
                            args.out,
                            args.code,
                            args.M,
                            args.N,
                            args.K,
                            log2_exact(args.blocksize),
                            codebook16(args.quant_type)};
    // The fused kernels read W and A in aligned 32-element chunks.
    const bool chunked = args.K % kChunk == 0 && args.K > 0 && is_aligned(args.A, 16) && is_aligned(args.B, 16);
    const bool simt_fits = chunked && args.M <= tuning::kSimtMaxRows;
    const bool tensor_cores = tensor_cores_usable(args.dtype, info.compute_capability);
    const bool mma_fits = chunked && args.M <= tuning::kMmaMaxRows && tensor_cores;
    bnb_gemm_4bit_algo algo = args.algo;
    if (algo == BNB_GEMM_4BIT_AUTO) {
        if (simt_fits && (tuning::prefer_simt(tensor_cores, args.M) || !mma_fits)) {
            algo = BNB_GEMM_4BIT_SIMT;
        } else if (mma_fits) {
            algo = BNB_GEMM_4BIT_TENSOR_CORE;
        } else {
            algo = BNB_GEMM_4BIT_GENERIC;
        }
    }
    if ((algo == BNB_GEMM_4BIT_SIMT && !simt_fits) || (algo == BNB_GEMM_4BIT_TENSOR_CORE && !mma_fits)) {
        return fail(BNB_STATUS_UNSUPPORTED,
                    std::string("algo: ") + algo_name(algo) + " needs K % 32 == 0, 16-byte aligned A and B, M <= " +
                        std::to_string(algo == BNB_GEMM_4BIT_SIMT ? tuning::kSimtMaxRows : tuning::kMmaMaxRows) +
                        (algo == BNB_GEMM_4BIT_TENSOR_CORE ? ", fp16/bf16 and compute capability 8.0+" : "") +
                        "; got M=" + std::to_string(args.M) + ", K=" + std::to_string(args.K));
    }
    const cudaStream_t stream = to_stream(args.stream);
    return dispatch_float(args.dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        with_nested(args.absmax_8bit != nullptr, [&](auto nested) {
            constexpr bool kNested = decltype(nested)::value;
            if (algo == BNB_GEMM_4BIT_SIMT) {
                launch_simt<T, kNested>(params, stream);
            } else if (algo == BNB_GEMM_4BIT_TENSOR_CORE) {
                if constexpr (!std::is_same_v<T, float>) launch_mma<T, kNested>(params, stream, info.sm_count);
            } else {
                launch_generic<T, kNested>(params, stream, info.sm_count);
            }
            return 0;
        });
        return check_launch("gemm_4bit");
    });
}

bnb_status gemm_4bit_fused_max_rows(const Gemm4bitShape& shape, int64_t* max_rows) {
    const DeviceInfo info = device_info(shape.device.index);
    *max_rows = tuning::fused_max_rows(tensor_cores_usable(shape.dtype, info.compute_capability), shape.K);
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cuda
