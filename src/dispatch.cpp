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

void register_backend(bnb_device_type type, const BackendOps* ops) {
    if (type >= 0 && type < BNB_DEVICE_TYPE_COUNT) table()[type] = ops;
}

const BackendOps* backend_ops(bnb_device_type type) {
    if (type < 0 || type >= BNB_DEVICE_TYPE_COUNT) return nullptr;
    return table()[type];
}

}  // namespace bnb
