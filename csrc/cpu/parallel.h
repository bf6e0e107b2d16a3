// Splits a call's blocks into one contiguous range per OpenMP thread.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace bnb::cpu {

// Below this many elements per thread, waking the thread team costs more than the
// work it would take over (measured with benchmarks/bench_cpu.cpp on 2 cores).
inline constexpr int64_t kMinElementsPerThread = 1 << 15;

// Calls run(first_block, last_block) once per participating thread, the ranges
// together covering [0, blocks) in order.
template <typename Run>
void for_each_block_range(int64_t blocks, int64_t elements, Run&& run) {
#ifdef _OPENMP
    const int64_t useful_threads = std::max<int64_t>(1, elements / kMinElementsPerThread);
    const int threads = static_cast<int>(std::min<int64_t>({useful_threads, blocks, omp_get_max_threads()}));
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            const int64_t team = omp_get_num_threads();
            const int64_t rank = omp_get_thread_num();
            const int64_t first = blocks * rank / team;
            const int64_t last = blocks * (rank + 1) / team;
            if (first < last) run(first, last);
        }
        return;
    }
#endif
    (void)elements;
    run(int64_t{0}, blocks);
}

}  // namespace bnb::cpu
