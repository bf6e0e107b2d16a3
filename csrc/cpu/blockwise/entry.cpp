// The blockwise 8-bit backend slots: the blocks split among threads, each range
// run by the active instruction set's kernels.
#include "blockwise/blockwise.h"
#include "common/float_mode.h"
#include "common/float_types.h"
#include "common/memory_hints.h"
#include "common/parallel.h"

namespace bnb::cpu {

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args) {
    const DefaultFloatMode float_mode;  // the midpoints of the tables round like the kernels' own
    const BlockwiseKernels& kernels = BNB_CPU_ACTIVE_KERNELS(kBlockwiseKernels);
    CodeSearchTables tables;
    build_code_search_tables(args.code, &tables);
    advise_huge_pages(args.out, static_cast<size_t>(args.n));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // About 1.6 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 15, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.quantize(args, tables, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args) {
    const BlockwiseKernels& kernels = BNB_CPU_ACTIVE_KERNELS(kBlockwiseKernels);
    advise_huge_pages(args.out, static_cast<size_t>(args.n * dtype_bytes(args.dtype)));
    const int64_t blocks = (args.n + args.blocksize - 1) / args.blocksize;
    // 0.1 to 0.2 ns per element on one core.
    for_each_block_range(blocks, args.n, int64_t{1} << 18, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        kernels.dequantize(args, first, last);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
