"""Bad input raises an exception that names the argument, on every path; nothing crashes.

Op-level cases run through torch.ops.bitsandbytes with the native kernels and with
the pure-torch kernels (fixture `implementation`).
"""

import pytest
import torch

import bitsandbytes.functional as F
from bitsandbytes._formats import takes_any_blocksize
from bitsandbytes.backends.torch import blockwise, fourbit

ops = torch.ops.bitsandbytes


@pytest.fixture
def code(device):
    return F.create_dynamic_map().to(device)


def test_quantize_blockwise_op(device, implementation, code):
    A = torch.randn(100, device=device)
    with pytest.raises(ValueError, match="Blockwise quantization only supports 16/32-bit floats"):
        ops.quantize_blockwise(A.to(torch.int32), code, 64)
    # Upstream's CPU path and pure-torch kernels take every positive blocksize; its GPU kernels the listed ones.
    rejected = (0, -64) if takes_any_blocksize("quantize_blockwise", A.device.type) else (0, -64, 32, 100, 8192, 2**40)
    for blocksize in rejected:
        with pytest.raises(ValueError, match="blocksize"):
            ops.quantize_blockwise(A, code, blocksize)
    with pytest.raises(ValueError, match="code must be float32"):
        ops.quantize_blockwise(A, code.half(), 64)
    with pytest.raises(ValueError, match="code must have 256 entries"):
        ops.quantize_blockwise(A, code[:16], 64)


def test_dequantize_blockwise_op(device, implementation, code):
    codes, absmax = ops.quantize_blockwise(torch.randn(300, device=device), code, 64)
    with pytest.raises(ValueError, match="A must be uint8"):
        ops.dequantize_blockwise(codes.float(), absmax, code, 64, torch.float32)
    with pytest.raises(ValueError, match="Blockwise dequantization only supports 16/32-bit floats"):
        ops.dequantize_blockwise(codes, absmax, code, 64, torch.int32)
    with pytest.raises(ValueError, match="absmax must have at least 5 entries"):
        ops.dequantize_blockwise(codes, absmax[:4], code, 64, torch.float32)
    with pytest.raises(ValueError, match="absmax must be float32"):
        ops.dequantize_blockwise(codes, absmax.double(), code, 64, torch.float32)
    long_enough = absmax.repeat(100)  # so that only the blocksize is wrong
    for blocksize in (0, -1) if takes_any_blocksize("dequantize_blockwise", codes.device.type) else (0, 48, 3):
        with pytest.raises(ValueError, match="blocksize"):
            ops.dequantize_blockwise(codes, long_enough, code, blocksize, torch.float32)
    with pytest.raises(ValueError, match="out must have shape"):
        ops.dequantize_blockwise.out(codes, absmax, code, 64, torch.float32, out=torch.empty(299, device=device))
    with pytest.raises(ValueError, match="out must be"):
        ops.dequantize_blockwise.out(
            codes, absmax, code, 64, torch.float32, out=torch.empty(300, dtype=torch.float16, device=device)
        )


def test_quantize_4bit_op(device, implementation):
    A = torch.randn(100, device=device)
    with pytest.raises(ValueError, match="quant_type must be 'nf4' or 'fp4'"):
        ops.quantize_4bit(A, 64, "int4", torch.uint8)
    with pytest.raises(ValueError, match="Blockwise 4bit quantization only supports 16/32-bit floats"):
        ops.quantize_4bit(A.to(torch.float64), 64, "nf4", torch.uint8)
    for blocksize in (0, 16, 48, 8192):
        with pytest.raises(ValueError, match="blocksize"):
            ops.quantize_4bit(A, blocksize, "nf4", torch.uint8)


