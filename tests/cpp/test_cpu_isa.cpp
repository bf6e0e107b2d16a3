// Every vector path of the CPU backend (AVX2, AVX-512) against the scalar
// reference, byte for byte: quantize / dequantize blockwise 8-bit and 4-bit,
// fp32 / fp16 / bf16, every blocksize, odd sizes, special values (zeros, ±inf,
// NaN, subnormals, huge), values on and next to every decision boundary
// (8-bit midpoints, NF4/FP4 thresholds) and every fp16/bf16 rounding boundary of
// the outputs, with sorted, unsorted and degenerate codes.
//
// BNB_TEST_EXHAUSTIVE=1 adds a sweep of every float32 in [-1, 1] through the
// three quantizers (minutes on 2 cores).
#include <gtest/gtest.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"

namespace {

using bnb_test::bits_equal;
using bnb_test::codebook;
using bnb_test::kCpu;
using bnb_test::succeeded;

constexpr bnb_dtype kFloatDtypes[] = {BNB_DTYPE_FLOAT32, BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16};
constexpr int64_t kQuantize8Blocksizes[] = {64, 128, 256, 512, 1024, 2048, 4096};
constexpr int64_t kDequantize8Blocksizes[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
constexpr int64_t kFourBitBlocksizes[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
// Odd and unaligned sizes for every tail.
constexpr int64_t kSizes[] = {1, 2, 15, 17, 31, 33, 63, 65, 255, 257, 4095, 4097, 12345, 70001};
// Large enough that every op splits its blocks between threads (parallel.h).
constexpr int64_t kThreadedSize = (int64_t{1} << 20) + 3;

size_t dtype_size(bnb_dtype dtype) { return dtype == BNB_DTYPE_FLOAT32 ? 4 : 2; }

const char* dtype_label(bnb_dtype dtype) {
    return dtype == BNB_DTYPE_FLOAT32 ? "fp32" : dtype == BNB_DTYPE_FLOAT16 ? "fp16" : "bf16";
}

float from_bits(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

uint32_t to_bits(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

// The vector paths this CPU can run, each compared against "scalar".
std::vector<std::string> vector_paths() {
    std::vector<std::string> paths;
    for (const char* name : {"avx2", "avx512"}) {
        if (bnb_backend_variant_supported(BNB_DEVICE_CPU, name)) paths.emplace_back(name);
    }
    return paths;
}

// Selects a path for the lifetime of the object, then returns to "auto".
class IsaScope {
public:
    explicit IsaScope(const std::string& name) { EXPECT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, name.c_str()))) << name; }
    ~IsaScope() { bnb_backend_select_variant(BNB_DEVICE_CPU, "auto"); }
};

// Raw input elements of `dtype` whose float values mix ordinary numbers at
// a per-block scale with every kind of special value; some blocks are entirely
// zero, subnormal or huge.
std::vector<uint8_t> make_input(bnb_dtype dtype, int64_t n, int64_t blocksize, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> gaussian(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(n));
    for (int64_t begin = 0; begin < n; begin += blocksize) {
        const int64_t end = std::min(n, begin + blocksize);
        const int kind = static_cast<int>(rng() % 16);
        const float scale = std::pow(10.0f, uniform(rng) * 8.0f - 4.0f);
        for (int64_t i = begin; i < end; ++i) {
            float value = gaussian(rng) * scale;
            if (kind == 0) value = 0.0f;
            if (kind == 1) value = from_bits((rng() & 0x807fffffu) | 1u);  // subnormal
            if (kind == 2) value = from_bits((rng() & 0x80ffffffu) | 0x7e000000u);  // near float32 max
            if (kind == 3 || uniform(rng) < 0.02f) {
                switch (rng() % 8) {
                    case 0: value = (rng() & 1) ? -0.0f : 0.0f; break;
                    case 1: value = (rng() & 1) ? -INFINITY : INFINITY; break;
                    case 2: value = from_bits(0x7f800001u | (rng() & 0x807fffffu)); break;  // any NaN
                    case 3: value = from_bits(rng() & 0x807fffffu); break;  // subnormal or zero
                    case 4: value = from_bits(static_cast<uint32_t>(rng())); break;  // any bits
                    case 5: value = from_bits((rng() & 0x807fffffu) | 0x00800000u); break;  // smallest normals
                    default: value = std::ldexp(1.0f, static_cast<int>(rng() % 40) - 20); break;  // exact powers
                }
            }
            values[static_cast<size_t>(i)] = value;
        }
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(n) * dtype_size(dtype));
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = to_bits(values[static_cast<size_t>(i)]);
        if (dtype == BNB_DTYPE_FLOAT32) {
            std::memcpy(&bytes[static_cast<size_t>(i) * 4], &bits, 4);
        } else if (dtype == BNB_DTYPE_BFLOAT16) {
            const uint16_t upper = static_cast<uint16_t>(bits >> 16);
            std::memcpy(&bytes[static_cast<size_t>(i) * 2], &upper, 2);
        } else {
            // Random half bits, exponent centred on 1.0 so that most are ordinary.
            const int exponent = std::clamp(15 + static_cast<int>(std::lround(gaussian(rng) * 4.0f)), 0, 31);
            const uint16_t half = static_cast<uint16_t>((rng() & 0x83ffu) | (static_cast<unsigned>(exponent) << 10));
            std::memcpy(&bytes[static_cast<size_t>(i) * 2], &half, 2);
        }
    }
    return bytes;
}

// Codes the 8-bit search must handle: the two dynamic maps, a random sorted
// code, an unsorted one, one with runs of equal entries, one with NaN, ±inf
// and subnormal entries, and for the bucket search (code_search.h) a linear
// code (a threshold at 0) and one of powers of two far below 2^-24.
std::vector<std::pair<std::string, std::vector<float>>> search_codes() {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<std::pair<std::string, std::vector<float>>> codes;
    codes.emplace_back("dynamic_signed", codebook(BNB_CODEBOOK_DYNAMIC_SIGNED));
    codes.emplace_back("dynamic_unsigned", codebook(BNB_CODEBOOK_DYNAMIC_UNSIGNED));
    std::vector<float> random(256);
    for (float& value : random) value = uniform(rng);
    codes.emplace_back("unsorted", random);
    std::sort(random.begin(), random.end());
    codes.emplace_back("sorted_random", random);
    std::vector<float> runs(256);
    for (size_t i = 0; i < runs.size(); ++i) runs[i] = static_cast<float>(static_cast<int>(i) / 16 - 8) / 8.0f;
    codes.emplace_back("runs", runs);
    std::vector<float> special = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    special[3] = NAN;
    special[100] = -INFINITY;
    special[128] = from_bits(0x00000005u);
    special[200] = INFINITY;
    special[254] = 3e38f;
    special[255] = 3.4e38f;
    codes.emplace_back("special", special);
    std::vector<float> linear(256);
    for (size_t i = 0; i < linear.size(); ++i) linear[i] = -1.0f + 2.0f * static_cast<float>(i) / 255.0f;
    codes.emplace_back("linear", linear);
    std::vector<float> octaves;  // -1 .. -2^-124, 0, 2^-124 .. 1, then 2 .. 32
    for (int e = 0; e <= 124; ++e) octaves.push_back(-std::ldexp(1.0f, -e));
    octaves.push_back(0.0f);
    for (int e = 124; e >= 0; --e) octaves.push_back(std::ldexp(1.0f, -e));
    for (int e = 1; e <= 5; ++e) octaves.push_back(std::ldexp(1.0f, e));
    codes.emplace_back("octaves", octaves);
    return codes;
}

struct Quantized {
    std::vector<uint8_t> codes;
    std::vector<float> absmax;
};

Quantized quantize_blockwise(const std::vector<uint8_t>& input, bnb_dtype dtype, const std::vector<float>& code,
                             int64_t n, int64_t blocksize) {
    Quantized result{std::vector<uint8_t>(static_cast<size_t>(n)),
                     std::vector<float>(static_cast<size_t>((n + blocksize - 1) / blocksize))};
    EXPECT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, dtype, input.data(), code.data(), n, blocksize,
                                                 result.codes.data(), result.absmax.data())));
    return result;
}

