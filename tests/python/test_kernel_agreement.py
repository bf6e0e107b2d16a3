"""The native kernels and the pure-torch kernels (backends/torch/) agree bit for bit.

Over every dtype and blocksize, odd and tiny sizes, empty inputs, special values
(NaN, inf, zero blocks, subnormals, huge values, exact rounding boundaries) and
non-contiguous inputs.
"""

import pytest
import torch
from conftest import assert_bitwise_equal

import bitsandbytes.functional as F
from bitsandbytes.backends.torch import blockwise, fourbit

ops = torch.ops.bitsandbytes

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
BLOCKWISE_BLOCKSIZES = [64, 128, 256, 512, 1024, 2048, 4096]
FOURBIT_BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]
SIZES = [0, 1, 2, 3, 63, 64, 65, 127, 4097, 8193]
SPECIAL_SIZE = 3 * 4096 + 5


def random_input(n: int, dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scale = torch.rand(1, generator=generator).item() * 10 + 0.01
    return (torch.randn(n, generator=generator) * scale).to(dtype=dtype, device=device)


def special_input(dtype: torch.dtype, device: str) -> torch.Tensor:
    """Blocks of awkward values, each at least 64 elements apart from the next kind."""
    values = random_input(SPECIAL_SIZE, torch.float32, "cpu", seed=7)
    values[0:64] = 0.0  # an all-zero block
    values[64:128] = -0.0
    values[130] = float("nan")
    values[200:264] = float("nan")  # an all-NaN block
    values[300] = float("inf")
    values[400] = float("-inf")
    values[520:540] = 1e-40  # float32 subnormals (flushed)
    values[540:560] = -3e-39
    values[600:664] = 1e-38  # normal, but x * rcp(absmax) is not
    values[700] = 3e38  # rcp underflows: every scaled value is zero
    values[800:810] = 1e-3
    values[810] = 65000.0
    values[1000:1064] = torch.linspace(-1, 1, 64)
    values[4096:4096 + 4096] = torch.linspace(-5, 5, 4096)
    return values.to(dtype=dtype, device=device)


def boundary_input(boundaries: torch.Tensor, dtype: torch.dtype, device: str) -> torch.Tensor:
    """Each boundary value, its float32 neighbours, and 1.0 so that the block absmax is 1 (s == x)."""
    boundaries = boundaries.float().cpu()
    up = torch.nextafter(boundaries, torch.tensor(float("inf")))
    down = torch.nextafter(boundaries, torch.tensor(float("-inf")))
    values = torch.cat([boundaries, up, down, torch.tensor([1.0, -1.0, 0.0, -0.0])])
    return values.to(dtype=dtype, device=device)


def assert_blockwise_agrees(A: torch.Tensor, code: torch.Tensor, blocksize: int) -> None:
    native_codes, native_absmax = ops.quantize_blockwise(A, code, blocksize)
    torch_codes, torch_absmax = blockwise.quantize_blockwise(A, code, blocksize)
    assert_bitwise_equal(native_codes, torch_codes)
    assert_bitwise_equal(native_absmax, torch_absmax)
    for dtype in DTYPES:
        assert_bitwise_equal(
            ops.dequantize_blockwise(native_codes, native_absmax, code, blocksize, dtype),
            blockwise.dequantize_blockwise(native_codes, native_absmax, code, blocksize, dtype),
        )


def assert_4bit_agrees(A: torch.Tensor, blocksize: int, quant_type: str, storage=torch.uint8) -> None:
    native_packed, native_absmax = ops.quantize_4bit(A, blocksize, quant_type, storage)
    torch_packed, torch_absmax = fourbit.quantize_4bit(A, blocksize, quant_type, storage)
    assert_bitwise_equal(native_packed.view(torch.uint8), torch_packed.view(torch.uint8))
    assert native_packed.dtype == torch_packed.dtype == storage
    assert_bitwise_equal(native_absmax, torch_absmax)
    for dtype in DTYPES:
        args = (native_packed, native_absmax, blocksize, quant_type, list(A.shape), dtype)
        assert_bitwise_equal(ops.dequantize_4bit(*args), fourbit.dequantize_4bit(*args))


@pytest.mark.parametrize("blocksize", BLOCKWISE_BLOCKSIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_blockwise_sizes(device, dtype, blocksize):
    code = F.create_dynamic_map().to(device)
    for n in SIZES:
        assert_blockwise_agrees(random_input(n, dtype, device, seed=n), code, blocksize)


@pytest.mark.parametrize("blocksize", FOURBIT_BLOCKSIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_4bit_sizes(device, quant_type, dtype, blocksize):
    for n in SIZES:
        assert_4bit_agrees(random_input(n, dtype, device, seed=n), blocksize, quant_type)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("signed", [True, False], ids=["signed_map", "unsigned_map"])
def test_blockwise_special_values(device, dtype, signed):
    code = F.create_dynamic_map(signed=signed).to(device)
    for blocksize in (64, 4096):
        assert_blockwise_agrees(special_input(dtype, device), code, blocksize)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_4bit_special_values(device, quant_type, dtype):
    for blocksize in (32, 64, 4096):
        assert_4bit_agrees(special_input(dtype, device), blocksize, quant_type)


@pytest.mark.parametrize("signed", [True, False], ids=["signed_map", "unsigned_map"])
def test_blockwise_rounding_boundaries(device, signed):
    """Values on and next to every float32 midpoint of the map decide ties as the kernels do."""
    code = F.create_dynamic_map(signed=signed)
    midpoints = (code[:-1] + code[1:]) * 0.5
    A = boundary_input(midpoints, torch.float32, device)
    assert_blockwise_agrees(A, code.to(device), 4096)


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_4bit_rounding_boundaries(device, quant_type):
    thresholds = torch.tensor(bitsandbytes_thresholds(quant_type))
    boundaries = torch.cat([thresholds, -thresholds]) if quant_type == "fp4" else thresholds
    assert_4bit_agrees(boundary_input(boundaries, torch.float32, device), 4096, quant_type)


def bitsandbytes_thresholds(quant_type):
    from bitsandbytes import _C

    return _C.quantize_thresholds(quant_type)


def test_4bit_boundaries_round_down_at_ties(device):
    """s equal to a threshold gets the lower code (strict >), the rule that decides ties."""
    thresholds = torch.tensor(bitsandbytes_thresholds("nf4"))
    A = torch.cat([thresholds, torch.tensor([1.0])]).to(device)
    packed, _ = ops.quantize_4bit(A, 64, "nf4", torch.uint8)
    codes = fourbit.unpack_4bit(packed.view(-1).cpu(), A.numel())
    assert codes[:15].tolist() == list(range(15))


@pytest.mark.parametrize("storage", [torch.uint8, torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_4bit_storage_dtypes(device, storage):
    for n in (1, 2, 3, 5, 7, 9, 4097):
        assert_4bit_agrees(random_input(n, torch.bfloat16, device, seed=n), 64, "nf4", storage)


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
        assert_blockwise_agrees(A, code, 64)
        assert_4bit_agrees(A, 64, "fp4")


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


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dequantize_arbitrary_codes_and_scales(device, dtype):
    """Every code with scales of every magnitude, zero, inf and NaN."""
    generator = torch.Generator().manual_seed(5)
    codes = torch.randint(0, 256, (4096,), generator=generator, dtype=torch.uint8).to(device)
    absmax = torch.cat(
        [
            torch.tensor([0.0, float("inf"), float("nan"), 1e-38, 3e38, 1e-45, 65504.0, 1.0]),
            torch.rand(56, generator=generator) * 1000,
        ]
    ).to(device)
    code = F.create_dynamic_map().to(device)
    assert_bitwise_equal(
        ops.dequantize_blockwise(codes, absmax, code, 64, dtype),
        blockwise.dequantize_blockwise(codes, absmax, code, 64, dtype),
    )
    packed = codes.view(-1, 1)
    for quant_type in ("nf4", "fp4"):
        args = (packed, absmax, 128, quant_type, [8192], dtype)
        assert_bitwise_equal(ops.dequantize_4bit(*args), fourbit.dequantize_4bit(*args))


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
