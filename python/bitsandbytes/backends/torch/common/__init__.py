"""What the pure-torch kernel families share: upstream's CUDA float32 arithmetic
(cuda_fast_math, cuda_reduction), the per-block scaling steps and the eager checks."""