Quantized quantize_4bit(const std::vector<uint8_t>& input, bnb_dtype dtype, bnb_quant_type quant_type, int64_t n,
                        int64_t blocksize) {
    Quantized result{std::vector<uint8_t>(static_cast<size_t>((n + 1) / 2)),
                     std::vector<float>(static_cast<size_t>((n + blocksize - 1) / blocksize))};
    EXPECT_TRUE(succeeded(bnb_quantize_4bit(kCpu, nullptr, quant_type, dtype, input.data(), n, blocksize,
                                            result.codes.data(), result.absmax.data())));
    return result;
}

std::vector<uint8_t> dequantize_blockwise(const std::vector<uint8_t>& codes, const std::vector<float>& absmax,
                                          const std::vector<float>& code, bnb_dtype dtype, int64_t n,
                                          int64_t blocksize) {
    std::vector<uint8_t> out(static_cast<size_t>(n) * dtype_size(dtype));
    EXPECT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, dtype, codes.data(), code.data(), absmax.data(), n,
                                                   blocksize, out.data())));
    return out;
}

std::vector<uint8_t> dequantize_4bit(const std::vector<uint8_t>& packed, const std::vector<float>& absmax,
                                     bnb_quant_type quant_type, bnb_dtype dtype, int64_t n, int64_t blocksize) {
    std::vector<uint8_t> out(static_cast<size_t>(n) * dtype_size(dtype));
    EXPECT_TRUE(succeeded(bnb_dequantize_4bit(kCpu, nullptr, quant_type, dtype, packed.data(), absmax.data(), n,
                                              blocksize, out.data())));
    return out;
}

