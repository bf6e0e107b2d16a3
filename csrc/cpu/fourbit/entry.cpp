// The 4-bit backend slots: the blocks split among threads, each range run by
// the active instruction set's kernels.
#include "common/float_types.h"
#include "common/run_over_blocks.h"
#include "fourbit/fourbit.h"

namespace bnb::cpu {

bnb_status quantize_4bit(const Quantize4bitArgs& args) {
    // About 0.6 ns per element on one core.
    return run_over_blocks(args, args.packed, static_cast<size_t>((args.n + 1) / 2), int64_t{1} << 16,
                           BNB_CPU_ACTIVE_KERNELS(kFourbitKernels).quantize);
}

bnb_status dequantize_4bit(const Dequantize4bitArgs& args) {
    // About 0.1 ns per element on one core.
    return run_over_blocks(args, args.out, static_cast<size_t>(args.n * dtype_bytes(args.dtype)), int64_t{1} << 19,
                           BNB_CPU_ACTIVE_KERNELS(kFourbitKernels).dequantize);
}

}  // namespace bnb::cpu
