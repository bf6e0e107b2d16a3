// The C ABI's one error mechanism: a status code plus a thread-local message.
#pragma once

#include <string>

#include "bitsandbytes/bitsandbytes.h"

namespace bnb {

// Records `message` as this thread's last error and returns `status`, so that a
// failing check reads `return fail(BNB_STATUS_INVALID_ARGUMENT, "...")`.
bnb_status fail(bnb_status status, std::string message);

// Clears the message (called at the start of every ABI entry point).
void clear_error();

const char* last_error();

}  // namespace bnb
