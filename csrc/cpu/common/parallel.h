// Splits a call's blocks into one contiguous range per OpenMP thread.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace bnb::cpu {

// Calls run(first_block, last_block) once per participating thread, the ranges
// together covering [0, blocks) in order. A thread joins only for at least
// `min_elements_per_thread` elements: waking a sleeping OpenMP team costs about
// 30 us on the 2-core KVM guest of benchmarks/RESULTS.md (1 us while its threads
// still spin), so each op sets the count that takes its AVX-512 kernel about
// 50 us on one core.
template <typename Run>
void for_each_block_range(int64_t blocks, int64_t elements, int64_t min_elements_per_thread, Run&& run) {
#ifdef _OPENMP
    const int64_t useful_threads = std::max<int64_t>(1, elements / min_elements_per_thread);
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
    (void)min_elements_per_thread;
    run(int64_t{0}, blocks);
}

}  // namespace bnb::cpu
