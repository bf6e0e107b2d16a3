// The floating-point mode the kernels compute in.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace bnb::cpu {

// Sets the calling thread's SSE/AVX control word to the IEEE default (round to
// nearest even, no flush-to-zero or denormals-are-zero, exceptions masked) for
// the guard's lifetime. The caller may have changed it (torch.set_flush_denormal
// sets FTZ and DAZ); the kernels' bytes must not depend on that, and their
// flush-to-zero emulation is explicit.
class DefaultFloatMode {
public:
#if defined(__x86_64__) || defined(_M_X64)
    DefaultFloatMode() : saved_(_mm_getcsr()) {
        if (saved_ != kDefault) _mm_setcsr(kDefault);
    }
    ~DefaultFloatMode() {
        if (saved_ != kDefault) _mm_setcsr(saved_);
    }

private:
    static constexpr unsigned kDefault = 0x1f80u;  // all exceptions masked, RNE, FTZ and DAZ off
    unsigned saved_;
#else
    DefaultFloatMode() = default;
#endif
    DefaultFloatMode(const DefaultFloatMode&) = delete;
    DefaultFloatMode& operator=(const DefaultFloatMode&) = delete;
};

}  // namespace bnb::cpu
