/* Quantizes a buffer to NF4 and back through the C ABI and reports the error.
   Exit status 0 when the round trip stays within the NF4 error bound.

   Shows the three habits of a C ABI caller: check that the loaded library has the
   ABI level of the header it was compiled against, check every bnb_status, and
   read bnb_last_error() (on the same thread) when one is not BNB_STATUS_SUCCESS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bitsandbytes/bitsandbytes.h"

#define N 4096
#define BLOCKSIZE 64

static int report(const char* what, bnb_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, bnb_status_name(status), bnb_last_error());
    return 1;
}

int main(void) {
    static float input[N], output[N], absmax[N / BLOCKSIZE], nf4[16];
    static uint8_t packed[N / 2];
    const bnb_device cpu = {BNB_DEVICE_CPU, 0};
    double max_error = 0.0, half_widest_gap = 0.0;
    bnb_status status;
    int i;

    if (bnb_abi_version() != BNB_ABI_VERSION) {
        fprintf(stderr, "libbitsandbytes has ABI %d, this program was built for %d\n", bnb_abi_version(),
                BNB_ABI_VERSION);
        return 1;
    }

    /* Half the widest gap between neighbouring NF4 values bounds the error, in
       units of the block's absmax. */
    status = bnb_codebook_copy(BNB_CODEBOOK_NF4, nf4, 16);
    if (status != BNB_STATUS_SUCCESS) return report("bnb_codebook_copy", status);
    for (i = 1; i < 16; ++i) {
        const double gap = (double)nf4[i] - (double)nf4[i - 1];
        if (gap / 2.0 > half_widest_gap) half_widest_gap = gap / 2.0;
    }

    for (i = 0; i < N; ++i) input[i] = sinf(0.37f * (float)i) * (1.0f + (float)(i % 7));

    status = bnb_quantize_4bit(cpu, NULL, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, input, N, BLOCKSIZE, packed, absmax);
    if (status != BNB_STATUS_SUCCESS) return report("bnb_quantize_4bit", status);
    status = bnb_dequantize_4bit(cpu, NULL, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, packed, absmax, N, BLOCKSIZE, output);
    if (status != BNB_STATUS_SUCCESS) return report("bnb_dequantize_4bit", status);

    for (i = 0; i < N; ++i) {
        const double bound = half_widest_gap * absmax[i / BLOCKSIZE] * (1.0 + 1e-6);
        const double error = fabs((double)output[i] - (double)input[i]);
        if (error > bound) {
            fprintf(stderr, "element %d: error %g above %g\n", i, error, bound);
            return 1;
        }
        if (error > max_error) max_error = error;
    }
    printf("bitsandbytes %s: %d floats -> %d bytes NF4 + %d absmax, max abs error %.4f (bound %.4f x absmax)\n",
           bnb_version(), N, N / 2, N / BLOCKSIZE, max_error, half_widest_gap);
    return 0;
}
