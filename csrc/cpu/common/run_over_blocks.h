// The path every backend slot of the CPU kernels takes after the core's checks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bitsandbytes/bitsandbytes.h"
#include "buffers.h"
#include "common/float_mode.h"
#include "common/memory_hints.h"
#include "common/parallel.h"

namespace bnb::cpu {

// Hints huge pages for the output [out, out + out_bytes), then runs
// kernel(args, first_block, last_block) once per thread over the call's blocks
// (for_each_block_range), each thread in the IEEE default float mode.
template <typename Args, typename Kernel>
bnb_status run_over_blocks(const Args& args, void* out, size_t out_bytes, int64_t min_elements_per_thread,
                           const Kernel& kernel) {
    advise_huge_pages(out, out_bytes);
    const int64_t blocks = ceil_div(args.n, args.blocksize);
    for_each_block_range(blocks, args.n, min_elements_per_thread, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernel(args, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
