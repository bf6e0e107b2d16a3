// The 4-bit backend slots: the blocks split among threads, each range run by
// the active instruction set's kernels.
#include "common/float_mode.h"
#include "common/float_types.h"
#include "common/memory_hints.h"
#include "common/parallel.h"
#include "fourbit/fourbit.h"

namespace bnb::cpu {

bnb_status quantize_4bit(const Quantize4bitArgs& args) {
    const FourbitKernels& kernels = BNB_CPU_ACTIVE_KERNELS(kFourbitKernels);
    advise_huge_pages(args.packed, static_cast<size_t>((args.n + 1) / 2));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // About 0.6 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 16, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.quantize(args, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status dequantize_4bit(const Dequantize4bitArgs& args) {
    const FourbitKernels& kernels = BNB_CPU_ACTIVE_KERNELS(kFourbitKernels);
    advise_huge_pages(args.out, static_cast<size_t>(args.n * dtype_bytes(args.dtype)));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // About 0.1 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 19, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.dequantize(args, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
