"""The steps every blockwise quantizer and dequantizer shares (formats.md sections 2 and 3)."""

import torch

from ...._formats import blocks_of
from .cuda_fast_math import flush_denormal, ftz_mul, rcp_approx_ftz


def scaled_blocks(A: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 absmax of each block and s = x * rcp(absmax), flat."""
    values = A.reshape(-1).to(torch.float32)  # fp16/bf16 widen exactly
    n = values.numel()
    blocks = blocks_of(n, blocksize)
    # Zeros never change a block's absmax, so the partial last block is padded with them.
    padded = torch.nn.functional.pad(values, (0, blocks * blocksize - n)).view(blocks, blocksize)
    magnitudes = flush_denormal(padded).abs()
    # NaN never wins (fmaxf); an inf element makes the absmax inf.
    absmax = torch.where(torch.isnan(magnitudes), 0.0, magnitudes).amax(dim=1)
    scaled = ftz_mul(padded, rcp_approx_ftz(absmax).unsqueeze(1))
    return scaled.reshape(-1)[:n], absmax


def scale_by_block(values: torch.Tensor, absmax: torch.Tensor, blocksize: int) -> torch.Tensor:
    """values (flat, float32) times the absmax of their block: one float32 multiply (ftz)."""
    block_of_element = torch.arange(values.numel(), device=absmax.device) // blocksize
    return ftz_mul(values, absmax.reshape(-1)[block_of_element])
