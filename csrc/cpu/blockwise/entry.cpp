// The blockwise 8-bit backend slots: the blocks split among threads, each range
// run by the active instruction set's kernels.
#include "blockwise/blockwise.h"
#include "common/float_types.h"
#include "common/run_over_blocks.h"

namespace bnb::cpu {

bnb_status quantize_blockwise(const QuantizeBlockwiseArgs& args) {
    const DefaultFloatMode float_mode;  // the midpoints of the tables round like the kernels' own
    CodeSearchTables tables;
    build_code_search_tables(args.code, &tables);
    const auto quantize = BNB_CPU_ACTIVE_KERNELS(kBlockwiseKernels).quantize;
    // About 1.6 ns per element on one core.
    return run_over_blocks(args, args.out, static_cast<size_t>(args.n), int64_t{1} << 15,
                           [&](const QuantizeBlockwiseArgs& range_args, int64_t first, int64_t last) {
                               quantize(range_args, tables, first, last);
                           });
}

bnb_status dequantize_blockwise(const DequantizeBlockwiseArgs& args) {
    // 0.1 to 0.2 ns per element on one core.
    return run_over_blocks(args, args.out, static_cast<size_t>(args.n * dtype_bytes(args.dtype)), int64_t{1} << 18,
                           BNB_CPU_ACTIVE_KERNELS(kBlockwiseKernels).dequantize);
}

}  // namespace bnb::cpu
