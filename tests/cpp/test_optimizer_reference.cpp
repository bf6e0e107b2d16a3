// The host reference of the optimizer updates (support/optimizer_reference.h), which
// the backends' tests compare with, against upstream's golden trajectories: each
// step from upstream's state after the previous one, with the tolerances of
// formats.md 8.0 (expect_golden_step; the parameter also within 5e-4 of the step,
// for the exact bias corrections against upstream's __powf).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/golden.h"
#include "support/golden_params.h"
#include "support/optimizer_reference.h"

using namespace bnb_test;

namespace {

class GoldenOptimizerReference : public GoldenCaseTest {};

TEST_P(GoldenOptimizerReference, StepsMatchUpstream) {
    const GoldenCase& golden = GetParam();
    const GoldenOptimizer* setup = golden_optimizer(golden.name);
    ASSERT_NE(setup, nullptr) << golden.name << ": no hyper-parameters for this case";
    const std::vector<float> qmap1 = qmap_or_default(golden, "state1.qmap1", BNB_CODEBOOK_DYNAMIC_SIGNED);
    const std::vector<float> qmap2 = qmap_or_default(golden, "state1.qmap2", BNB_CODEBOOK_DYNAMIC_UNSIGNED);
    for (int step = 1; golden.has("param" + std::to_string(step)); ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        HostTensor t = golden_optimizer_state(golden, *setup, step - 1);
        const HostTensor before = t;
        bnb_optimizer_hparams h = setup->hparams;
        h.step = step;
        reference_step(setup->optimizer, BNB_DTYPE_FLOAT32, setup->blockwise, h, qmap1, qmap2, t);
        expect_golden_step(t, golden_optimizer_state(golden, *setup, step), before, *setup, 5e-4f);
    }
}

INSTANTIATE_TEST_SUITE_P(Upstream, GoldenOptimizerReference,
                         ::testing::ValuesIn(golden_cases_with_role("optim", "param0")), golden_case_name);

}  // namespace
