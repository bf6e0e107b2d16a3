"""``torch.mean`` of a float32 vector in the summation order of torch's CUDA kernel.

Nested 4-bit statistics subtract ``absmax.mean()`` before quantizing the absmax
again (formats.md 3.3), so the last bit of that mean reaches the checkpoint. On a
CUDA device torch's own mean is upstream's. Elsewhere this module reproduces it:
torch's CUDA reduction (ATen/native/cuda/Reduce.cuh, the float32 mean with 4-wide
vector loads) sums in a fixed order that depends only on the element count and,
for very long inputs, on the GPU's multiprocessor count; the defaults are those
of the H100 that produced the golden vectors.

Order, for n elements, one output (read from setReduceConfig and ReduceOp):
  * n >= 128: threads load 4-element vectors; otherwise single elements.
  * block width B = the largest power of two <= the vector count, at most 512.
  * each thread keeps 4 running sums (over its vectors' lanes, or over every
    4th of its elements), adds a tail element (n % 4) to the first, then folds
    the 4 sums left to right;
  * the block folds thread sums pairwise, halving (shared memory, then warp
    shuffles, both the same tree for lane 0);
  * above 256 values per thread the input is split over several blocks whose
    sums are folded by the last block in the same way;
  * the mean is that sum times float32(1 / n).
"""

import math

import torch

H100_MULTIPROCESSORS = 132
H100_MAX_THREADS_PER_MULTIPROCESSOR = 2048

_VECTOR_WIDTH = 4
_ACCUMULATORS = 4
_MAX_BLOCK_WIDTH = 512
_MIN_VALUES_PER_THREAD = 16
_MAX_VALUES_PER_THREAD = 256


def _last_pow2(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def _fold_pairwise(sums: torch.Tensor) -> torch.Tensor:
    """Block reduction over the last dimension (a power of two): halves until one is left."""
    width = sums.shape[-1]
    while width > 1:
        width //= 2
        sums = sums[..., :width] + sums[..., width : 2 * width]
    return sums[..., 0]


def _strided_sums(values: torch.Tensor, lanes: int, stride: int) -> torch.Tensor:
    """sums[..., t] = values[t] + values[t + stride] + ... in that order, for t < lanes.

    `values` is laid out along the first dimension; trailing dimensions are kept.
    """
    rows = values.shape[0]
    passes = max(1, math.ceil(rows / stride))
    padded = torch.nn.functional.pad(values.movedim(0, -1), (0, passes * stride - rows)).movedim(-1, 0)
    padded = padded.reshape(passes, stride, *values.shape[1:])[:, :lanes]
    total = torch.zeros_like(padded[0])
    for step in range(passes):
        total = total + padded[step]  # zero padding leaves a sum unchanged
    return total


def cuda_mean_float32(
    values: torch.Tensor,
    multiprocessors: int = H100_MULTIPROCESSORS,
    max_threads_per_multiprocessor: int = H100_MAX_THREADS_PER_MULTIPROCESSOR,
) -> torch.Tensor:
    """The 0-dim float32 mean of `values` (flattened) as torch's CUDA kernel computes it."""
    x = values.reshape(-1).to(torch.float32)
    n = x.numel()
    if n == 0:
        return torch.tensor(float("nan"), dtype=torch.float32, device=x.device)

    vectorized = n >= 128
    items = n // _VECTOR_WIDTH if vectorized else n
    block_width = min(_last_pow2(items), _MAX_BLOCK_WIDTH)
    values_per_thread = math.ceil(n / block_width)
    blocks = 1
    if values_per_thread >= _MAX_VALUES_PER_THREAD:
        target_blocks = multiprocessors * (max_threads_per_multiprocessor // block_width)
        blocks = max(
            min(target_blocks, math.ceil(values_per_thread / _MIN_VALUES_PER_THREAD)),
            math.ceil(values_per_thread / _MAX_VALUES_PER_THREAD),
        )
    threads = blocks * block_width  # thread t of block b is lane t + b * block_width

    if vectorized:
        vectors = x[: items * _VECTOR_WIDTH].view(items, _VECTOR_WIDTH)
        lane_sums = _strided_sums(vectors, threads, threads)  # [threads, 4]
        tail = x[items * _VECTOR_WIDTH :]
        if tail.numel():
            # Block 0's first threads add one tail element each to their first sum.
            lane_sums[: tail.numel(), 0] = lane_sums[: tail.numel(), 0] + tail
    else:
        # Thread t reads t, t + B, t + 2B, ... into its sums 0, 1, 2, 3, 0, ...
        group = _ACCUMULATORS * block_width
        padded = torch.nn.functional.pad(x, (0, math.ceil(n / group) * group - n))
        grouped = padded.view(-1, _ACCUMULATORS, block_width).transpose(1, 2)  # [passes, B, 4]
        lane_sums = _strided_sums(grouped.reshape(-1, _ACCUMULATORS), block_width, block_width)
    thread_sums = lane_sums[:, 0]
    for accumulator in range(1, _ACCUMULATORS):
        thread_sums = thread_sums + lane_sums[:, accumulator]

    block_sums = _fold_pairwise(thread_sums.view(blocks, block_width))
    if blocks > 1:
        total = _fold_pairwise(_strided_sums(block_sums, block_width, block_width))
    else:
        total = block_sums[0]
    factor = torch.tensor(1.0, dtype=torch.float32) / torch.tensor(float(n), dtype=torch.float32)
    return total * factor.to(x.device)
