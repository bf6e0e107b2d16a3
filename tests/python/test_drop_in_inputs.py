"""Inputs that upstream 0.50.2 accepts, accepted here with upstream's result (issue 12).

Values pinned below were observed from upstream 0.50.2 on the CPU.
"""

import logging
import warnings

import pytest
import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes import _C
from bitsandbytes._formats import ANY_BLOCKSIZE_OPS, BLOCKSIZES, blocksize_error, takes_any_blocksize
from bitsandbytes.backends.torch import blockwise as torch_blockwise

# ---- blocksizes: every positive one for blockwise 8-bit on the CPU ------------------------

CPU_ONLY_BLOCKSIZES = [1, 3, 16, 100, 5000, 8192, 16384, 1 << 20]


def test_blockwise_formats_hold_for_blocks_of_any_length():
    assert ANY_BLOCKSIZE_OPS == {"quantize_blockwise", "dequantize_blockwise"}
    assert _C.backend_any_blocksize("cpu", "quantize_blockwise")
    assert not _C.backend_any_blocksize("cpu", "quantize_4bit")
    assert not _C.backend_any_blocksize("cuda", "quantize_blockwise")
    assert takes_any_blocksize("quantize_blockwise", "cpu")
    # Devices served by the pure-torch kernels cut blocks of any length, as upstream's default backend.
    assert takes_any_blocksize("dequantize_blockwise", "xpu")
    assert not takes_any_blocksize("quantize_4bit", "cpu")
    assert not takes_any_blocksize("quantize_blockwise", None)
    assert blocksize_error("quantize_blockwise", 16384, "cpu") is None
    assert blocksize_error("quantize_blockwise", 0, "cpu") == "blocksize must be positive, got 0"
    assert "invalid blocksize 16384" in blocksize_error("quantize_blockwise", 16384)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("blocksize", CPU_ONLY_BLOCKSIZES)
