// CPU kernels through the C ABI, per instruction-set path, on preallocated
// (already faulted-in) buffers: the kernels' own throughput, without torch or
// allocation. bytes_per_second counts bytes read plus bytes written.
//
//   build-cpu/benchmarks/bitsandbytes_benchmarks --benchmark_filter=Cpu
//
// Arguments of each case: path (0 scalar, 1 avx2, 2 avx512), dtype (0 fp32,
// 1 fp16, 2 bf16), log2 of the element count. Paths this CPU lacks are skipped.
// The LLM.int8() cases take a square matrix of that many elements (quantize)
// or the rows of A against a square weight of that many rows (matmul, whose
// counter MAC/s counts multiply-adds).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"

namespace {

constexpr bnb_device kCpu = {BNB_DEVICE_CPU, 0};
constexpr const char* kPaths[] = {"scalar", "avx2", "avx512"};
constexpr bnb_dtype kDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};
constexpr const char* kDtypeNames[] = {"fp32", "fp16", "bf16"};

int64_t element_bytes(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

struct Case {
    bnb_dtype dtype;
    int64_t n;
    bool ok;
};

// Selects the path of the case (restored to auto when the case ends) and labels it.
Case begin_case(benchmark::State& state) {
    const char* path = kPaths[state.range(0)];
    const int dtype_index = static_cast<int>(state.range(1));
    Case c{kDtypes[dtype_index], int64_t{1} << state.range(2), true};
    if (bnb_backend_select_variant(BNB_DEVICE_CPU, path) != BNB_STATUS_SUCCESS) {
        state.SkipWithError((std::string("this CPU cannot run the ") + path + " path").c_str());
        c.ok = false;
    }
    state.SetLabel(std::string(path) + " " + kDtypeNames[dtype_index]);
    return c;
}

void end_case(benchmark::State& state, int64_t bytes_per_call) {
    state.SetBytesProcessed(state.iterations() * bytes_per_call);
    bnb_backend_select_variant(BNB_DEVICE_CPU, "auto");
}

// Gaussian input of n elements as raw bytes of `dtype` (bf16/fp16 by truncating
// or converting the float32 bits; the benchmark needs ordinary values only).
std::vector<uint8_t> gaussian_input(bnb_dtype dtype, int64_t n) {
    std::mt19937 rng(42);
    std::normal_distribution<float> gaussian(0.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(n));
    for (float& value : values) value = gaussian(rng);
    std::vector<uint8_t> bytes(static_cast<size_t>(n * element_bytes(dtype)));
    bnb_status status = BNB_STATUS_SUCCESS;
    if (dtype == BNB_DTYPE_FLOAT32) {
        std::memcpy(bytes.data(), values.data(), bytes.size());
    } else {
        // Round-trip through 8-bit blockwise quantization at blocksize 64 gives
        // 16-bit values of the right dtype without a conversion routine here.
        std::vector<uint8_t> codes(static_cast<size_t>(n));
        std::vector<float> absmax(static_cast<size_t>((n + 63) / 64));
        std::vector<float> code(256);
        bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, code.data(), 256);
        status = bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, values.data(), code.data(), n, 64,
                                        codes.data(), absmax.data());
        if (status == BNB_STATUS_SUCCESS) {
            status = bnb_dequantize_blockwise(kCpu, nullptr, dtype, codes.data(), code.data(), absmax.data(), n, 64,
                                              bytes.data());
        }
    }
    if (status != BNB_STATUS_SUCCESS) bytes.clear();
    return bytes;
}

