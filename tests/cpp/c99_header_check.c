/* Compiled with -std=c99 -Wall -Wextra -Werror -pedantic: the C ABI header must
   be plain C. The function is never called; compiling it is the test. */
#include "bitsandbytes/bitsandbytes.h"

int bnb_c99_header_check(void);

int bnb_c99_header_check(void) {
    bnb_device device;
    float code[256];
    device.type = BNB_DEVICE_CPU;
    device.index = 0;
    if (bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, code, 256) != BNB_STATUS_SUCCESS) return -1;
    return bnb_backend_available(device.type) + BNB_ABI_VERSION;
}
