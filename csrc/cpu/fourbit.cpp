// 4-bit NF4 / FP4 quantize / dequantize on the CPU: the entry points of the
// backend table, bit-identical to upstream's CUDA kernels (formats.md section 3).
#include "cpu_kernels.h"
#include "float_types.h"
#include "kernel_set.h"
#include "float_mode.h"
#include "memory_hints.h"
#include "parallel.h"

namespace bnb::cpu {

bnb_status quantize_4bit(const Quantize4bitArgs& args) {
    const KernelSet& kernels = active_kernels();
    advise_huge_pages(args.packed, static_cast<size_t>((args.n + 1) / 2));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // About 0.6 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 16, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.quantize_4bit(args, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status dequantize_4bit(const Dequantize4bitArgs& args) {
    const KernelSet& kernels = active_kernels();
    advise_huge_pages(args.out, static_cast<size_t>(args.n * dtype_bytes(args.dtype)));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // About 0.1 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 19, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.dequantize_4bit(args, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