def test_dequantize_4bit_op(device, implementation):
    packed, absmax = ops.quantize_4bit(torch.randn(100, device=device), 64, "nf4", torch.uint8)
    with pytest.raises(ValueError, match="quant_type must be 'nf4' or 'fp4'"):
        ops.dequantize_4bit(packed, absmax, 64, "af4", [100], torch.float32)
    with pytest.raises(ValueError, match="Blockwise 4bit dequantization only supports 16/32-bit floats"):
        ops.dequantize_4bit(packed, absmax, 64, "nf4", [100], torch.int8)
    with pytest.raises(ValueError, match="absmax must be float32"):
        ops.dequantize_4bit(packed, absmax.half(), 64, "nf4", [100], torch.float32)
    with pytest.raises(ValueError, match="absmax must have at least 4 entries"):
        ops.dequantize_4bit(packed, absmax, 32, "nf4", [100], torch.float32)
    with pytest.raises(ValueError, match="A holds 50 bytes, but shape \\[101\\] needs 51"):
        ops.dequantize_4bit(packed, absmax, 64, "nf4", [101], torch.float32)
    with pytest.raises(ValueError, match="shape must not contain negative sizes"):
        ops.dequantize_4bit(packed, absmax, 64, "nf4", [-1, 4], torch.float32)
    with pytest.raises(ValueError, match="blocksize"):
        ops.dequantize_4bit(packed, absmax, 100, "nf4", [100], torch.float32)
    with pytest.raises(ValueError, match="out must have shape"):
        ops.dequantize_4bit.out(packed, absmax, 64, "nf4", [100], torch.float32, out=torch.empty(10, 10, device=device))
    with pytest.raises(ValueError, match="out must be"):
        ops.dequantize_4bit.out(
            packed, absmax, 64, "nf4", [100], torch.float32, out=torch.empty(100, dtype=torch.bfloat16, device=device)
        )


