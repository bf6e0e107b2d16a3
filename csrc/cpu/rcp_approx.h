#pragma once

namespace bnb::cpu {

// Bit-exact emulation of the PTX instruction rcp.approx.ftz.f32, which is what
// `1.0f / x` compiles to in upstream's CUDA build. Quantizers multiply by this
// reciprocal, so matching CUDA's bytes on the CPU needs it. The measured table
// (data/rcp_approx_f32_delta.bin, shared/golden/README.md) holds the ulp offset of
// the approximation from the correctly rounded reciprocal for each mantissa.
float rcp_approx_ftz(float x);

}  // namespace bnb::cpu
