// Facts of the 4-bit formats (formats.md sections 1.1, 1.2, 3.1), shared by every
// backend. constexpr so that device code can use them as immediates.
#pragma once

#include <cstdint>

#include "bitsandbytes/bitsandbytes.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define BNB_HOST_DEVICE __host__ __device__
#else
#define BNB_HOST_DEVICE
#endif

namespace bnb {

// get_4bit_type("nf4"): code i dequantizes to kNf4Values[i].
inline constexpr float kNf4Values[16] = {
    -1.0f, -0.696192801f, -0.525073051f, -0.394917488f,
    -0.284441382f, -0.18477343f, -0.0910500363f, 0.0f,
    0.0795802996f, 0.160930201f, 0.246112302f, 0.337915242f,
    0.440709829f, 0.562617004f, 0.722956836f, 1.0f,
};

// Decision thresholds between neighbouring NF4 codes: the code of s is the number
// of thresholds that s exceeds (strict >). They are upstream's decimal literals
// rounded once to float32; four differ by one ulp from the float32 midpoints of
// kNf4Values, and they decide ties.
inline constexpr float kNf4Thresholds[15] = {
    -0.84809643f, -0.610632896f, -0.45999527f, -0.33967942f,
    -0.234607399f, -0.137911737f, -0.0455250181f, 0.0397901498f,
    0.120255254f, 0.203521252f, 0.292013764f, 0.389312536f,
    0.501663387f, 0.64278692f, 0.861478388f,
};

// FP4 magnitude of code & 7 (1 sign bit, 2 exponent bits, 1 mantissa bit, bit order).
inline constexpr float kFp4Magnitudes[8] = {
    0.0f, 0.00520833349f, 0.666666687f, 1.0f,
    0.333333343f, 0.5f, 0.166666672f, 0.25f,
};

// get_4bit_type("fp4") as upstream returns it: entry 8 is +0 (kernels dequantize
// code 8 to -0, see fp4_value).
inline constexpr float kFp4CodebookValues[16] = {
    0.0f, 0.00520833349f, 0.666666687f, 1.0f,
    0.333333343f, 0.5f, 0.166666672f, 0.25f,
    0.0f, -0.00520833349f, -0.666666687f, -1.0f,
    -0.333333343f, -0.5f, -0.166666672f, -0.25f,
};

// FP4 magnitude thresholds in increasing order and the magnitude index chosen
// above each one (strict >); at or below the first threshold the index is 0.
inline constexpr float kFp4MagnitudeThresholds[7] = {
    0.00260417f, 0.0859375f, 0.208333328f, 0.291666657f,
    0.416666687f, 0.583333015f, 0.833333313f,
};
inline constexpr uint8_t kFp4MagnitudeIndexAbove[7] = {1, 6, 7, 4, 5, 2, 3};

// The 4-bit code of a scaled value s (|s| <= 1 for finite blocks; NaN -> 0).
BNB_HOST_DEVICE inline uint8_t nf4_code(float s) {
    uint8_t code = 0;
    for (int k = 0; k < 15; ++k) code += s > kNf4Thresholds[k] ? 1 : 0;
    return code;
}

BNB_HOST_DEVICE inline uint8_t fp4_code(float s) {
    const uint8_t sign = s < 0.0f ? 8 : 0;
    const float a = s < 0.0f ? -s : s;
    uint8_t magnitude = 0;
    for (int k = 0; k < 7; ++k) magnitude = a > kFp4MagnitudeThresholds[k] ? kFp4MagnitudeIndexAbove[k] : magnitude;
    return magnitude | sign;
}

// Dequantization value of an FP4 code: the sign applies to zero too (code 8 -> -0).
BNB_HOST_DEVICE inline float fp4_value(uint8_t code) {
    const float magnitude = kFp4Magnitudes[code & 7];
    return (code & 8) ? -magnitude : magnitude;
}

// Codebook values for the C ABI getters (dynamic maps live in codebooks.cpp).
const float* codebook_values(bnb_codebook which);
int64_t codebook_size(bnb_codebook which);

}  // namespace bnb