// Block scales for dequantization tests: ordinary, and every special value.
std::vector<float> make_absmax(int64_t blocks, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, from_bits(0x00000100u), from_bits(0x00800000u),
                              3e38f, 1e-30f, -2.5f, 65504.0f, 65520.0f};
    std::vector<float> absmax(static_cast<size_t>(blocks));
    for (float& value : absmax) {
        value = uniform(rng) < 0.1f ? specials[rng() % std::size(specials)] : std::pow(10.0f, uniform(rng) * 10.0f - 5.0f);
    }
    return absmax;
}

std::vector<uint8_t> random_bytes(int64_t count, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> bytes(static_cast<size_t>(count));
    for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(rng());
    return bytes;
}

std::string label(const std::string& path, bnb_dtype dtype, int64_t blocksize, int64_t n) {
    return path + " " + dtype_label(dtype) + " blocksize " + std::to_string(blocksize) + " n " + std::to_string(n);
}

class CpuIsa : public ::testing::Test {
protected:
    void SetUp() override {
        paths_ = vector_paths();
        if (paths_.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512: only the scalar path exists";
    }
    std::vector<std::string> paths_;
};

TEST(CpuIsaSelect, NamesThePathAndRejectsBadNames) {
    EXPECT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, "scalar")));
    EXPECT_STREQ(bnb_backend_variant(BNB_DEVICE_CPU), "scalar");
    EXPECT_TRUE(bnb_test::failed_with(bnb_backend_select_variant(BNB_DEVICE_CPU, "sse9"), BNB_STATUS_INVALID_ARGUMENT, {"name", "sse9"}));
    EXPECT_TRUE(bnb_test::failed_with(bnb_backend_select_variant(BNB_DEVICE_CPU, nullptr), BNB_STATUS_INVALID_ARGUMENT, {"name"}));
    EXPECT_EQ(bnb_backend_variant_supported(BNB_DEVICE_CPU, "sse9"), 0);
    EXPECT_EQ(bnb_backend_variant_supported(BNB_DEVICE_CPU, "scalar"), 1);
    for (const char* name : {"avx2", "avx512"}) {
        if (!bnb_backend_variant_supported(BNB_DEVICE_CPU, name)) {
            EXPECT_TRUE(bnb_test::failed_with(bnb_backend_select_variant(BNB_DEVICE_CPU, name), BNB_STATUS_UNSUPPORTED, {name}));
        }
    }
    EXPECT_TRUE(succeeded(bnb_backend_select_variant(BNB_DEVICE_CPU, "auto")));
    const std::vector<std::string> paths = vector_paths();
    EXPECT_EQ(bnb_backend_variant(BNB_DEVICE_CPU), paths.empty() ? std::string("scalar") : paths.back());
}

TEST_F(CpuIsa, QuantizeBlockwiseMatchesScalar) {
    for (const auto& [code_name, code] : search_codes()) {
        for (bnb_dtype dtype : kFloatDtypes) {
            for (int64_t blocksize : kQuantize8Blocksizes) {
                for (int64_t n : kSizes) {
                    const auto input = make_input(dtype, n, blocksize, static_cast<uint64_t>(n * 31 + blocksize));
                    Quantized expected;
                    {
                        IsaScope scalar("scalar");
                        expected = quantize_blockwise(input, dtype, code, n, blocksize);
                    }
                    for (const std::string& path : paths_) {
                        IsaScope scope(path);
                        const Quantized actual = quantize_blockwise(input, dtype, code, n, blocksize);
                        ASSERT_TRUE(bits_equal(actual.absmax.data(), expected.absmax.data(),
                                               static_cast<int64_t>(expected.absmax.size()), 4))
                            << "absmax, code " << code_name << ", " << label(path, dtype, blocksize, n);
                        ASSERT_TRUE(bits_equal(actual.codes.data(), expected.codes.data(), n, 1))
                            << "codes, code " << code_name << ", " << label(path, dtype, blocksize, n);
                    }
                }
            }
        }
    }
}

