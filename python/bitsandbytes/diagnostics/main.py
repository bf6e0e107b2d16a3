"""``python -m bitsandbytes``: versions, backends, and a quantization self-test per device.

Exits with status 1 when a self-test fails, so it can gate an installation.
"""

import sys

import torch

# Worst-case rounding error of one element, relative to its block's absmax: half
# the widest gap of the codebook (NF4: between -1 and -0.696; dynamic map: near +-1).
NF4_ERROR_BOUND = 0.16
DYNAMIC_MAP_ERROR_BOUND = 0.0075
SELF_TEST_ELEMENTS = 4096 + 33  # a partial last block and an odd count


def _max_relative_error(A: torch.Tensor, restored: torch.Tensor, blocksize: int) -> float:
    """Largest |A - restored| relative to the absmax of its block, less the output rounding."""
    error = (A.float() - restored.float()).abs().reshape(-1)
    absmax = A.float().abs().reshape(-1)
    absmax = torch.nn.functional.pad(absmax, (0, -absmax.numel() % blocksize)).view(-1, blocksize).amax(dim=1)
    scale = absmax.repeat_interleave(blocksize)[: error.numel()]
    output_rounding = torch.finfo(restored.dtype).eps / 2
    return (error / scale).max().item() - output_rounding


def self_test(device: str) -> str:
    """Quantizes and dequantizes on `device`; raises AssertionError with the reason on failure."""
    import bitsandbytes.functional as F
    from bitsandbytes.backends.torch import blockwise, fourbit

    generator = torch.Generator().manual_seed(0)
    A = torch.randn(SELF_TEST_ELEMENTS, generator=generator).to(device=device, dtype=torch.bfloat16)

    packed, state = F.quantize_4bit(A, blocksize=64, quant_type="nf4", compress_statistics=True)
    restored = F.dequantize_4bit(packed, state)
    nf4_error = _max_relative_error(A, restored, 64)
    # The nested absmax is approximate, hence the slack.
    assert nf4_error <= NF4_ERROR_BOUND * 1.05, f"nf4 round trip error {nf4_error:.4f} of the block absmax"
    reference_packed, reference_absmax = fourbit.quantize_4bit(A, 64, "nf4", torch.uint8)
    plain_packed, plain_absmax = torch.ops.bitsandbytes.quantize_4bit(A, 64, "nf4", torch.uint8)
    assert torch.equal(plain_packed, reference_packed), "nf4 codes differ from the pure-torch reference"
    assert torch.equal(plain_absmax, reference_absmax), "nf4 absmax differs from the pure-torch reference"

    codes, state8 = F.quantize_blockwise(A, blocksize=256)
    restored8 = F.dequantize_blockwise(codes, state8)
    blockwise_error = _max_relative_error(A, restored8, 256)
    assert blockwise_error <= DYNAMIC_MAP_ERROR_BOUND, f"8-bit round trip error {blockwise_error:.4f}"
    reference_codes, _ = blockwise.quantize_blockwise(A, state8.code, 256)
    assert torch.equal(codes, reference_codes), "8-bit codes differ from the pure-torch reference"
    return (
        f"nf4 and 8-bit blockwise round trips within bounds (max error {nf4_error:.3f} and "
        f"{blockwise_error:.4f} of the block absmax), bytes equal to the pure-torch reference"
    )


def main() -> int:
    try:
        import bitsandbytes
        from bitsandbytes import _C
    except ImportError as error:
        print(f"bitsandbytes could not be imported:\n{error}")
        return 1

    print(f"bitsandbytes {bitsandbytes.__version__} (C ABI {_C.abi_version()})")
    print(f"torch {torch.__version__}" + (f", CUDA {torch.version.cuda}" if torch.version.cuda else ""))
    print("native backends:")
    for name, built, available in _C.backends():
        print(f"  {name:6s} {'built' if built else 'not built':10s} {'available' if available else 'not available'}")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    failed = False
    for device in devices:
        try:
            print(f"self-test {device}: OK, {self_test(device)}")
        except Exception as error:  # any failure is reported, then the exit status says so
            failed = True
            print(f"self-test {device}: FAILED, {type(error).__name__}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