def test_cpu_blockwise_takes_any_positive_blocksize(blocksize, dtype):
    A = torch.randn(20001, generator=torch.Generator().manual_seed(blocksize)).to(dtype)
    codes, state = F.quantize_blockwise(A, blocksize=blocksize)
    assert state.absmax.shape == (-(A.numel() // -blocksize),)
    reference_codes, reference_absmax = torch_blockwise.quantize_blockwise(A, state.code, blocksize)
    assert torch.equal(codes, reference_codes)
    assert torch.equal(state.absmax, reference_absmax)
    restored = F.dequantize_blockwise(codes, state)
    expected = torch_blockwise.dequantize_blockwise(codes, state.absmax, state.code, blocksize, dtype)
    assert restored.dtype == dtype and torch.equal(restored, expected)
    # The signed dynamic map's widest step, relative to the block's absmax.
    scale = state.absmax.repeat_interleave(blocksize)[: A.numel()]
    assert ((restored.float() - A.float()).abs() <= 0.03 * scale + 1e-2).all()


def test_cpu_blockwise_nested_with_a_large_blocksize():
    A = torch.randn(70000, generator=torch.Generator().manual_seed(0))
    codes, state = F.quantize_blockwise(A, blocksize=16384, nested=True)
    assert state.nested and state.state2.blocksize == 16384
    assert (F.dequantize_blockwise(codes, state) - A).abs().max() < 0.05


@pytest.mark.parametrize("blocksize", [0, -64])
def test_blockwise_blocksize_must_be_positive(blocksize):
    with pytest.raises(ValueError, match="blocksize must be positive"):
        F.quantize_blockwise(torch.randn(64), blocksize=blocksize)
    with pytest.raises(ValueError, match="blocksize must be positive"):
        torch.ops.bitsandbytes.dequantize_blockwise(
            torch.zeros(64, dtype=torch.uint8), torch.ones(1), F.create_dynamic_map(), blocksize, torch.float32
        )


def test_fourbit_blocksizes_stay_the_listed_ones_on_the_cpu():
    # Upstream rejects these on every device.
    for blocksize in (16, 100, 8192):
        with pytest.raises(ValueError, match=f"invalid blocksize {blocksize}"):
            F.quantize_4bit(torch.randn(64, 64), blocksize=blocksize)
    assert BLOCKSIZES["quantize_4bit"] == (32, 64, 128, 256, 512, 1024, 2048, 4096)


def test_fake_kernel_follows_the_device_rule():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        A = torch.empty(40000)
        codes, absmax = torch.ops.bitsandbytes.quantize_blockwise(A, torch.empty(256), 16384)
        assert codes.shape == A.shape and absmax.shape == (3,)


# ---- QuantState of 8-bit blockwise quantization -----------------------------------------


@pytest.mark.parametrize("nested", [False, True])
def test_blockwise_quant_state_round_trips_through_as_dict(nested):
    A = torch.randn(5000, generator=torch.Generator().manual_seed(1))
    codes, state = F.quantize_blockwise(A, blocksize=256, nested=nested)
    entries = state.as_dict()
    assert entries["quant_type"] is None
    assert state.as_dict(packed=True).keys() == entries.keys()  # 8-bit states are never packed
    restored = F.QuantState.from_dict(entries, "cpu")
    assert restored == state
    assert restored.quant_type is None and restored.nested == nested
    assert torch.equal(F.dequantize_blockwise(codes, restored), F.dequantize_blockwise(codes, state))


def test_quant_state_legacy_list_view():
    _, state = F.quantize_4bit(torch.randn(64, 64), quant_type="nf4", compress_statistics=True)
    absmax, shape, dtype, blocksize, nesting, quant_type = state[:]
    assert (shape, dtype, blocksize, quant_type) == (torch.Size([64, 64]), torch.float32, 64, "nf4")
    assert absmax is state.absmax and nesting[0] is state.offset and nesting[1] is state.state2
    _, plain = F.quantize_blockwise(torch.randn(64))
    assert plain[4] is None and plain[-1] is None


# ---- create_dynamic_map for 2- to 7-bit codes -----------------------------------------------

# Upstream 0.50.2: the non-zero values of create_dynamic_map(True, k, k), increasing.
UPSTREAM_SMALL_MAP_EDGES = {
    2: ([-0.550000011920929], [0.550000011920929, 1.0]),
    3: ([-0.7749999761581421, -0.32500001788139343, -0.055000003427267075],
        [0.055000003427267075, 0.32500001788139343, 0.7749999761581421, 1.0]),
    8: ([-0.992968738079071, -0.9789062738418579, -0.96484375],
        [0.96484375, 0.9789062738418579, 0.992968738079071, 1.0]),
}  # fmt: skip


@pytest.mark.parametrize("bits", range(2, 9))
def test_small_dynamic_maps_are_upstreams(bits):
    code = F.create_dynamic_map(signed=True, max_exponent_bits=bits, total_bits=bits)
    assert code.shape == (256,) and code.dtype == torch.float32
    assert torch.equal(code, code.sort().values)
    # 2**bits - 1 values besides zero (the rest of the 256 entries pads with zeros).
    assert (code != 0).sum() == 2**bits - 1
    assert code[-1] == 1.0
    if bits in UPSTREAM_SMALL_MAP_EDGES:
        lowest, highest = UPSTREAM_SMALL_MAP_EDGES[bits]
        assert code[: len(lowest)].tolist() == lowest
        assert code[-len(highest) :].tolist() == highest


@pytest.mark.parametrize("bits", range(2, 8))
def test_small_dynamic_maps_quantize_blockwise(bits):
    code = F.create_dynamic_map(signed=True, max_exponent_bits=bits, total_bits=bits)
    A = torch.randn(4096 + 7, generator=torch.Generator().manual_seed(bits))
    codes, state = F.quantize_blockwise(A, code=code, blocksize=256)
    reference_codes, _ = torch_blockwise.quantize_blockwise(A, code, 256)
    assert torch.equal(codes, reference_codes)
    restored = F.dequantize_blockwise(codes, state)
    # Every restored value is a code value times its block's absmax.
    allowed = set(code.tolist())
    assert set(code[codes.long()].tolist()) <= allowed
    assert (restored - A).abs().max() < state.absmax.max()


def test_dynamic_map_without_exponent_bits_fails_as_upstream_does():
    with pytest.raises(ValueError, match="max_exponent_bits must be >= 1"):
        F.create_dynamic_map(signed=True, max_exponent_bits=0, total_bits=4)
    assert F.create_dynamic_map(signed=True, max_exponent_bits=0, total_bits=1)[-1] == 1.0


# ---- warnings users filter on -------------------------------------------------------------


def test_matmul_4bit_transposed_weight_warns_with_upstreams_words():
    W = torch.randn(48, 64)  # quantized as [K, N]: A's last dimension matches shape[0]
    packed, state = F.quantize_4bit(W, quant_type="nf4")
    A = torch.randn(3, 48)
    expected = torch.nn.functional.linear(A, F.dequantize_4bit(packed, state).t())
    message = (
        r"matmul_4bit: weight was quantized from a \[K, N\] tensor \(quant_state.shape=\[48, 64\]\)\. "
        r"Re-quantize from the weight in \[N, K\] \(out_features, in_features\) orientation\. "
        r"This will be an error in a future version\."
    )
    with pytest.warns(DeprecationWarning, match=message):
        result = bnb.matmul_4bit(A, packed, state)
    assert torch.equal(result, expected)
    out = torch.empty(3, 64)
    with pytest.warns(DeprecationWarning):
        assert bnb.matmul_4bit(A, packed, state, out=out) is out
    assert torch.equal(out, expected)


def test_int8_cast_notice_is_a_log_record_not_a_warning_once_per_dtype(caplog, monkeypatch):
    from bitsandbytes.autograd import _functions

    monkeypatch.setattr(_functions, "_logged_casts", set())
    notice = "MatMul8bitLt: inputs will be cast from torch.float32 to float16 during quantization"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here would fail suites run with -W error
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                _functions._warn_cast_to_float16(torch.randn(2, 64))
            _functions._warn_cast_to_float16(torch.randn(2, 64, dtype=torch.bfloat16))
            _functions._warn_cast_to_float16(torch.randn(2, 64, dtype=torch.float16))
    assert caplog.text.count(notice) == 1
    assert caplog.text.count("will be cast from torch.bfloat16") == 1
    assert "torch.float16 to" not in caplog.text


def test_matmul_lt_state_deprecated_fields_warn_with_upstreams_words():
    with pytest.warns(FutureWarning, match="MatmulLtState.CxB is deprecated and will be removed in the next "
                                           "bitsandbytes release."):
        assert bnb.MatmulLtState().CxB is None
