"""The report of ``python -m bitsandbytes``: what upstream's diagnostics print (platform,
versions, the CUDA/ROCm specs torch reports, the native library and its backends),
then a quantization self-test per device and, with a GPU, an 8-bit optimizer step.

main() returns 1 when the library is broken or a check fails, so the command can
gate an installation.
"""

import importlib.metadata
import platform
from pathlib import Path
from typing import Callable

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


HEADER_WIDTH = 60
# Packages whose versions a bug report needs (upstream's list).
RELATED_PACKAGES = ("accelerate", "diffusers", "numpy", "pip", "peft", "safetensors", "transformers", "triton", "trl")


def print_header(text: str) -> None:
    print((f" {text} " if text else "").center(HEADER_WIDTH, "="))


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not found"


def show_environment() -> None:
    print(f"Platform: {platform.platform()}")
    if platform.system() == "Linux":
        print(f"  libc: {'-'.join(platform.libc_ver())}")
    print(f"Python: {platform.python_version()}")
    print(f"PyTorch: {torch.__version__}")
    print(f"  CUDA: {torch.version.cuda or 'N/A'}")
    print(f"  HIP: {torch.version.hip or 'N/A'}")
    print(f"  XPU: {getattr(torch.version, 'xpu', None) or 'N/A'}")
    print("Related packages:")
    for name in RELATED_PACKAGES:
        print(f"  {name}: {package_version(name)}")


def gpu_specs() -> str:
    """The line upstream prints from torch's CUDA/ROCm settings ("" without a usable GPU)."""
    if not torch.cuda.is_available():
        return ""
    capabilities = [torch.cuda.get_device_capability(index) for index in range(torch.cuda.device_count())]
    if torch.version.hip:
        return f"PyTorch settings found: ROCM_VERSION={torch.version.hip}"
    compact = "".join(torch.version.cuda.split(".")[:2]) if torch.version.cuda else "unknown"
    return f"PyTorch settings found: CUDA_VERSION={compact}, Highest Compute Capability: {max(capabilities)}."


def show_native_library(bitsandbytes, _C) -> None:
    package = Path(bitsandbytes.__file__).parent
    libraries = sorted(package.glob("libbitsandbytes*")) + [Path(_C.__file__)]
    print(f"Native library (C ABI {_C.abi_version()}):")
    for library in libraries:
        print(f"  {library}")
    print("Backends:")
    for name, built, available in _C.backends():
        print(f"  {name:6s} {'built' if built else 'not built':10s} {'available' if available else 'not available'}")


def gpu_devices() -> list[str]:
    devices = ["cuda"] if torch.cuda.is_available() else []
    return devices + [name for name in ("xpu", "mps") if getattr(torch, name, None) and getattr(torch, name).is_available()]


def optimizer_step(device: str) -> str:
    """One bnb.optim.Adam8bit step on `device`: the parameter must move, its 8-bit states must exist."""
    import bitsandbytes as bnb

    generator = torch.Generator().manual_seed(0)
    # 8-bit states need a parameter of at least 4096 elements (smaller ones stay 32-bit).
    parameter = torch.nn.Parameter(torch.rand(64, 64, generator=generator).to(device))
    before = parameter.detach().clone()
    optimizer = bnb.optim.Adam8bit([parameter])
    (parameter * torch.rand(64, 64, generator=generator).to(device)).sum().backward()
    optimizer.step()
    state = optimizer.state[parameter]
    assert state["state1"].dtype == torch.uint8, f"state1 is {state['state1'].dtype}, expected uint8"
    assert not torch.equal(parameter.detach(), before), "the parameter did not change"
    assert torch.isfinite(parameter).all(), "the parameter is not finite after one step"
    return "Adam8bit step changed the parameter, 8-bit states allocated"


def run_check(label: str, check: Callable[[], str]) -> bool:
    try:
        print(f"{label}: OK, {check()}")
        return True
    except Exception as error:  # any failure is reported, then the exit status says so
        print(f"{label}: FAILED, {type(error).__name__}: {error}")
        return False


def main() -> int:
    try:
        import bitsandbytes
        from bitsandbytes import _C, _cuda_override
    except ImportError as error:
        print(f"bitsandbytes could not be imported:\n{error}")
        return 1

    print_header(f"bitsandbytes v{bitsandbytes.__version__}")
    show_environment()
    print_header("")
    show_native_library(bitsandbytes, _C)
    ok = True
    specs = gpu_specs()
    if specs:
        print(specs)
    try:
        override = _cuda_override.read_override()
        if override is not None:
            print(_cuda_override.override_message(*override).rstrip())
    except RuntimeError as error:
        ok = False
        print(f"ERROR: {error}")

    devices = gpu_devices()
    for device in ["cpu"] + devices:
        ok &= run_check(f"self-test {device}", lambda device=device: self_test(device))
    if not devices:
        print("No CUDA, ROCm, or XPU detected; CPU library loaded successfully.")
    for device in devices:
        ok &= run_check(f"8-bit optimizer {device}", lambda device=device: optimizer_step(device))
    print("SUCCESS!" if ok else "FAILED: see the lines above; include this report when filing an issue.")
    return 0 if ok else 1
