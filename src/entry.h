// The one shape of every C ABI entry point:
//
//   extern "C" bnb_status bnb_<op>(...) { return run_op<Op::<op>>({.device = device, ...}); }
//
// run_op clears the thread's error, resolves the device's backend and the op's
// slot, runs the op's own checks (check_arguments in src/ops/<family>.cpp),
// returns early on empty input, checks the buffers the family header describes,
// and calls the slot.
#pragma once

#include "backend.h"
#include "validate.h"

namespace bnb {

template <Op op>
struct OpTraits;

#define BNB_OP(family, name, ArgsType)                      \
    template <>                                             \
    struct OpTraits<Op::name> {                             \
        using Args = ArgsType;                              \
        static constexpr auto slot = &BackendOps::name;     \
    };
#include "ops.def"
#undef BNB_OP

// The buffer check of an op whose Args describe one set of buffers; a family
// whose Args hold a list (the optimizers) overloads it to check each element.
template <typename Args>
bnb_status check_call_buffers(const Args& args) {
    return check_buffers(buffers(args));
}

template <Op op>
bnb_status run_op(const typename OpTraits<op>::Args& args) {
    clear_error();
    const BackendOps* ops = nullptr;
    BNB_CHECK(check_device(args.device, &ops));
    const auto slot = ops->*OpTraits<op>::slot;
    BNB_CHECK(check_op_slot(ops, slot != nullptr, op_name(op)));
    BNB_CHECK(check_arguments(args, op));
    if (is_empty(args)) return BNB_STATUS_SUCCESS;
    BNB_CHECK(check_call_buffers(args));
    return slot(args);
}

}  // namespace bnb
