"""Rules that the native and the pure-torch quantization kernels both follow.

Agreement of the two, bit for bit over every op, dtype, blocksize and input kind,
is test_backend_ops.py; this file pins what each implementation does on its own:
tie breaking, layout independence, the sign of FP4's zero, empty inputs.
"""

import pytest
import torch
from conftest import assert_bitwise_equal, random_input

import bitsandbytes.functional as F
from bitsandbytes import _C
from bitsandbytes.backends.torch import blockwise, fourbit

ops = torch.ops.bitsandbytes

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def test_4bit_boundaries_round_down_at_ties(device):
    """s equal to a threshold gets the lower code (strict >), the rule that decides ties."""
    thresholds = torch.tensor(_C.quantize_thresholds("nf4"))
    A = torch.cat([thresholds, torch.tensor([1.0])]).to(device)
    packed, _ = ops.quantize_4bit(A, 64, "nf4", torch.uint8)
    codes = fourbit.unpack_4bit(packed.view(-1).cpu(), A.numel())
    assert codes[:15].tolist() == list(range(15))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_non_contiguous_inputs_equal_contiguous(device, dtype):
    base = random_input(48 * 70, dtype, device).view(48, 70)
    code = F.create_dynamic_map().to(device)
    for A in (base.t(), base[:, ::3], base[::2, 1:]):
        assert not A.is_contiguous()
        dense = A.contiguous()
        for quantize in (ops.quantize_blockwise, blockwise.quantize_blockwise):
            for actual, expected in zip(quantize(A, code, 64), quantize(dense, code, 64)):
                assert_bitwise_equal(actual, expected)
        for quantize in (ops.quantize_4bit, fourbit.quantize_4bit):
            for actual, expected in zip(quantize(A, 64, "nf4", torch.uint8), quantize(dense, 64, "nf4", torch.uint8)):
                assert_bitwise_equal(actual, expected)


def test_non_contiguous_dequantize_inputs(device):
    A = random_input(64 * 64, torch.float32, device).view(64, 64)
    code = F.create_dynamic_map().to(device)
    codes, absmax = ops.quantize_blockwise(A, code, 64)
    strided_codes = codes.t()
    for dequantize in (ops.dequantize_blockwise, blockwise.dequantize_blockwise):
        assert_bitwise_equal(
            dequantize(strided_codes, absmax, code, 64, torch.float32),
            dequantize(strided_codes.contiguous(), absmax, code, 64, torch.float32),
        )


def test_fp4_code_8_dequantizes_to_negative_zero(device):
    packed = torch.tensor([[0x80]], dtype=torch.uint8, device=device)
    absmax = torch.ones(1, device=device)
    for dequantize in (ops.dequantize_4bit, fourbit.dequantize_4bit):
        values = dequantize(packed, absmax, 64, "fp4", [2], torch.float32)
        assert values.tolist() == [0.0, 0.0]
        assert torch.signbit(values).tolist() == [True, False]


def test_empty_inputs(device):
    code = F.create_dynamic_map().to(device)
    for shape in [(0,), (0, 5), (3, 0)]:
        for dtype in DTYPES:
            A = torch.empty(shape, dtype=dtype, device=device)
            for quantize in (ops.quantize_blockwise, blockwise.quantize_blockwise):
                codes, absmax = quantize(A, code, 64)
                assert codes.shape == shape and codes.dtype == torch.uint8 and absmax.shape == (0,)
            for quantize in (ops.quantize_4bit, fourbit.quantize_4bit):
                packed, absmax = quantize(A, 64, "nf4", torch.bfloat16)
                assert packed.shape == (0, 1) and packed.dtype == torch.bfloat16 and absmax.shape == (0,)
                restored = ops.dequantize_4bit(packed, absmax, 64, "nf4", list(shape), dtype)
                assert restored.shape == shape
