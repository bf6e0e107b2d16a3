// The float32 arithmetic of upstream's CUDA build (--use_fast_math): flush-to-zero
// operations and rcp.approx.ftz.f32 from the measured table (shared/golden/README.md),
// so that host references round as the device does. The tests' target defines
// BNB_RCP_TABLE_PATH.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <vector>

namespace bnb_test {

inline float ftz(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }
inline float fmul(float a, float b) { return ftz(ftz(a) * ftz(b)); }
inline float fadd(float a, float b) { return ftz(ftz(a) + ftz(b)); }
inline float fsub(float a, float b) { return ftz(ftz(a) - ftz(b)); }
inline float ffma(float a, float b, float c) { return ftz(std::fma(ftz(a), ftz(b), ftz(c))); }
inline float fsqrt(float x) { return ftz(std::sqrt(ftz(x))); }

inline const std::vector<uint8_t>& rcp_table() {
    static const std::vector<uint8_t> table = [] {
        std::ifstream file(BNB_RCP_TABLE_PATH, std::ios::binary);
        return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
    }();
    return table;
}

inline float rcp_approx(float x) {
    x = ftz(x);
    if (x == 0.0f) return std::copysign(std::numeric_limits<float>::infinity(), x);
    if (std::isnan(x)) return x;
    if (std::isinf(x)) return std::copysign(0.0f, x);
    const float exact = ftz(static_cast<float>(1.0 / static_cast<double>(x)));
    if (exact == 0.0f) return exact;
    const uint32_t mantissa = std::bit_cast<uint32_t>(x) & 0x7fffffu;
    const uint32_t entry = (rcp_table()[mantissa >> 2] >> (2 * (mantissa & 3u))) & 3u;
    return std::bit_cast<float>(std::bit_cast<uint32_t>(exact) + entry - 1u);
}

// __fdividef(a, b) and a / b under --use_fast_math.
inline float fdiv(float a, float b) { return fmul(a, rcp_approx(b)); }

}  // namespace bnb_test