// Every midpoint of each code and its neighbours up to 3 ulps away, scaled by
// a block whose absmax is exactly 1 (so the reciprocal is 1 and s is the value).
TEST_F(CpuIsa, QuantizeBlockwiseDecidesMidpointsAsScalar) {
    for (const auto& [code_name, code] : search_codes()) {
        std::vector<float> values;
        for (int k = 0; k + 1 < 256; ++k) {
            const float midpoint = (code[static_cast<size_t>(k)] + code[static_cast<size_t>(k) + 1]) * 0.5f;
            for (const float anchor : {midpoint, code[static_cast<size_t>(k)]}) {
                if (!(std::fabs(anchor) <= 1.0f)) continue;
                for (int ulps = -3; ulps <= 3; ++ulps) {
                    values.push_back(from_bits(to_bits(anchor) + static_cast<uint32_t>(ulps)));
                }
            }
        }
        const int64_t blocksize = 64;
        std::vector<float> input;
        for (size_t i = 0; i < values.size(); ++i) {
            if (input.size() % blocksize == 0) input.push_back(1.0f);
            input.push_back(std::fabs(values[i]) <= 1.0f ? values[i] : 0.0f);
        }
        const int64_t n = static_cast<int64_t>(input.size());
        std::vector<uint8_t> bytes(input.size() * 4);
        std::memcpy(bytes.data(), input.data(), bytes.size());
        Quantized expected;
        {
            IsaScope scalar("scalar");
            expected = quantize_blockwise(bytes, BNB_DTYPE_FLOAT32, code, n, blocksize);
        }
        for (const std::string& path : paths_) {
            IsaScope scope(path);
            const Quantized actual = quantize_blockwise(bytes, BNB_DTYPE_FLOAT32, code, n, blocksize);
            ASSERT_TRUE(bits_equal(actual.codes.data(), expected.codes.data(), n, 1)) << path << ", code " << code_name;
        }
    }
}

TEST_F(CpuIsa, Quantize4bitMatchesScalar) {
    for (bnb_quant_type quant_type : {BNB_QUANT_NF4, BNB_QUANT_FP4}) {
        for (bnb_dtype dtype : kFloatDtypes) {
            for (int64_t blocksize : kFourBitBlocksizes) {
                for (int64_t n : kSizes) {
                    const auto input = make_input(dtype, n, blocksize, static_cast<uint64_t>(n * 17 + blocksize));
                    Quantized expected;
                    {
                        IsaScope scalar("scalar");
                        expected = quantize_4bit(input, dtype, quant_type, n, blocksize);
                    }
                    for (const std::string& path : paths_) {
                        IsaScope scope(path);
                        const Quantized actual = quantize_4bit(input, dtype, quant_type, n, blocksize);
                        const std::string where = std::string(quant_type == BNB_QUANT_NF4 ? "nf4 " : "fp4 ") +
                                                  label(path, dtype, blocksize, n);
                        ASSERT_TRUE(bits_equal(actual.absmax.data(), expected.absmax.data(),
                                               static_cast<int64_t>(expected.absmax.size()), 4))
                            << "absmax, " << where;
                        ASSERT_TRUE(bits_equal(actual.codes.data(), expected.codes.data(),
                                               static_cast<int64_t>(expected.codes.size()), 1))
                            << "packed, " << where;
                    }
                }
            }
        }
    }
}

