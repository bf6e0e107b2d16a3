#include <cstring>

#include "backend.h"

namespace bnb {
namespace {

// Function-local so that registration from static initialisers of other
// translation units never sees an unconstructed table.
const BackendOps** table() {
    static const BackendOps* backends[BNB_DEVICE_TYPE_COUNT] = {};
    return backends;
}

}  // namespace

bool find_op(const char* name, Op* op) {
    if (name == nullptr) return false;
    for (int index = 0; index < kOpCount; ++index) {
        if (std::strcmp(name, kOpNames[index]) == 0) {
            *op = static_cast<Op>(index);
            return true;
        }
    }
    return false;
}

const void* op_slot(const BackendOps& ops, Op op) {
    switch (op) {
#define BNB_OP(family, name, Args) \
    case Op::name: return reinterpret_cast<const void*>(ops.name);
#include "ops.def"
#undef BNB_OP
    }
    return nullptr;
}

void register_backend(bnb_device_type type, const BackendOps* ops) {
    if (type >= 0 && type < BNB_DEVICE_TYPE_COUNT) table()[type] = ops;
}

const BackendOps* backend_ops(bnb_device_type type) {
    if (type < 0 || type >= BNB_DEVICE_TYPE_COUNT) return nullptr;
    return table()[type];
}

}  // namespace bnb