def test_pure_torch_kernels_reject_tensors_on_other_devices():
    A = torch.randn(64)
    code = F.create_dynamic_map()
    meta_code = code.to("meta")
    with pytest.raises(ValueError, match="code must be on cpu like A, got meta"):
        blockwise.quantize_blockwise(A, meta_code, 64)
    codes, absmax = blockwise.quantize_blockwise(A, code, 64)
    with pytest.raises(ValueError, match="absmax must be on cpu like A, got meta"):
        blockwise.dequantize_blockwise(codes, absmax.to("meta"), code, 64, torch.float32)
    packed, absmax4 = fourbit.quantize_4bit(A, 64, "nf4", torch.uint8)
    with pytest.raises(ValueError, match="out must be on cpu like A, got meta"):
        fourbit.dequantize_4bit_out(packed, absmax4, 64, "nf4", [64], torch.float32, torch.empty(64, device="meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kernels", ["native", "pure_torch"])
def test_device_mismatch(kernels):
    quantize_blockwise = ops.quantize_blockwise if kernels == "native" else blockwise.quantize_blockwise
    dequantize_4bit = ops.dequantize_4bit if kernels == "native" else fourbit.dequantize_4bit
    A = torch.randn(64, device="cuda")
    with pytest.raises(ValueError, match="code must be on"):
        quantize_blockwise(A, F.create_dynamic_map(), 64)
    packed, absmax = ops.quantize_4bit(A, 64, "nf4", torch.uint8)
    with pytest.raises(ValueError, match="absmax must be on"):
        dequantize_4bit(packed, absmax.cpu(), 64, "nf4", [64], torch.float32)


def test_functional_blockwise_arguments(device):
    A = torch.randn(100, device=device)
    with pytest.raises(ValueError, match="blocksize must be positive, got 0"):
        F.quantize_blockwise(A, blocksize=0)
    with pytest.raises(ValueError, match="Blockwise quantization only supports 16/32-bit floats, but got torch.int64"):
        F.quantize_blockwise(torch.arange(10, device=device))
    if not takes_any_blocksize("quantize_blockwise", device.type if isinstance(device, torch.device) else device):
        with pytest.raises(ValueError, match="blocksize"):
            F.quantize_blockwise(A, blocksize=100)
    codes, state = F.quantize_blockwise(A, blocksize=64)
    with pytest.raises(ValueError, match="dequantize_blockwise requires either quant_state or absmax"):
        F.dequantize_blockwise(codes)
    with pytest.raises(ValueError, match="A must be uint8, got torch.float32"):
        F.dequantize_blockwise(codes.float(), state)
    with pytest.raises(ValueError, match="out must"):
        F.dequantize_blockwise(codes, state, out=torch.empty(3, device=device))


def test_functional_4bit_arguments(device):
    A = torch.randn(100, device=device)
    with pytest.raises(ValueError, match="invalid blocksize 48"):
        F.quantize_4bit(A, blocksize=48)
    with pytest.raises(ValueError, match="quant_type must be 'nf4' or 'fp4', got 'int4'"):
        F.quantize_4bit(A, quant_type="int4")
    with pytest.raises(ValueError, match="Blockwise 4bit quantization only supports 16/32-bit floats, but got torch.int32"):
        F.quantize_4bit(A.int())
    packed, state = F.quantize_4bit(A, quant_type="nf4")
    with pytest.raises(ValueError, match="dequantize_4bit requires both absmax and out when quant_state is not provided"):
        F.dequantize_4bit(packed, absmax=state.absmax)
    with pytest.raises(ValueError, match="Blockwise 4bit dequantization only supports 16/32-bit floats, but got torch.int32"):
        F.dequantize_4bit(packed, absmax=state.absmax, out=torch.empty(100, dtype=torch.int32, device=device))
    with pytest.raises(ValueError, match="invalid blocksize 100"):
        F.dequantize_4bit(packed, absmax=state.absmax, out=torch.empty(100, device=device), blocksize=100)
    with pytest.raises(ValueError, match="quant_type must be 'nf4' or 'fp4', got 'af4'"):
        F.dequantize_4bit(packed, absmax=state.absmax, out=torch.empty(100, device=device), quant_type="af4")
    with pytest.raises(ValueError, match="out must have shape"):
        F.dequantize_4bit(packed, state, out=torch.empty(99, device=device))


def test_unsupported_device_type_is_a_clear_error():
    """Meta tensors reach the fake kernels, never a native kernel with bad pointers."""
    meta = torch.empty(8, device="meta")
    codes, absmax = ops.quantize_blockwise(meta, torch.empty(256, device="meta"), 64)
    assert codes.device.type == "meta" and absmax.shape == (1,)


def test_meta_tensor_mixed_with_real_ones_is_an_error():
    """Meta outranks CPU in dispatch: the fake kernel would return uninitialised memory (issue 14)."""
    A = torch.randn(256)
    codes, state = F.quantize_blockwise(A)
    packed, state4 = F.quantize_4bit(torch.randn(64, 32), quant_type="nf4")
    meta = torch.device("meta")
    calls = {
        "code": lambda: ops.dequantize_blockwise(codes, state.absmax, state.code.to(meta), 256, torch.float32),
        "absmax": lambda: ops.dequantize_blockwise(codes, state.absmax.to(meta), state.code, 256, torch.float32),
        "B": lambda: ops.gemv_4bit(torch.randn(1, 32), packed.to(meta), [64, 32], state4.absmax, state4.code, 64),
        "A": lambda: ops.quantize_blockwise(A.to(meta), state.code, 256),
    }
    for argument, call in calls.items():
        with pytest.raises(RuntimeError, match=f"{argument} on the meta device"):
            call()
    # All on the meta device is shape inference, as before.
    out = ops.gemv_4bit(torch.randn(1, 32, device=meta), packed.to(meta), [64, 32], state4.absmax.to(meta),
                        state4.code.to(meta), 64)
    assert out.shape == (1, 64) and out.is_meta


def test_meta_quantize_blockwise_does_not_cache_a_meta_map():
    from bitsandbytes._functional.codebooks import name2qmap

    cached = name2qmap.pop("dynamic", None)
    try:
        F.quantize_blockwise(torch.randn(256, device="meta"))
        assert "dynamic" not in name2qmap
        codes, state = F.quantize_blockwise(torch.randn(256))
        assert state.code.device.type == "cpu" and name2qmap["dynamic"].device.type == "cpu"
    finally:
        name2qmap.pop("dynamic", None)
        if cached is not None:
            name2qmap["dynamic"] = cached
