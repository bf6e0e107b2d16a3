/* Quantizes a buffer to NF4 and back through the C ABI and reports the error.
   Exit status 0 when the round trip stays within the NF4 error bound. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bitsandbytes/bitsandbytes.h"

#define N 4096
#define BLOCKSIZE 64

int main(void) {
    static float input[N], output[N], absmax[N / BLOCKSIZE];
    static uint8_t packed[N / 2];
    const bnb_device cpu = {BNB_DEVICE_CPU, 0};
    double max_error = 0.0;
    int i;

    for (i = 0; i < N; ++i) input[i] = sinf(0.37f * (float)i) * (1.0f + (float)(i % 7));

    if (bnb_quantize_4bit(cpu, NULL, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, input, N, BLOCKSIZE, packed, absmax) !=
            BNB_STATUS_SUCCESS ||
        bnb_dequantize_4bit(cpu, NULL, BNB_QUANT_NF4, BNB_DTYPE_FLOAT32, packed, absmax, N, BLOCKSIZE, output) !=
            BNB_STATUS_SUCCESS) {
        fprintf(stderr, "bitsandbytes error: %s\n", bnb_last_error());
        return 1;
    }
    for (i = 0; i < N; ++i) {
        /* NF4's widest gap is 0.304 of the block absmax: half of it bounds the error. */
        const double bound = 0.153 * absmax[i / BLOCKSIZE];
        const double error = fabs((double)output[i] - (double)input[i]);
        if (error > bound) {
            fprintf(stderr, "element %d: error %g above %g\n", i, error, bound);
            return 1;
        }
        if (error > max_error) max_error = error;
    }
    printf("bitsandbytes %s: %d floats -> %d bytes NF4 + %d absmax, max abs error %.4f\n", bnb_version(), N,
           N / 2, N / BLOCKSIZE, max_error);
    return 0;
}