void BM_CpuQuantizeBlockwise(benchmark::State& state) {
    Case c = begin_case(state);
    const int64_t blocksize = state.range(3);
    const auto input = gaussian_input(c.dtype, c.n);
    std::vector<float> code(256);
    bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, code.data(), 256);
    std::vector<uint8_t> out(static_cast<size_t>(c.n));
    std::vector<float> absmax(static_cast<size_t>((c.n + blocksize - 1) / blocksize));
    for (auto _ : state) {
        if (!c.ok) break;
        if (bnb_quantize_blockwise(kCpu, nullptr, c.dtype, input.data(), code.data(), c.n, blocksize, out.data(),
                                   absmax.data()) != BNB_STATUS_SUCCESS) {
            state.SkipWithError(bnb_last_error());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    end_case(state, c.n * element_bytes(c.dtype) + c.n + static_cast<int64_t>(absmax.size()) * 4);
}

void BM_CpuDequantizeBlockwise(benchmark::State& state) {
    Case c = begin_case(state);
    const int64_t blocksize = state.range(3);
    std::vector<float> code(256);
    bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, code.data(), 256);
    std::mt19937 rng(1);
    std::vector<uint8_t> codes(static_cast<size_t>(c.n));
    for (uint8_t& value : codes) value = static_cast<uint8_t>(rng());
    std::vector<float> absmax(static_cast<size_t>((c.n + blocksize - 1) / blocksize), 0.5f);
    std::vector<uint8_t> out(static_cast<size_t>(c.n * element_bytes(c.dtype)));
    for (auto _ : state) {
        if (!c.ok) break;
        if (bnb_dequantize_blockwise(kCpu, nullptr, c.dtype, codes.data(), code.data(), absmax.data(), c.n,
                                     blocksize, out.data()) != BNB_STATUS_SUCCESS) {
            state.SkipWithError(bnb_last_error());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    end_case(state, c.n + static_cast<int64_t>(absmax.size()) * 4 + c.n * element_bytes(c.dtype));
}

void BM_CpuQuantize4bit(benchmark::State& state) {
    Case c = begin_case(state);
    const bnb_quant_type quant_type = state.range(3) == 0 ? BNB_QUANT_NF4 : BNB_QUANT_FP4;
    const int64_t blocksize = 64;
    const auto input = gaussian_input(c.dtype, c.n);
    std::vector<uint8_t> packed(static_cast<size_t>((c.n + 1) / 2));
    std::vector<float> absmax(static_cast<size_t>((c.n + blocksize - 1) / blocksize));
    for (auto _ : state) {
        if (!c.ok) break;
        if (bnb_quantize_4bit(kCpu, nullptr, quant_type, c.dtype, input.data(), c.n, blocksize, packed.data(),
                              absmax.data()) != BNB_STATUS_SUCCESS) {
            state.SkipWithError(bnb_last_error());
            break;
        }
        benchmark::DoNotOptimize(packed.data());
    }
    end_case(state, c.n * element_bytes(c.dtype) + static_cast<int64_t>(packed.size() + absmax.size() * 4));
}

void BM_CpuDequantize4bit(benchmark::State& state) {
    Case c = begin_case(state);
    const bnb_quant_type quant_type = state.range(3) == 0 ? BNB_QUANT_NF4 : BNB_QUANT_FP4;
    const int64_t blocksize = 64;
    std::mt19937 rng(2);
    std::vector<uint8_t> packed(static_cast<size_t>((c.n + 1) / 2));
    for (uint8_t& value : packed) value = static_cast<uint8_t>(rng());
    std::vector<float> absmax(static_cast<size_t>((c.n + blocksize - 1) / blocksize), 0.5f);
    std::vector<uint8_t> out(static_cast<size_t>(c.n * element_bytes(c.dtype)));
    for (auto _ : state) {
        if (!c.ok) break;
        if (bnb_dequantize_4bit(kCpu, nullptr, quant_type, c.dtype, packed.data(), absmax.data(), c.n, blocksize,
                                out.data()) != BNB_STATUS_SUCCESS) {
            state.SkipWithError(bnb_last_error());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    end_case(state, static_cast<int64_t>(packed.size() + absmax.size() * 4) + c.n * element_bytes(c.dtype));
}

// param: the threshold.
void BM_CpuInt8VectorwiseQuant(benchmark::State& state) {
    Case c = begin_case(state);
    const int64_t side = int64_t{1} << (state.range(2) / 2);
    const float threshold = static_cast<float>(state.range(3));
    const auto input = gaussian_input(c.dtype, side * side);
    std::vector<int8_t> out(static_cast<size_t>(side * side));
    std::vector<float> stats(static_cast<size_t>(side));
    std::vector<int64_t> outlier_cols(static_cast<size_t>(side));
    int64_t count = 0;
    for (auto _ : state) {
        if (!c.ok) break;
        if (bnb_int8_vectorwise_quant(kCpu, nullptr, c.dtype, input.data(), side, side, threshold, out.data(),
                                      stats.data(), outlier_cols.data(), &count) != BNB_STATUS_SUCCESS) {
            state.SkipWithError(bnb_last_error());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    end_case(state, side * side * (element_bytes(c.dtype) + 1) + side * 4);
}

// log2n: of N = K; param: M.
void BM_CpuInt8LinearMatmul(benchmark::State& state) {
    Case c = begin_case(state);
    const int64_t NK = int64_t{1} << state.range(2), M = state.range(3);
    std::mt19937 rng(3);
    std::vector<int8_t> A(static_cast<size_t>(M * NK)), B(static_cast<size_t>(NK * NK));
    for (int8_t& value : A) value = static_cast<int8_t>(rng());
    for (int8_t& value : B) value = static_cast<int8_t>(rng());
    std::vector<int32_t> out(static_cast<size_t>(M * NK));
    for (auto _ : state) {
        if (!c.ok) break;
        if (bnb_int8_linear_matmul(kCpu, nullptr, A.data(), M, NK, B.data(), NK, out.data()) != BNB_STATUS_SUCCESS) {
            state.SkipWithError(bnb_last_error());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["MAC/s"] = benchmark::Counter(static_cast<double>(M * NK * NK), benchmark::Counter::kIsIterationInvariantRate);
    end_case(state, M * NK + NK * NK + M * NK * 4);
}

// param: 0 Adam 32-bit, 1 Adam 8-bit blockwise, 2 momentum 8-bit blockwise;
// one tensor of 2^log2n elements, the same gradient every step.
void BM_CpuOptimizerUpdate(benchmark::State& state) {
    Case c = begin_case(state);
    const bool blockwise = state.range(3) != 0;
    const bnb_optimizer optimizer = state.range(3) == 2 ? BNB_OPTIMIZER_MOMENTUM : BNB_OPTIMIZER_ADAM;
    const bool two_state = optimizer == BNB_OPTIMIZER_ADAM;
    const int64_t state_bytes = blockwise ? 1 : 4;
    const int64_t blocks = (c.n + 255) / 256;
    const auto g = gaussian_input(c.dtype, c.n);
    auto p = gaussian_input(c.dtype, c.n);
    std::vector<uint8_t> state1(static_cast<size_t>(c.n * state_bytes)), state2(two_state ? state1.size() : 0);
    std::vector<float> absmax1(static_cast<size_t>(blocks)), absmax2(static_cast<size_t>(blocks));
    std::vector<float> qmap1(256), qmap2(256);
    bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, qmap1.data(), 256);
    bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_UNSIGNED, qmap2.data(), 256);
    bnb_optimizer_tensor tensor{.n = c.n, .g = g.data(), .p = p.data(), .state1 = state1.data(),
                                .state2 = two_state ? state2.data() : nullptr, .absmax1 = absmax1.data(),
                                .absmax2 = two_state ? absmax2.data() : nullptr, .unorm_vec = nullptr,
                                .param_norm = 0.0f};
    bnb_optimizer_hparams h{.beta1 = 0.9f, .beta2 = 0.999f, .beta3 = 0.0f, .alpha = 0.0f, .eps = 1e-8f,
                            .weight_decay = 0.01f, .lr = 1e-3f, .gnorm_scale = 1.0f, .max_unorm = 0.0f, .step = 1,
                            .skip_zeros = 0};
    for (auto _ : state) {
        if (!c.ok) break;
        const bnb_status status =
            blockwise ? bnb_optimizer_update_8bit_blockwise(kCpu, nullptr, optimizer, c.dtype, &tensor, 1,
                                                            qmap1.data(), qmap2.data(), &h)
                      : bnb_optimizer_update_32bit(kCpu, nullptr, optimizer, c.dtype, &tensor, 1, &h);
        if (status != BNB_STATUS_SUCCESS) {
            state.SkipWithError(bnb_last_error());
            break;
        }
        ++h.step;
        benchmark::DoNotOptimize(p.data());
    }
    const int64_t states = (two_state ? 2 : 1) * (c.n * state_bytes + (blockwise ? blocks * 4 : 0));
    end_case(state, c.n * element_bytes(c.dtype) * 3 + states * 2);
}

// path x dtype x {2^12 (one thread), 2^20, 2^24} elements x op parameter.
void cases(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> parameters) {
    for (int64_t path : {0, 1, 2}) {
        for (int64_t dtype : {0, 1, 2}) {
            for (int64_t log2n : {12, 20, 24}) {
                for (int64_t parameter : parameters) b->Args({path, dtype, log2n, parameter});
            }
        }
    }
    b->ArgNames({"path", "dtype", "log2n", "param"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_CpuQuantizeBlockwise)->Apply([](auto* b) { cases(b, {256, 4096}); });
BENCHMARK(BM_CpuDequantizeBlockwise)->Apply([](auto* b) { cases(b, {256, 4096}); });
BENCHMARK(BM_CpuQuantize4bit)->Apply([](auto* b) { cases(b, {0, 1}); });
BENCHMARK(BM_CpuDequantize4bit)->Apply([](auto* b) { cases(b, {0, 1}); });
BENCHMARK(BM_CpuOptimizerUpdate)->Apply([](auto* b) { cases(b, {0, 1, 2}); });

void int8_cases(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> dtypes, int64_t log2n,
                std::initializer_list<int64_t> parameters) {
    for (int64_t path : {0, 1, 2}) {
        for (int64_t dtype : dtypes) {
            for (int64_t parameter : parameters) b->Args({path, dtype, log2n, parameter});
        }
    }
    b->ArgNames({"path", "dtype", "log2n", "param"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_CpuInt8VectorwiseQuant)->Apply([](auto* b) { int8_cases(b, {0, 1, 2}, 24, {0, 6}); });
BENCHMARK(BM_CpuInt8LinearMatmul)->Apply([](auto* b) { int8_cases(b, {0}, 12, {1, 16, 256}); });

}  // namespace
