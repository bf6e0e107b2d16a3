// What the x86 vector layers (vec_avx2.h, vec_avx512.h) build on.
#pragma once

#if !defined(__x86_64__) || !(defined(__GNUC__) || defined(__clang__))
#error "the x86 vector layers need x86-64 and GCC or Clang (CMake leaves avx2.cpp and avx512.cpp out elsewhere)"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "common/code_search.h"
#include "common/float_types.h"
#include "common/fourbit_tables.h"
#include "common/lanes.h"
#include "common/rcp_approx.h"
