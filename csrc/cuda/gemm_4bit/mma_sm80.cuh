// The tensor-core 4-bit matmul kernel (sm_80+, fp16/bf16, up to 64 rows of A): W
// dequantized in registers straight into mma.m16n8k16 fragments.
#pragma once

#include <type_traits>

#include "common.cuh"

// Host passes and sm_80+ device passes compile the kernel; older targets get an
// empty body (the selector never launches it there).
#if BNB_GPU_HAS_MMA_SYNC && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define BNB_HAS_MMA_M16N8K16 1
#endif

namespace bnb::cuda {

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

// The weight bytes and raw scales of one chunk for a warp's 16 * M_TILES rows from
// row_base: tile t, half h -> row row_base + 16 t + 8 h + group, 32 k from k0.
template <int M_TILES, bool NESTED>
__device__ __forceinline__ void load_weight_chunk(const GemmParams& p, const Scales<NESTED>& scales, int64_t row_base,
                                                  int group, int64_t k0, uint4 (&packed)[M_TILES][2],
                                                  RawScale (&raw)[M_TILES][2]) {
    const bool k_valid = k0 < p.K;
#pragma unroll
    for (int t = 0; t < M_TILES; ++t) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = row_base + 16 * t + 8 * h + group;
            packed[t][h] = make_uint4(0, 0, 0, 0);
            raw[t][h] = {0.0f, 0u};
            if (k_valid && row < p.N) {
                const int64_t element = row * p.K + k0;
                packed[t][h] = __ldg(reinterpret_cast<const uint4*>(p.B + element / 2));
                raw[t][h] = scales.load(element >> p.log2_blocksize);
            }
        }
    }
}

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

    const auto load_stage = [&](int64_t chunk, Stage& stage) {
        const int64_t k0 = chunk * kMmaChunk + kChunk * index;
        const bool k_valid = k0 < p.K;
        load_weight_chunk<M_TILES>(p, scales, row_base, group, k0, stage.packed, stage.raw);
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

// Position of 16-byte segment `segment` of row `row` in the staged A tile. Thread
// (group g, index t) reads segments 4 t + pair of row 8 nt + g; the rows are 256 bytes,
// so without the swizzle the 8 lanes of a 16-byte-load phase (g in {2q, 2q + 1},
// t = 0..3) would meet in 4 bank slots. Folding bit 3 of the segment into bit 1 and
// the row's parity into bit 0 gives them 8 different slots; within a row it is a
// permutation, so the cooperative stores of 8 consecutive segments do not collide either.
__device__ __forceinline__ int staged_segment(int row, int segment) {
    return segment ^ (((segment >> 3) & 1) << 1) ^ (row & 1);
}

// The tensor-core kernel for 16+ rows of A: WARPS warps each own 16 weight rows and
// run over all of K, and the block stages each 128-k chunk of A in shared memory once
// for all of them. gemm_4bit_mma_kernel instead splits K among its warps, so every 16
// or 32 weight rows re-read all of A from L2: at 64 rows of A and K = 8192 that is
// 1 MiB per block, more than the block's weights. Here it is once per 16 * WARPS rows.
// A single staged buffer: the next chunk of A waits in registers during the math.
template <typename T, int N_TILES, int WARPS, bool NESTED>
// 16 warps per SM (at most 128 registers): one block of 8 warps at 140 left the SM
// one barrier away from idle.
__global__ void __launch_bounds__(WARPS* kWarpSize, 16 / WARPS) gemm_4bit_mma_shared_a_kernel(GemmParams p) {
#if defined(BNB_HAS_MMA_M16N8K16)
    constexpr int kCols = 8 * N_TILES;                            // rows of A
    constexpr int kSegments = kMmaChunk * sizeof(T) / 16;         // 16-byte segments of a row's chunk
    constexpr int kThreads = WARPS * kWarpSize;
    constexpr int kLoads = static_cast<int>(ceil_div(kCols * kSegments, kThreads));  // per thread and chunk
    static_assert(kSegments == 16, "staged_segment assumes 256-byte rows");
    __shared__ PairTable pairs;
    __shared__ uint4 staged[kCols][kSegments];
    __shared__ float nested_code[NESTED ? 256 : 1];
    const Scales<NESTED> scales = load_scales<NESTED>(p, nested_code);
    fill_pair_table<T>(pairs, p.code, p.codebook);
    const uint32_t* pair_column = &pairs[0][threadIdx.x % kPairCopies];
    const T* A = static_cast<const T*>(p.A);
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    const int group = lane / 4;
    const int index = lane % 4;
    const int64_t row_base = static_cast<int64_t>(blockIdx.x) * 16 * WARPS + 16 * warp;
    const int64_t chunks = (p.K + kMmaChunk - 1) / kMmaChunk;

    // The block's share of chunk `chunk` of A: consecutive threads read consecutive
    // segments of a row (coalesced); rows past M and k past K read as zeros.
    uint4 a_next[kLoads];
    const auto load_a = [&](int64_t chunk) {
#pragma unroll
        for (int i = 0; i < kLoads; ++i) {
            const int slot = static_cast<int>(threadIdx.x) + i * kThreads;
            const int row = slot / kSegments;
            const int64_t k = chunk * kMmaChunk + (slot % kSegments) * (16 / sizeof(T));
            a_next[i] = make_uint4(0, 0, 0, 0);
            if (slot < kCols * kSegments && row < p.M && k < p.K) {
                a_next[i] = __ldg(reinterpret_cast<const uint4*>(A + row * p.K + k));
            }
        }
    };
    const auto store_a = [&] {
#pragma unroll
        for (int i = 0; i < kLoads; ++i) {
            const int slot = static_cast<int>(threadIdx.x) + i * kThreads;
            if (slot < kCols * kSegments) {
                const int row = slot / kSegments;
                staged[row][staged_segment(row, slot % kSegments)] = a_next[i];
            }
        }
    };

    float acc[N_TILES][4];
#pragma unroll
    for (int nt = 0; nt < N_TILES; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nt][i] = 0.0f;
    }
    uint4 packed_next[1][2];
    RawScale raw_next[1][2];
    load_weight_chunk<1>(p, scales, row_base, group, kChunk * index, packed_next, raw_next);
    load_a(0);
    store_a();
    __syncthreads();  // the pair table and the first chunk of A
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        const uint4 packed[2] = {packed_next[0][0], packed_next[0][1]};
        uint32_t scale[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const float value = scales.scale(raw_next[0][h]);
            scale[h] = Element<T>::pack2(value, value);
        }
        if (chunk + 1 < chunks) {
            load_weight_chunk<1>(p, scales, row_base, group, (chunk + 1) * kMmaChunk + kChunk * index, packed_next,
                                 raw_next);
            load_a(chunk + 1);
        }
        const uint32_t row_low[4] = {packed[0].x, packed[0].y, packed[0].z, packed[0].w};
        const uint32_t row_high[4] = {packed[1].x, packed[1].y, packed[1].z, packed[1].w};
#pragma unroll
        for (int pair = 0; pair < 4; ++pair) {
            // Weights of mma steps 2 pair and 2 pair + 1 (bytes 4 pair .. 4 pair + 3).
            uint32_t fragment[2][4];
#pragma unroll
            for (int sub = 0; sub < 2; ++sub) {
                const int shift = 16 * sub;
                fragment[sub][0] = dequantize_pair<T>(pair_column, row_low[pair], shift, scale[0]);
                fragment[sub][1] = dequantize_pair<T>(pair_column, row_high[pair], shift, scale[1]);
                fragment[sub][2] = dequantize_pair<T>(pair_column, row_low[pair], shift + 8, scale[0]);
                fragment[sub][3] = dequantize_pair<T>(pair_column, row_high[pair], shift + 8, scale[1]);
            }
#pragma unroll
            for (int nt = 0; nt < N_TILES; ++nt) {
                const int a_row = 8 * nt + group;
                const uint4 act = staged[a_row][staged_segment(a_row, 4 * index + pair)];
                mma_m16n8k16<T>(acc[nt], fragment[0], act.x, act.y);
                mma_m16n8k16<T>(acc[nt], fragment[1], act.z, act.w);
            }
        }
        if (chunk + 1 < chunks) {
            __syncthreads();  // every warp is done with this chunk of A
            store_a();
            __syncthreads();
        }
    }

    T* out = static_cast<T*>(p.out);
