// bnb_optimizer_* (formats.md sections 6 and 7): the checks of the two update
// ops, their entry points and the optimizer names.
#include "optimizer.h"

#include <cstring>
#include <string>

#include "../entry.h"

namespace bnb {
namespace {

// As upstream spells them (the order of bnb_optimizer).
constexpr const char* kOptimizerNames[BNB_OPTIMIZER_COUNT] = {"adam", "momentum", "rmsprop", "adagrad",
                                                              "lion", "lamb",     "lars",    "ademamix"};

std::string supported_names() {
    std::string names;
    for (const char* name : kOptimizerNames) names += std::string(names.empty() ? "" : ", ") + "'" + name + "'";
    return "[" + names + "]";
}

// Optimizers that divide by the bias correction 1 - beta1^step (0 at step 0).
constexpr bool is_bias_corrected(bnb_optimizer optimizer) { return is_two_state(optimizer); }

}  // namespace

bnb_status check_arguments(const OptimizerUpdateArgs& args, Op) {
    if (static_cast<int>(args.optimizer) < 0 || static_cast<int>(args.optimizer) >= BNB_OPTIMIZER_COUNT) {
        return fail(BNB_STATUS_INVALID_ARGUMENT,
                    "optimizer must be a bnb_optimizer value, got " + std::to_string(static_cast<int>(args.optimizer)));
    }
    BNB_CHECK(check_float_dtype(args.dtype, "dtype"));
    BNB_CHECK(check_count(args.count, "count"));
    if (args.hparams == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "hparams must not be NULL");
    if (args.count > 0 && args.tensors == nullptr) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, "tensors must not be NULL when count > 0");
    }
    if (is_bias_corrected(args.optimizer) && args.hparams->step < 1) {
        return fail(BNB_STATUS_INVALID_ARGUMENT, std::string("step must be >= 1 for ") +
                                                     kOptimizerNames[args.optimizer] + ", got " +
                                                     std::to_string(args.hparams->step));
    }
    for (int64_t i = 0; i < args.count; ++i) {
        BNB_CHECK(check_count(args.tensors[i].n, ("tensors[" + std::to_string(i) + "].n").c_str()));
    }
    return BNB_STATUS_SUCCESS;
}

bnb_status check_call_buffers(const OptimizerUpdateArgs& args) {
    for (int64_t i = 0; i < args.count; ++i) {
        if (args.tensors[i].n == 0) continue;
        const bnb_status status = check_buffers(buffers(args, i));
        if (status != BNB_STATUS_SUCCESS) {
            return args.count == 1 ? status : fail(status, "tensors[" + std::to_string(i) + "]: " + bnb_last_error());
        }
    }
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb

using namespace bnb;

extern "C" BNB_API bnb_status bnb_optimizer_from_name(const char* name, bnb_optimizer* out) {
    clear_error();
    if (out == nullptr) return fail(BNB_STATUS_INVALID_ARGUMENT, "out must not be NULL");
    for (int i = 0; i < BNB_OPTIMIZER_COUNT; ++i) {
        if (name != nullptr && std::strcmp(name, kOptimizerNames[i]) == 0) {
            *out = static_cast<bnb_optimizer>(i);
            return BNB_STATUS_SUCCESS;
        }
    }
    return fail(BNB_STATUS_INVALID_ARGUMENT, std::string("Unsupported optimizer name: ") +
                                                 (name == nullptr ? "NULL" : name) +
                                                 ". Supported optimizers: " + supported_names());
}

extern "C" BNB_API bnb_status bnb_optimizer_update_32bit(bnb_device device, void* stream, bnb_optimizer optimizer,
                                                         bnb_dtype dtype, const bnb_optimizer_tensor* tensors,
                                                         int64_t count, const bnb_optimizer_hparams* hparams) {
    return run_op<Op::optimizer_update_32bit>({.device = device, .stream = stream, .optimizer = optimizer,
                                               .dtype = dtype, .tensors = tensors, .count = count,
                                               .qmap1 = nullptr, .qmap2 = nullptr, .hparams = hparams,
                                               .blockwise = false});
}

extern "C" BNB_API bnb_status bnb_optimizer_update_8bit_blockwise(bnb_device device, void* stream,
                                                                  bnb_optimizer optimizer, bnb_dtype dtype,
                                                                  const bnb_optimizer_tensor* tensors, int64_t count,
                                                                  const float* qmap1, const float* qmap2,
                                                                  const bnb_optimizer_hparams* hparams) {
    return run_op<Op::optimizer_update_8bit_blockwise>({.device = device, .stream = stream, .optimizer = optimizer,
                                                        .dtype = dtype, .tensors = tensors, .count = count,
                                                        .qmap1 = qmap1, .qmap2 = qmap2, .hparams = hparams,
                                                        .blockwise = true});
}
