"""Pure-torch kernels of the native ops, one module per op family.

They serve every device without native kernels (registered under the "default"
key, i.e. CompositeExplicitAutograd, so the native CPU and CUDA registrations win)
and are the readable oracle the tests compare the native kernels against. They
follow upstream's CUDA rounding rules of formats.md sections 2 and 3 step by step,
so their bytes equal upstream's on every device (the LLM.int8() rules are in int8.py,
the optimizers' in optimizer.py):

1. absmax of each block in float32, NaN ignored, subnormals flushed;
2. r = rcp.approx.ftz(absmax), then s = x * r (ftz);
3. 8-bit: upstream's binary code search; 4-bit: strict comparisons with the
   thresholds of src/codebooks.h;
4. dequantization: one float32 multiply (ftz), one rounding to the output dtype.
"""

import torch

from . import blockwise, fourbit, gemm_4bit, int8, optimizer

# Every kernel, by the op overload it implements.
KERNELS = {**blockwise.KERNELS, **fourbit.KERNELS, **gemm_4bit.KERNELS, **int8.KERNELS, **optimizer.KERNELS}


def register_default_kernels() -> None:
    """Serve devices without a native kernel ("default" = CompositeExplicitAutograd)."""
    for name, kernel in KERNELS.items():
        torch.library.register_kernel(f"bitsandbytes::{name}", "default", kernel)
