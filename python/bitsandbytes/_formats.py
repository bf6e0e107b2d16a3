"""Facts of the data formats, read once from the native library (src/formats.h).

Every layer (functional API, fake kernels, pure-torch kernels) checks arguments
against these tables and words its errors with these helpers, so a rule and its
message exist once. Each helper returns the message of what is wrong, or None;
the caller raises in its own layer's way (ValueError in eager code, torch._check's
RuntimeError in fake kernels).

Read at import: torch.compile traces Python constants, not calls into _C.
"""

from typing import Optional

import torch

from . import _C

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
FOURBIT_QUANT_TYPES = ("nf4", "fp4")
FOURBIT_STORAGE_DTYPES = (torch.uint8, torch.bfloat16, torch.float16, torch.float32)

# The blocksizes each native op accepts on every backend, increasing.
BLOCKSIZES: dict[str, tuple[int, ...]] = {op: tuple(_C.blocksizes(op)) for op in _C.ops()}
# Ops whose format holds for blocks of any length (blockwise 8-bit): a backend
# whose kernels cut such blocks takes every positive blocksize, as upstream's
# CPU path and its pure-torch kernels do; upstream's GPU kernels take the list.
ANY_BLOCKSIZE_OPS: frozenset[str] = frozenset(op for op in _C.ops() if _C.any_blocksize(op))

_BUILT_BACKENDS = {name for name, built, _available in _C.backends() if built}
# The native backend that serves a torch device type; every other device type
# runs the pure-torch kernels (backends/torch), which cut blocks of any length.
_NATIVE_BACKEND_OF_DEVICE: dict[str, str] = {
    device: backend
    for device, candidates in (("cpu", ("cpu",)), ("cuda", ("hip", "cuda")), ("mps", ("metal",)))
    for backend in [next((name for name in candidates if name in _BUILT_BACKENDS), None)]
    if backend is not None
}
# The ops for which each device type takes every positive blocksize.
_ANY_BLOCKSIZE_OPS_ON_NATIVE: dict[str, frozenset[str]] = {
    device: frozenset(op for op in ANY_BLOCKSIZE_OPS if _C.backend_any_blocksize(backend, op))
    for device, backend in _NATIVE_BACKEND_OF_DEVICE.items()
}
# Entries of an 8-bit codebook (the dynamic maps).
CODE_SIZE: int = len(_C.codebook("dynamic_signed"))
# Blocksize of the 8-bit quantization of nested ("double") 4-bit statistics.
NESTED_BLOCKSIZE: int = _C.nested_blocksize()


def require_valid(error: Optional[str]) -> None:
    """Raises a rule's message as the eager layers do (ValueError); fake kernels use _ops.check_format."""
    if error is not None:
        raise ValueError(error)


def blocks_of(n: int, blocksize: int) -> int:
    """ceil(n / blocksize), written as upstream does so that symbolic sizes stay simple."""
    return -(n // -blocksize)


def packed_4bit_storage_elements(n: int, quant_storage: torch.dtype) -> int:
    """Elements of quant_storage holding the (n + 1) // 2 packed bytes, rounded up.

    Upstream allocates (n + 1) // (2 * itemsize) and writes past the end when that
    rounds down; the rounded-up size never does and equals upstream's otherwise.
    """
    return -(((n + 1) // 2) // -quant_storage.itemsize)


def takes_any_blocksize(op: str, device_type: Optional[str]) -> bool:
    """Whether `op` takes every positive blocksize on devices of `device_type` (None: on every device)."""
    if device_type is None or op not in ANY_BLOCKSIZE_OPS:
        return False
    return op in _ANY_BLOCKSIZE_OPS_ON_NATIVE.get(device_type, ANY_BLOCKSIZE_OPS)


def blocksize_error(op: str, blocksize: int, device_type: Optional[str] = None) -> Optional[str]:
    """The rule of `op`'s blocksize on `device_type` (None: the blocksizes every device takes)."""
    if takes_any_blocksize(op, device_type):
        return None if blocksize > 0 else f"blocksize must be positive, got {blocksize}"
    allowed = BLOCKSIZES[op]
    if blocksize in allowed:
        return None
    return f"invalid blocksize {blocksize}: must be one of {allowed}"


def quant_type_error(quant_type: str) -> Optional[str]:
    if quant_type in FOURBIT_QUANT_TYPES:
        return None
    return f"quant_type must be 'nf4' or 'fp4', got {quant_type!r}"


# How upstream's messages name each op whose input (quantizers) or output
# (dequantizers) must be a 16/32-bit float.
_FLOAT_OPERATION_NAMES = {
    "quantize_blockwise": "Blockwise quantization",
    "dequantize_blockwise": "Blockwise dequantization",
    "quantize_4bit": "Blockwise 4bit quantization",
    "dequantize_4bit": "Blockwise 4bit dequantization",
}


def float_dtype_error(op: str, dtype: torch.dtype) -> Optional[str]:
    if dtype in FLOAT_DTYPES:
        return None
    return f"{_FLOAT_OPERATION_NAMES[op]} only supports 16/32-bit floats, but got {dtype}"