// Values on and next to each NF4 / FP4 threshold, both signs, in blocks whose
// absmax is exactly 1.
TEST_F(CpuIsa, Quantize4bitDecidesThresholdsAsScalar) {
    std::vector<float> anchors;
    for (int k = 0; k < 15; ++k) {
        const float nf4_midpoint = (codebook(BNB_CODEBOOK_NF4)[static_cast<size_t>(k)] +
                                    codebook(BNB_CODEBOOK_NF4)[static_cast<size_t>(k) + 1]) * 0.5f;
        anchors.push_back(nf4_midpoint);
    }
    for (float magnitude : {0.00260417f, 0.0859375f, 0.208333328f, 0.291666657f, 0.416666687f, 0.583333015f,
                            0.833333313f}) {
        anchors.push_back(magnitude);
        anchors.push_back(-magnitude);
    }
    std::vector<float> input;
    const int64_t blocksize = 32;
    for (float anchor : anchors) {
        for (int ulps = -8; ulps <= 8; ++ulps) {
            if (input.size() % blocksize == 0) input.push_back(1.0f);
            input.push_back(from_bits(to_bits(anchor) + static_cast<uint32_t>(ulps)));
        }
    }
    const int64_t n = static_cast<int64_t>(input.size());
    std::vector<uint8_t> bytes(input.size() * 4);
    std::memcpy(bytes.data(), input.data(), bytes.size());
    for (bnb_quant_type quant_type : {BNB_QUANT_NF4, BNB_QUANT_FP4}) {
        Quantized expected;
        {
            IsaScope scalar("scalar");
            expected = quantize_4bit(bytes, BNB_DTYPE_FLOAT32, quant_type, n, blocksize);
        }
        for (const std::string& path : paths_) {
            IsaScope scope(path);
            const Quantized actual = quantize_4bit(bytes, BNB_DTYPE_FLOAT32, quant_type, n, blocksize);
            ASSERT_TRUE(bits_equal(actual.codes.data(), expected.codes.data(),
                                   static_cast<int64_t>(expected.codes.size()), 1))
                << path << (quant_type == BNB_QUANT_NF4 ? " nf4" : " fp4");
        }
    }
}

TEST_F(CpuIsa, DequantizeBlockwiseMatchesScalar) {
    for (const auto& [code_name, code] : search_codes()) {
        for (bnb_dtype dtype : kFloatDtypes) {
            for (int64_t blocksize : kDequantize8Blocksizes) {
                for (int64_t n : kSizes) {
                    const int64_t blocks = (n + blocksize - 1) / blocksize;
                    const auto codes = random_bytes(n, static_cast<uint64_t>(n + blocksize));
                    const auto absmax = make_absmax(blocks, static_cast<uint64_t>(n * 3 + blocksize));
                    std::vector<uint8_t> expected;
                    {
                        IsaScope scalar("scalar");
                        expected = dequantize_blockwise(codes, absmax, code, dtype, n, blocksize);
                    }
                    for (const std::string& path : paths_) {
                        IsaScope scope(path);
                        const auto actual = dequantize_blockwise(codes, absmax, code, dtype, n, blocksize);
                        ASSERT_TRUE(bits_equal(actual.data(), expected.data(), n, dtype_size(dtype)))
                            << "code " << code_name << ", " << label(path, dtype, blocksize, n);
                    }
                }
            }
        }
    }
}

// Every fp16 and bf16 rounding boundary: scales at the float32 midpoint between
// two neighbouring 16-bit values and one ulp either side, times code entry 1.0.
TEST_F(CpuIsa, DequantizeRoundsLikeScalarAtEvery16BitBoundary) {
    std::vector<float> scales;
    for (uint32_t half = 0; half < 0x7c00u; ++half) {
        // Midpoint of half and half + 1, exactly representable in float32.
        const auto half_to_float = [](uint32_t h) {
            const uint32_t exponent = h >> 10;
            const float mantissa = static_cast<float>(h & 0x3ffu);
            return exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1.0f + mantissa / 1024.0f, static_cast<int>(exponent) - 15);
        };
        const float midpoint = (half_to_float(half) + half_to_float(half + 1)) * 0.5f;
        for (int ulps = -1; ulps <= 1; ++ulps) scales.push_back(from_bits(to_bits(midpoint) + static_cast<uint32_t>(ulps)));
    }
    for (uint32_t upper = 0; upper < 0x7f80u; upper += 7) {
        const uint32_t midpoint = (upper << 16) | 0x8000u;
        for (int ulps = -1; ulps <= 1; ++ulps) scales.push_back(from_bits(midpoint + static_cast<uint32_t>(ulps)));
    }
    const size_t positive = scales.size();
    for (size_t i = 0; i < positive; ++i) scales.push_back(-scales[i]);
    const int64_t blocksize = 16;
    const int64_t n = static_cast<int64_t>(scales.size()) * blocksize;
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    ASSERT_EQ(code[255], 1.0f);
    const std::vector<uint8_t> codes(static_cast<size_t>(n), 255);
    for (bnb_dtype dtype : {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16}) {
        std::vector<uint8_t> expected;
        {
            IsaScope scalar("scalar");
            expected = dequantize_blockwise(codes, scales, code, dtype, n, blocksize);
        }
        for (const std::string& path : paths_) {
            IsaScope scope(path);
            const auto actual = dequantize_blockwise(codes, scales, code, dtype, n, blocksize);
            ASSERT_TRUE(bits_equal(actual.data(), expected.data(), n, 2)) << path << " " << dtype_label(dtype);
        }
    }
}

