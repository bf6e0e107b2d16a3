// What the libFuzzer harnesses (tests/fuzz) found, one test each, so that a
// finding fixed once stays fixed on every build (the sanitizer build of
// scripts/test.sh runs these under ASan + UBSan too).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "support/abi_assertions.h"

namespace {

using bnb_test::bits_equal;
using bnb_test::codebook;
using bnb_test::failed_with;
using bnb_test::kCpu;
using bnb_test::succeeded;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// The CPU takes any positive blocksize for blockwise 8-bit; ceil(n / blocksize)
// was computed as (n + blocksize - 1) / blocksize, which overflows for blocksizes
// near INT64_MAX (a negative absmax size passed the buffer check, and no block ran).
TEST(FuzzFindings, BlockwiseBlocksizeNearInt64MaxIsOneBlock) {
    const std::vector<float> code = codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    const std::vector<float> A = {0.5f, -2.0f, 1.25f, 0.0f, 3.0f};
    const int64_t n = static_cast<int64_t>(A.size());
    for (int64_t blocksize : {kInt64Max, kInt64Max - 1, kInt64Max / 2 + 1}) {
        SCOPED_TRACE(blocksize);
        std::vector<uint8_t> huge_block(A.size()), one_block(A.size());
        float huge_absmax = -1.0f, one_absmax = -1.0f;
        ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, A.data(), code.data(), n,
                                                     blocksize, huge_block.data(), &huge_absmax)));
        ASSERT_TRUE(succeeded(bnb_quantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, A.data(), code.data(), n, n,
                                                     one_block.data(), &one_absmax)));
        EXPECT_EQ(huge_absmax, 3.0f);
        EXPECT_TRUE(bits_equal(huge_block.data(), one_block.data(), n, 1));

        std::vector<float> huge_out(A.size(), -1.0f), one_out(A.size(), -2.0f);
        ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, one_block.data(), code.data(),
                                                       &one_absmax, n, blocksize, huge_out.data())));
        ASSERT_TRUE(succeeded(bnb_dequantize_blockwise(kCpu, nullptr, BNB_DTYPE_FLOAT32, one_block.data(), code.data(),
                                                       &one_absmax, n, n, one_out.data())));
        EXPECT_TRUE(bits_equal(huge_out.data(), one_out.data(), n, 4));
    }
}

// bnb_paged_alloc rounded any positive size up in int64_t (overflow near
// INT64_MAX) and handed sizes no host has to the allocator (which aborts under
// AddressSanitizer): now the size is bounded and the host's memory is the limit.
TEST(FuzzFindings, PagedAllocRefusesSizesNoHostHas) {
    for (int64_t bytes : {kInt64Max, kInt64Max - 62, kInt64Max / 8 + 1}) {
        void* memory = &memory;
        EXPECT_TRUE(failed_with(bnb_paged_alloc(kCpu, bytes, &memory), BNB_STATUS_INVALID_ARGUMENT, {"bytes"}))
            << bytes;
        EXPECT_EQ(memory, nullptr);
    }
    for (int64_t bytes : {kInt64Max / 8, int64_t{1} << 50}) {
        void* memory = &memory;
        EXPECT_TRUE(failed_with(bnb_paged_alloc(kCpu, bytes, &memory), BNB_STATUS_OUT_OF_MEMORY, {"host"})) << bytes;
        EXPECT_EQ(memory, nullptr);
    }
    void* memory = nullptr;
    ASSERT_TRUE(succeeded(bnb_paged_alloc(kCpu, 100, &memory)));
    EXPECT_TRUE(succeeded(bnb_paged_free(kCpu, memory)));
}

// A list holding an empty tensor: the core checks no buffer of it (n == 0), and
// the CPU's clipping pass wrote its unorm_vec all the same (a NULL store).
TEST(FuzzFindings, OptimizerClippingSkipsEmptyTensors) {
    std::vector<float> g = {0.5f, -1.0f, 2.0f, 0.25f}, p = {1.0f, 2.0f, -3.0f, 4.0f};
    std::vector<float> state1(4, 0.0f), state2(4, 0.0f);
    float unorm = -1.0f;
    const bnb_optimizer_tensor tensors[2] = {
        {.n = 0, .g = nullptr, .p = nullptr, .state1 = nullptr, .state2 = nullptr, .absmax1 = nullptr,
         .absmax2 = nullptr, .unorm_vec = nullptr, .param_norm = 1.0f},
        {.n = 4, .g = g.data(), .p = p.data(), .state1 = state1.data(), .state2 = state2.data(), .absmax1 = nullptr,
         .absmax2 = nullptr, .unorm_vec = &unorm, .param_norm = 5.0f},
    };
    const bnb_optimizer_hparams hparams{.beta1 = 0.9f, .beta2 = 0.999f, .beta3 = 0.0f, .alpha = 0.0f, .eps = 1e-8f,
                                        .weight_decay = 0.0f, .lr = 0.01f, .gnorm_scale = 1.0f, .max_unorm = 1.0f,
                                        .step = 1, .skip_zeros = 0};
    for (bnb_optimizer optimizer : {BNB_OPTIMIZER_ADAM, BNB_OPTIMIZER_MOMENTUM, BNB_OPTIMIZER_LAMB}) {
        ASSERT_TRUE(succeeded(bnb_optimizer_update_32bit(kCpu, nullptr, optimizer, BNB_DTYPE_FLOAT32, tensors, 2,
                                                         &hparams)))
            << optimizer;
        EXPECT_GE(unorm, 0.0f) << "the non-empty tensor's norm is written";
    }
}

}  // namespace