#pragma unroll
    for (int nt = 0; nt < N_TILES; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t n = row_base + group + (i >= 2 ? 8 : 0);
            const int64_t a_row = 8 * nt + 2 * index + (i & 1);
            if (a_row < p.M && n < p.N) out[a_row * p.N + n] = Element<T>::from_float(acc[nt][i] + bias_of<T>(p, n));
        }
    }
#endif
}

template <typename T, bool NESTED>
void launch_mma(const GemmParams& p, cudaStream_t stream, int sm_count) {
    const tuning::MmaConfig config = tuning::mma_config(p.M, p.N, sm_count);
    using I = int;
    const int staged_warps = tuning::mma_staged_a_warps(p.M, p.N, sm_count);
    if (staged_warps != 0) {
        const auto launch_staged = [&](auto n_tiles, auto warps) {
            constexpr int kNTiles = decltype(n_tiles)::value;
            constexpr int kWarps = decltype(warps)::value;
            gemm_4bit_mma_shared_a_kernel<T, kNTiles, kWarps, NESTED>
                <<<ceil_div(p.N, 16 * kWarps), kWarps * kWarpSize, 0, stream>>>(p);
        };
        const auto with_warps = [&](auto n_tiles) {
            staged_warps == 8 ? launch_staged(n_tiles, std::integral_constant<I, 8>{})
                              : launch_staged(n_tiles, std::integral_constant<I, 4>{});
        };
        config.n_tiles == 4 ? with_warps(std::integral_constant<I, 4>{}) : with_warps(std::integral_constant<I, 8>{});
        return;
    }
    const auto launch = [&](auto n_tiles, auto m_tiles) {
        constexpr int kNTiles = decltype(n_tiles)::value;
        constexpr int kMTiles = decltype(m_tiles)::value;
        gemm_4bit_mma_kernel<T, kNTiles, kMTiles, NESTED>
            <<<ceil_div(p.N, 16 * kMTiles), tuning::kMmaKWarps * kWarpSize, 0, stream>>>(p);
    };
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

}  // namespace bnb::cuda