TEST_F(CpuIsa, Dequantize4bitMatchesScalar) {
    for (bnb_quant_type quant_type : {BNB_QUANT_NF4, BNB_QUANT_FP4}) {
        for (bnb_dtype dtype : kFloatDtypes) {
            for (int64_t blocksize : kFourBitBlocksizes) {
                for (int64_t n : kSizes) {
                    const int64_t blocks = (n + blocksize - 1) / blocksize;
                    const auto packed = random_bytes((n + 1) / 2, static_cast<uint64_t>(n + 5 * blocksize));
                    const auto absmax = make_absmax(blocks, static_cast<uint64_t>(n * 7 + blocksize));
                    std::vector<uint8_t> expected;
                    {
                        IsaScope scalar("scalar");
                        expected = dequantize_4bit(packed, absmax, quant_type, dtype, n, blocksize);
                    }
                    for (const std::string& path : paths_) {
                        IsaScope scope(path);
                        const auto actual = dequantize_4bit(packed, absmax, quant_type, dtype, n, blocksize);
                        ASSERT_TRUE(bits_equal(actual.data(), expected.data(), n, dtype_size(dtype)))
                            << (quant_type == BNB_QUANT_NF4 ? "nf4 " : "fp4 ") << label(path, dtype, blocksize, n);
                    }
                }
            }
        }
    }
}

// Blocks split among threads: each thread's range starts mid-array.
TEST_F(CpuIsa, ThreadedRangesMatchScalar) {
    const int64_t n = kThreadedSize;
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    for (bnb_dtype dtype : {BNB_DTYPE_FLOAT32, BNB_DTYPE_BFLOAT16}) {
        const auto input = make_input(dtype, n, 64, 99);
        const auto codes = random_bytes(n, 5);
        const auto absmax = make_absmax((n + 63) / 64, 6);
        Quantized expected_8bit, expected_4bit;
        std::vector<uint8_t> expected_dequantized_8bit, expected_dequantized_4bit;
        {
            IsaScope scalar("scalar");
            expected_8bit = quantize_blockwise(input, dtype, code, n, 64);
            expected_4bit = quantize_4bit(input, dtype, BNB_QUANT_NF4, n, 64);
            expected_dequantized_8bit = dequantize_blockwise(codes, absmax, code, dtype, n, 64);
            expected_dequantized_4bit = dequantize_4bit(codes, absmax, BNB_QUANT_FP4, dtype, n, 64);
        }
        for (const std::string& path : paths_) {
            IsaScope scope(path);
            const std::string where = label(path, dtype, 64, n);
            const Quantized actual_8bit = quantize_blockwise(input, dtype, code, n, 64);
            EXPECT_TRUE(bits_equal(actual_8bit.codes.data(), expected_8bit.codes.data(), n, 1)) << where;
            EXPECT_TRUE(bits_equal(actual_8bit.absmax.data(), expected_8bit.absmax.data(),
                                   static_cast<int64_t>(expected_8bit.absmax.size()), 4)) << where;
            const Quantized actual_4bit = quantize_4bit(input, dtype, BNB_QUANT_NF4, n, 64);
            EXPECT_TRUE(bits_equal(actual_4bit.codes.data(), expected_4bit.codes.data(), (n + 1) / 2, 1)) << where;
            EXPECT_TRUE(bits_equal(dequantize_blockwise(codes, absmax, code, dtype, n, 64).data(),
                                   expected_dequantized_8bit.data(), n, dtype_size(dtype))) << where;
            EXPECT_TRUE(bits_equal(dequantize_4bit(codes, absmax, BNB_QUANT_FP4, dtype, n, 64).data(),
                                   expected_dequantized_4bit.data(), n, dtype_size(dtype))) << where;
        }
    }
}

