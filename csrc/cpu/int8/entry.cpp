// The CPU backend's LLM.int8() slots: the split among threads, the outlier
// columns and the product tiles, each piece run by the active instruction
// set's kernels (kernels.h).
#include <algorithm>
#include <cstring>
#include <limits>

#include "common/cpu_isa.h"
#include "common/float_mode.h"
#include "common/memory_hints.h"
#include "common/parallel.h"
#include "int8/int8.h"

namespace bnb::cpu {
namespace {

const Int8Kernels& active_kernels() { return BNB_CPU_ACTIVE_KERNELS(kInt8Kernels); }

Int8TileProducts active_products() {
    const Int8Kernels& kernels = active_kernels();
    return kernels.vnni_products != nullptr && cpu_has_int8_vnni(active_isa()) ? kernels.vnni_products
                                                                               : kernels.products;
}

// Work below which a thread is not worth waking (parallel.h): elements for the
// element-wise kernels (about 0.2 to 0.4 ns each on one core), multiply-adds for
// the products.
constexpr int64_t kMinElementsPerThread = int64_t{1} << 17;
constexpr int64_t kMinMultiplyAddsPerThread = int64_t{1} << 23;

// Runs run(first, last) over [0, count) split among threads, each in the IEEE
// default float mode.
template <typename Run>
void run_split(int64_t count, int64_t work, int64_t min_work_per_thread, const Run& run) {
    for_each_block_range(count, work, min_work_per_thread, [&](int64_t first, int64_t last) {
        const DefaultFloatMode float_mode;
        run(first, last);
    });
}

// An element-wise slot: huge pages for its output, its rows split among threads.
template <typename Args, typename Kernel>
bnb_status run_rows(const Args& args, void* out, Kernel kernel) {
    const int64_t elements = args.rows * args.cols;
    advise_huge_pages(out, static_cast<size_t>(elements * dtype_size(args.dtype)));
    run_split(args.rows, elements, kMinElementsPerThread, [&](int64_t first, int64_t last) { kernel(args, first, last); });
    return BNB_STATUS_SUCCESS;
}

int64_t saturating_product(int64_t a, int64_t b, int64_t c) {
    const int64_t limit = std::numeric_limits<int64_t>::max();
    if (a != 0 && b > limit / a) return limit;
    const int64_t ab = a * b;
    return c != 0 && ab > limit / c ? limit : ab * c;
}

// With a threshold the rows mark outlier columns in the last `cols` bytes of
// outlier_cols (its capacity is 8 * cols bytes): no scratch memory of our own.
uint8_t* outlier_flags_of(const Int8QuantizeArgs& args) {
    return reinterpret_cast<uint8_t*>(args.outlier_cols) + 7 * args.cols;
}

// The flagged columns, ascending, written over the front of outlier_cols; returns
// their count. Index j of a column c >= j ends at byte 8j + 7 <= 7 cols + c, so
// a write never reaches a flag not yet read.
int64_t collect_outlier_columns(const Int8QuantizeArgs& args) {
    const uint8_t* const flags = outlier_flags_of(args);
    int64_t count = 0;
    for (int64_t c = 0; c < args.cols; ++c) {
        if (flags[c] != 0) args.outlier_cols[count++] = c;
    }
    return count;
}

// The items of a product: tiles of B rows (slowest) times tiles of A rows, so
// that consecutive items of a thread share their B tile.
struct ProductItems {
    int64_t m_block;
    int64_t m_blocks;
    int64_t count;
};

ProductItems product_items(int64_t M, int64_t N) {
    const int64_t m_block = std::min(M, kInt8TileRows);
    const int64_t m_blocks = (M + m_block - 1) / m_block;
    return {m_block, m_blocks, m_blocks * ((N + kInt8TileColumns - 1) / kInt8TileColumns)};
}

// Calls tile(m0, rows, n0, columns) for every item of [0, M) x [0, N), split among threads.
template <typename Tile>
void for_each_product_tile(int64_t M, int64_t N, int64_t K, const Tile& tile) {
    const ProductItems items = product_items(M, N);
    run_split(items.count, saturating_product(M, N, std::max<int64_t>(K, 1)), kMinMultiplyAddsPerThread,
              [&](int64_t first, int64_t last) {
                  for (int64_t item = first; item < last; ++item) {
                      const int64_t m0 = item % items.m_blocks * items.m_block;
                      const int64_t n0 = item / items.m_blocks * kInt8TileColumns;
                      tile(m0, std::min(items.m_block, M - m0), n0, std::min(kInt8TileColumns, N - n0));
                  }
              });
}

}  // namespace

bnb_status int8_quantize(const Int8QuantizeArgs& args) {
    const Int8Kernels& kernels = active_kernels();
    const int64_t elements = args.rows * args.cols;
    advise_huge_pages(args.out_row, static_cast<size_t>(elements));
    uint8_t* const flags = args.outliers() ? outlier_flags_of(args) : nullptr;
    if (flags != nullptr) std::memset(flags, 0, static_cast<size_t>(args.cols));
    run_split(args.rows, elements, kMinElementsPerThread,
              [&](int64_t first, int64_t last) { kernels.quantize_rows(args, flags, first, last); });
    if (flags != nullptr) {
        const int64_t count = collect_outlier_columns(args);
        *args.outlier_count = count;
        // With one row the outlier elements, already 0, are the whole columns.
        if (args.rows > 1 && count > 0) {
            run_split(args.rows, args.rows * count, kMinElementsPerThread, [&](int64_t first, int64_t last) {
                for (int64_t r = first; r < last; ++r) {
                    int8_t* const row = args.out_row + r * args.cols;
                    for (int64_t j = 0; j < count; ++j) row[args.outlier_cols[j]] = 0;
                }
            });
        }
    }
    if (args.column_wise) {
        advise_huge_pages(args.out_col, static_cast<size_t>(elements));
        run_split((args.cols + kInt8ColumnStripe - 1) / kInt8ColumnStripe, elements, kMinElementsPerThread,
                  [&](int64_t first, int64_t last) { kernels.quantize_columns(args, first, last); });
    }
    return BNB_STATUS_SUCCESS;
}

bnb_status int8_vectorwise_dequant(const Int8DequantizeArgs& args) {
    return run_rows(args, args.out, active_kernels().dequantize_rows);
}

bnb_status int8_mm_dequant(const Int8MmDequantArgs& args) {
    return run_rows(args, args.out, active_kernels().mm_dequant_rows);
}

bnb_status int8_linear_matmul(const Int8MatmulArgs& args) {
    const Int8TileProducts products = active_products();
    advise_huge_pages(args.out, static_cast<size_t>(args.M * args.N * 4));
    for_each_product_tile(args.M, args.N, args.K, [&](int64_t m0, int64_t rows, int64_t n0, int64_t columns) {
        products(args.A + m0 * args.K, args.B + n0 * args.K, args.K, rows, columns, args.out + m0 * args.N + n0,
                 args.N);
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status int8_scaled_mm(const Int8ScaledMmArgs& args) {
    const Int8Kernels& kernels = active_kernels();
    const Int8TileProducts products = active_products();
    // The count is device data the core cannot check.
    const int64_t outlier_count = args.outliers() ? std::clamp<int64_t>(*args.outlier_count, 0, args.K) : 0;
    advise_huge_pages(args.out, static_cast<size_t>(args.M * args.N * dtype_size(args.dtype)));
    for_each_product_tile(args.M, args.N, args.K, [&](int64_t m0, int64_t rows, int64_t n0, int64_t columns) {
        alignas(64) int32_t tile[kInt8TileRows * kInt8TileColumns];
        products(args.A + m0 * args.K, args.B + n0 * args.K, args.K, rows, columns, tile, kInt8TileColumns);
        kernels.scaled_mm_tile(args, outlier_count, m0, rows, n0, columns, tile);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
