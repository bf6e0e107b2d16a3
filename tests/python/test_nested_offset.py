"""The offset of nested statistics is torch's CUDA mean, bit for bit, on every device.

backends/torch/common/cuda_reduction.py replays the summation order of torch's CUDA reduction.
On the CPU it is checked against a scalar, loop-by-loop transcription of that
kernel (another reading of Reduce.cuh); on a CUDA device against torch.mean itself.
"""

import numpy as np
import pytest
import torch
from conftest import assert_bitwise_equal

import bitsandbytes.functional as F
from bitsandbytes.backends.torch.common.cuda_reduction import cuda_mean_float32

# Vector counts around every configuration change: scalar loads below 128
# elements, block widths 1..512, tails of 1-3 elements, and the split over
# several blocks from 256 values per thread on (131,072+ elements).
SIZES = [1, 2, 3, 5, 31, 32, 33, 64, 127, 128, 129, 130, 131, 255, 256, 640, 1280, 2047, 2048, 2051, 8191, 8193, 65537]
LARGE_SIZES = [131072, 131073, 262144, 1_000_003, 4_194_304]


def scalar_transcription(values: np.ndarray, multiprocessors: int = 132) -> np.float32:
    """torch's CUDA float32 mean of a contiguous vector, one simulated thread at a time."""
    x = values.astype(np.float32)
    n = len(x)
    vectorized = n >= 128
    items = n // 4 if vectorized else n
    width = 512 if items >= 512 else 1 << (items.bit_length() - 1)
    per_thread = -(-n // width)
    blocks = 1
    if per_thread >= 256:
        blocks = max(min(multiprocessors * (2048 // width), -(-per_thread // 16)), -(-per_thread // 256))
    stride = width * blocks

    def thread_sum(block, lane):
        sums = [np.float32(0)] * 4
        if vectorized:
            index = lane + block * width
            while index * 4 + 3 < n:
                for i in range(4):
                    sums[i] = np.float32(sums[i] + x[index * 4 + i])
                index += stride
            tail = n - n % 4 + lane
            if block == 0 and tail < n:
                sums[0] = np.float32(sums[0] + x[tail])
        else:
            index = lane
            while index + 3 * width < n:
                for i in range(4):
                    sums[i] = np.float32(sums[i] + x[index + i * width])
                index += 4 * width
            for i in range(4):
                if index >= n:
                    break
                sums[i] = np.float32(sums[i] + x[index])
                index += width
        return np.float32(np.float32(np.float32(sums[0] + sums[1]) + sums[2]) + sums[3])

    def block_fold(lane_values):
        values = list(lane_values)
        half = len(values) // 2
        while half >= 1:
            values = [np.float32(values[t] + values[t + half]) for t in range(half)]
            half //= 2
        return values[0]

    partials = [block_fold(thread_sum(block, lane) for lane in range(width)) for block in range(blocks)]
    if blocks > 1:
        lanes = []
        for lane in range(width):
            total = np.float32(0)
            for index in range(lane, blocks, width):
                total = np.float32(total + partials[index])
            lanes.append(total)
        total = block_fold(lanes)
    else:
        total = partials[0]
    return np.float32(total * np.float32(np.float32(1) / np.float32(n)))


@pytest.mark.parametrize("n", SIZES)
def test_matches_the_scalar_transcription(n):
    values = torch.rand(n, generator=torch.Generator().manual_seed(n)) * 3
    expected = torch.tensor(scalar_transcription(values.numpy()))
    assert_bitwise_equal(cuda_mean_float32(values), expected)


def test_matches_the_scalar_transcription_across_blocks():
    n = 131072 + 4 * 37 + 3  # split over blocks, with a tail
    values = torch.rand(n, generator=torch.Generator().manual_seed(1))
    assert_bitwise_equal(cuda_mean_float32(values), torch.tensor(scalar_transcription(values.numpy())))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("n", SIZES + LARGE_SIZES)
def test_matches_torch_mean_on_cuda(n):
    values = (torch.rand(n, generator=torch.Generator().manual_seed(n)) * 7).cuda()
    if torch.cuda.get_device_properties(0).multi_processor_count != 132 and n in LARGE_SIZES:
        pytest.skip("the split over blocks depends on the multiprocessor count; the defaults are the H100's")
    assert_bitwise_equal(cuda_mean_float32(values.cpu()), values.mean())


def test_empty_mean_is_nan():
    assert torch.isnan(cuda_mean_float32(torch.empty(0)))


@pytest.mark.parametrize("n", [640, 1280, 131073])
def test_nested_offset_is_the_same_on_every_device(device, n):
    absmax = torch.rand(n, generator=torch.Generator().manual_seed(3)).to(device)
    assert_bitwise_equal(F._nested_offset(absmax), cuda_mean_float32(absmax.cpu()))