#if defined(__x86_64__)
// A caller may run with flush-to-zero, denormals-are-zero and another rounding
// mode (torch.set_flush_denormal(True) sets the first two): every path still
// gives the default-mode bytes, and the caller's mode is restored.
TEST(CpuIsaFloatMode, ResultsIgnoreTheCallersFloatMode) {
    const int64_t n = 4097;  // one thread: the caller's mode is the kernels' mode
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const unsigned caller_mode = 0x1f80u | 0x8000u /* FTZ */ | 0x0040u /* DAZ */ | 0x6000u /* toward zero */;
    std::vector<std::string> paths = vector_paths();
    paths.insert(paths.begin(), "scalar");
    for (bnb_dtype dtype : kFloatDtypes) {
        const auto input = make_input(dtype, n, 64, 3);
        const auto codes = random_bytes(n, 4);
        const auto absmax = make_absmax((n + 63) / 64, 8);
        Quantized expected_8bit, expected_4bit;
        std::vector<uint8_t> expected_dequantized_8bit, expected_dequantized_4bit;
        {
            IsaScope scalar("scalar");
            expected_8bit = quantize_blockwise(input, dtype, code, n, 64);
            expected_4bit = quantize_4bit(input, dtype, BNB_QUANT_FP4, n, 64);
            expected_dequantized_8bit = dequantize_blockwise(codes, absmax, code, dtype, n, 64);
            expected_dequantized_4bit = dequantize_4bit(codes, absmax, BNB_QUANT_NF4, dtype, n, 64);
        }
        for (const std::string& path : paths) {
            IsaScope scope(path);
            const unsigned saved = _mm_getcsr();
            _mm_setcsr(caller_mode);
            const Quantized actual_8bit = quantize_blockwise(input, dtype, code, n, 64);
            const Quantized actual_4bit = quantize_4bit(input, dtype, BNB_QUANT_FP4, n, 64);
            const auto dequantized_8bit = dequantize_blockwise(codes, absmax, code, dtype, n, 64);
            const auto dequantized_4bit = dequantize_4bit(codes, absmax, BNB_QUANT_NF4, dtype, n, 64);
            const unsigned after = _mm_getcsr();
            _mm_setcsr(saved);
            const std::string where = label(path, dtype, 64, n);
            EXPECT_EQ(after & 0xffc0u, caller_mode & 0xffc0u) << "the caller's mode was not restored, " << where;
            EXPECT_TRUE(bits_equal(actual_8bit.codes.data(), expected_8bit.codes.data(), n, 1)) << where;
            EXPECT_TRUE(bits_equal(actual_8bit.absmax.data(), expected_8bit.absmax.data(),
                                   static_cast<int64_t>(expected_8bit.absmax.size()), 4)) << where;
            EXPECT_TRUE(bits_equal(actual_4bit.codes.data(), expected_4bit.codes.data(), (n + 1) / 2, 1)) << where;
            EXPECT_TRUE(bits_equal(dequantized_8bit.data(), expected_dequantized_8bit.data(), n, dtype_size(dtype)))
                << where;
            EXPECT_TRUE(bits_equal(dequantized_4bit.data(), expected_dequantized_4bit.data(), n, dtype_size(dtype)))
                << where;
        }
    }
}
#endif

// Every fp16 and bf16 bit pattern as quantizer input, in blocks of 64 that also
// hold one value setting the block's scale.
TEST_F(CpuIsa, QuantizeEvery16BitInput) {
    std::mt19937_64 rng(11);
    const int64_t blocksize = 64;
    std::vector<uint16_t> input;
    for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
        if (input.size() % blocksize == 0) input.push_back(static_cast<uint16_t>(rng()));
        input.push_back(static_cast<uint16_t>(bits));
    }
    const int64_t n = static_cast<int64_t>(input.size());
    std::vector<uint8_t> bytes(input.size() * 2);
    std::memcpy(bytes.data(), input.data(), bytes.size());
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    for (bnb_dtype dtype : {BNB_DTYPE_FLOAT16, BNB_DTYPE_BFLOAT16}) {
        Quantized expected_8bit, expected_nf4, expected_fp4;
        {
            IsaScope scalar("scalar");
            expected_8bit = quantize_blockwise(bytes, dtype, code, n, blocksize);
            expected_nf4 = quantize_4bit(bytes, dtype, BNB_QUANT_NF4, n, blocksize);
            expected_fp4 = quantize_4bit(bytes, dtype, BNB_QUANT_FP4, n, blocksize);
        }
        for (const std::string& path : paths_) {
            IsaScope scope(path);
            const Quantized actual_8bit = quantize_blockwise(bytes, dtype, code, n, blocksize);
            const Quantized actual_nf4 = quantize_4bit(bytes, dtype, BNB_QUANT_NF4, n, blocksize);
            const Quantized actual_fp4 = quantize_4bit(bytes, dtype, BNB_QUANT_FP4, n, blocksize);
            const int64_t blocks = static_cast<int64_t>(expected_8bit.absmax.size());
            EXPECT_TRUE(bits_equal(actual_8bit.absmax.data(), expected_8bit.absmax.data(), blocks, 4)) << path;
            EXPECT_TRUE(bits_equal(actual_8bit.codes.data(), expected_8bit.codes.data(), n, 1)) << path;
            EXPECT_TRUE(bits_equal(actual_nf4.codes.data(), expected_nf4.codes.data(), (n + 1) / 2, 1)) << path;
            EXPECT_TRUE(bits_equal(actual_fp4.codes.data(), expected_fp4.codes.data(), (n + 1) / 2, 1)) << path;
        }
    }
}

