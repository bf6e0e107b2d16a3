#include "status.h"

#include <utility>

namespace bnb {
namespace {
thread_local std::string tls_last_error;
}

bnb_status fail(bnb_status status, std::string message) {
    tls_last_error = std::move(message);
    return status;
}

void clear_error() { tls_last_error.clear(); }

const char* last_error() { return tls_last_error.c_str(); }

}  // namespace bnb