// Every float32 in [-1, 1] (2^31 values less the larger magnitudes), 63 per
// block after a 1.0 that fixes the scale at 1; the 8-bit codes with both dynamic
// maps (the signed one with a sign on each side of every threshold).
TEST_F(CpuIsa, ExhaustiveFloat32InUnitRange) {
    const char* enabled = std::getenv("BNB_TEST_EXHAUSTIVE");
    if (enabled == nullptr || std::string(enabled) != "1") {
        GTEST_SKIP() << "takes minutes; set BNB_TEST_EXHAUSTIVE=1 to run it";
    }
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const std::vector<float> unsigned_code = codebook(BNB_CODEBOOK_DYNAMIC_UNSIGNED);
    const int64_t blocksize = 64;
    const int64_t chunk_values = int64_t{1} << 24;  // per call, so memory stays bounded
    const uint64_t one_bits = 0x3f800000u;
    const uint64_t total = 2 * (one_bits + 1);  // [+0, 1.0] and [-0, -1.0]
    std::vector<float> input;
    for (uint64_t first = 0; first < total; first += static_cast<uint64_t>(chunk_values)) {
        input.clear();
        for (uint64_t k = first; k < std::min<uint64_t>(total, first + chunk_values); ++k) {
            if (input.size() % blocksize == 0) input.push_back(1.0f);
            const uint64_t magnitude = k % (one_bits + 1);
            input.push_back(from_bits(static_cast<uint32_t>(magnitude | (k > one_bits ? 0x80000000u : 0u))));
        }
        const int64_t n = static_cast<int64_t>(input.size());
        std::vector<uint8_t> bytes(input.size() * 4);
        std::memcpy(bytes.data(), input.data(), bytes.size());
        Quantized expected_8bit, expected_unsigned, expected_nf4, expected_fp4;
        {
            IsaScope scalar("scalar");
            expected_8bit = quantize_blockwise(bytes, BNB_DTYPE_FLOAT32, code, n, blocksize);
            expected_unsigned = quantize_blockwise(bytes, BNB_DTYPE_FLOAT32, unsigned_code, n, blocksize);
            expected_nf4 = quantize_4bit(bytes, BNB_DTYPE_FLOAT32, BNB_QUANT_NF4, n, blocksize);
            expected_fp4 = quantize_4bit(bytes, BNB_DTYPE_FLOAT32, BNB_QUANT_FP4, n, blocksize);
        }
        for (const std::string& path : paths_) {
            IsaScope scope(path);
            ASSERT_TRUE(bits_equal(quantize_blockwise(bytes, BNB_DTYPE_FLOAT32, code, n, blocksize).codes.data(),
                                   expected_8bit.codes.data(), n, 1))
                << path << " 8-bit, chunk at " << first;
            ASSERT_TRUE(bits_equal(quantize_blockwise(bytes, BNB_DTYPE_FLOAT32, unsigned_code, n, blocksize).codes.data(),
                                   expected_unsigned.codes.data(), n, 1))
                << path << " 8-bit unsigned code, chunk at " << first;
            ASSERT_TRUE(bits_equal(quantize_4bit(bytes, BNB_DTYPE_FLOAT32, BNB_QUANT_NF4, n, blocksize).codes.data(),
                                   expected_nf4.codes.data(), (n + 1) / 2, 1))
                << path << " nf4, chunk at " << first;
            ASSERT_TRUE(bits_equal(quantize_4bit(bytes, BNB_DTYPE_FLOAT32, BNB_QUANT_FP4, n, blocksize).codes.data(),
                                   expected_fp4.codes.data(), (n + 1) / 2, 1))
                << path << " fp4, chunk at " << first;
        }
    }
}

}  // namespace
