"""The native library as upstream's ``bitsandbytes.cextension`` presents it (python_api.md section 7).

Upstream loads one of several per-toolkit libraries (``libbitsandbytes_cuda124.so``,
``..._cpu.so``) with ctypes and calls its functions through ``lib``. This package
ships one native library, ``libbitsandbytes``, for every backend it was built
with; its C ABI (``include/bitsandbytes/bitsandbytes.h``) is reached from Python
through ``torch.ops.bitsandbytes``, never through ``lib``. ``lib`` is kept for
code written against upstream: attribute access gives the C ABI's ``bnb_*``
functions, and the few upstream functions that other code calls directly
(contract ops.md section 5) where the C ABI has an equivalent: ``cget_managed_ptr``
and ``cprefetch``. Any other name gives a function that raises RuntimeError when
called, as upstream's CPU-only library does for its missing symbols.
"""

import ctypes
import logging
import os
import re
from pathlib import Path
from typing import Callable, Optional

import torch

from . import _cuda_override
from .consts import DYNAMIC_LIBRARY_SUFFIX, PACKAGE_DIR
from .cuda_specs import CUDASpecs, get_cuda_version_tuple, get_rocm_gpu_arch

logger = logging.getLogger(__name__)



def native_library_in(directory: Path) -> Path:
    """The native library of a package directory: libbitsandbytes.so as the wheel installs
    it, else the versioned file (libbitsandbytes.so.X.Y.Z) that a build tree's staged
    package holds; the plain name when neither exists (the load then reports it missing)."""
    plain = directory / f"libbitsandbytes{DYNAMIC_LIBRARY_SUFFIX}"
    if plain.exists():
        return plain
    versioned = sorted(directory.glob(f"libbitsandbytes{DYNAMIC_LIBRARY_SUFFIX}.*"))
    return versioned[0] if versioned else plain


NATIVE_LIBRARY_PATH = native_library_in(PACKAGE_DIR)

# bnb_device_type of the C ABI.
_BNB_DEVICE_CUDA = 1
_BNB_DEVICE_HIP = 2
_BNB_STATUS_SUCCESS = 0


class _BnbDevice(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("index", ctypes.c_int32)]


def get_cuda_bnb_library_path(cuda_specs: CUDASpecs) -> Path:
    """The native library that serves CUDA (or ROCm) devices with these specs.

    Upstream picks one of several per-toolkit files by ``cuda_specs.cuda_version_tuple``;
    here one library, built for the toolkit found at build time, serves every CUDA
    version, so the answer is always that file. A malformed version override still
    raises RuntimeError.
    """
    if not isinstance(cuda_specs, CUDASpecs):
        raise TypeError(f"cuda_specs must be a bitsandbytes.cuda_specs.CUDASpecs, got {type(cuda_specs).__name__}")
    override = _cuda_override.read_override(_cuda_override.library_variable())  # malformed: raises as upstream
    if override is not None:
        logger.warning("%s", _cuda_override.override_message(*override))
    return NATIVE_LIBRARY_PATH


def get_xpu_bnb_library_path() -> Path:
    """The native library loaded on XPU machines: the same single library (XPU ops run as torch code)."""
    return NATIVE_LIBRARY_PATH


def _as_int(value) -> int:
    """A ctypes scalar or pointer (as upstream's callers pass them) or a Python int, as an int."""
    value = getattr(value, "value", value)
    return 0 if value is None else int(value)


def _gpu_device_type() -> int:
    return _BNB_DEVICE_HIP if torch.version.hip else _BNB_DEVICE_CUDA


def _upstream_function_shims(native: ctypes.CDLL) -> dict[str, Callable]:
    """Upstream's GPU-library functions that have a C ABI equivalent, in upstream's calling convention."""
    native.bnb_paged_alloc.argtypes = [_BnbDevice, ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p)]
    native.bnb_paged_prefetch.argtypes = [_BnbDevice, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]

    def raise_on_failure(status: int, function: str) -> None:
        if status != _BNB_STATUS_SUCCESS:
            raise RuntimeError(f"{function} failed: {native.bnb_last_error().decode()}")

    def current_gpu() -> _BnbDevice:
        # Without a usable device (a CPU-only torch) device 0 lets the C ABI say why it cannot serve.
        return _BnbDevice(_gpu_device_type(), torch.cuda.current_device() if torch.cuda.is_available() else 0)

    def cget_managed_ptr(num_bytes) -> Optional[int]:
        """Managed memory of num_bytes (zero-filled), the address as an int like upstream's c_void_p restype."""
        pointer = ctypes.c_void_p()
        raise_on_failure(native.bnb_paged_alloc(current_gpu(), _as_int(num_bytes), ctypes.byref(pointer)),
                         "cget_managed_ptr")
        return pointer.value

    def cprefetch(ptr, num_bytes, device) -> None:
        """Starts moving [ptr, ptr + num_bytes) to GPU `device`, or to the host for device -1."""
        device_index = _as_int(device)
        target = _BnbDevice(_gpu_device_type(), device_index) if device_index >= 0 else current_gpu()
        raise_on_failure(native.bnb_paged_prefetch(target, None, _as_int(ptr), _as_int(num_bytes),
                                                   int(device_index >= 0)), "cprefetch")

    return {"cget_managed_ptr": cget_managed_ptr, "cprefetch": cprefetch}


class BNBNativeLibrary:
    """Attribute access to the native library; a missing function raises RuntimeError when called."""

    _lib: ctypes.CDLL
    compiled_with_cuda = False

    def __init__(self, lib: ctypes.CDLL):
        self._lib = lib
        for name in ("bnb_version", "bnb_last_error", "bnb_status_name", "bnb_backend_name", "bnb_op_name",
                     "bnb_backend_variant"):
            getattr(lib, name).restype = ctypes.c_char_p
        gpu_built = bool(lib.bnb_backend_built(_gpu_device_type()))
        self._shims = _upstream_function_shims(lib) if gpu_built else {}
        self._resolved = {}

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_lib", "_shims", "_resolved"):
            # Protocols (copy, pickle) and the fields themselves must not turn into native lookups.
            raise AttributeError(name)
        if name not in self._resolved:
            self._resolved[name] = self._resolve(name)
        return self._resolved[name]

    def __getitem__(self, item):
        return self.__getattr__(item)

    def _resolve(self, name: str):
        if name in self._shims:
            return self._shims[name]
        # Only the C ABI's own names: ctypes looks a name up in the library's dependencies
        # too, so `lib.malloc` would otherwise resolve to libc's.
        function = getattr(self._lib, name, None) if name.startswith("bnb_") else None
        if function is not None:
            return function
        build = "this" if self._shims else "CPU-only"

        def throw_on_call(*args, **kwargs):
            raise RuntimeError(
                f"Method '{name}' not available in {build} version of bitsandbytes.\n"
                f"Its native library ({NATIVE_LIBRARY_PATH.name}) has the C ABI of "
                "include/bitsandbytes/bitsandbytes.h (bnb_* functions) and, of upstream's ctypes functions, "
                "only cget_managed_ptr and cprefetch (in builds with a GPU backend); the Python API "
                "(bitsandbytes.functional, torch.ops.bitsandbytes) covers the rest."
            )

        return throw_on_call


class CudaBNBNativeLibrary(BNBNativeLibrary):
    """The native library of a build with a CUDA or HIP backend."""

    compiled_with_cuda = True

    def __init__(self, lib: ctypes.CDLL):
        super().__init__(lib)


class XpuBNBNativeLibrary(BNBNativeLibrary):
    """The native library on an XPU machine (XPU kernels are the package's torch code)."""

    def __init__(self, lib: ctypes.CDLL):
        super().__init__(lib)


def _split_cuda_version(compact: str, is_hip: bool) -> tuple[int, int]:
    """(major, minor) of a compact version from a library file name: CUDA "118" -> (11, 8), ROCm "72" -> (7, 2)."""
    if not compact.isdigit() or len(compact) < (2 if is_hip else 3):
        raise ValueError(f"compact must be a {'ROCm' if is_hip else 'CUDA'} version written as digits, "
                         f"got {compact!r}")
    major_digits = 1 if is_hip else 2
    return int(compact[:major_digits]), int(compact[major_digits:])


def _find_cuda_libs(prefix: str, is_hip: bool) -> dict[tuple[int, int], Path]:
    """Per-toolkit libraries (upstream's naming, ``libbitsandbytes_<prefix><version>``) in the package."""
    found = {}
    for path in PACKAGE_DIR.glob(f"libbitsandbytes_{prefix}*{DYNAMIC_LIBRARY_SUFFIX}"):
        match = re.fullmatch(rf"libbitsandbytes_{prefix}(\d+){re.escape(DYNAMIC_LIBRARY_SUFFIX)}", path.name)
        if match:
            try:
                found[_split_cuda_version(match.group(1), is_hip)] = path
            except ValueError:
                continue
    return found


def get_available_cuda_binary_versions() -> list[str]:
    """"major.minor" of each per-toolkit library in the package (none: one library serves all)."""
    is_hip = bool(torch.version.hip)
    return sorted(f"{major}.{minor}" for major, minor in _find_cuda_libs("rocm" if is_hip else "cuda", is_hip))


def parse_cuda_version(version_str: str) -> str:
    """A compact version ("124") in dotted form ("12.4"); anything else is returned unchanged."""
    try:
        major, minor = _split_cuda_version(version_str, bool(torch.version.hip))
    except ValueError:
        return version_str
    return f"{major}.{minor}"


class ErrorHandlerMockBNBNativeLibrary(BNBNativeLibrary):
    """Stands in for a native library that failed to load: every function raises, with advice, when called.

    Import must still succeed (the torch ops do not need ``lib``), so the error waits
    for the first call through ``lib``.
    """

    def __init__(self, error_msg: str):
        self.error_msg = error_msg
        self.available_versions = get_available_cuda_binary_versions()
        override = os.environ.get(_cuda_override.library_variable())
        runtime = get_cuda_version_tuple()
        runtime_text = f"{runtime[0]}.{runtime[1]}" if runtime else "unknown"
        self.requested_version = parse_cuda_version(override) if override else runtime_text
        if "cannot open shared object file" in error_msg:
            self.formatted_error = self._format_dependency_error()
        else:
            self.formatted_error = self._format_lib_error_message(
                available_versions=self.available_versions,
                user_cuda_version=runtime_text,
                original_error=f"Original error: {error_msg}\n" if error_msg else "",
                requested_version=self.requested_version,
            )

    def _format_lib_error_message(self, available_versions, user_cuda_version, original_error="",
                                  requested_version=None) -> str:
        versions = ", ".join(available_versions) if available_versions else "none (one library serves all)"
        return (
            "The bitsandbytes native library is not available, so functions called through "
            "bitsandbytes.cextension.lib cannot run.\n"
            f"Expected library: {NATIVE_LIBRARY_PATH}\n"
            f"Backend: {BNB_BACKEND}; torch toolkit version: {user_cuda_version}; requested version: "
            f"{requested_version or user_cuda_version}; per-version libraries in the package: {versions}\n"
            "Reinstall bitsandbytes against the installed torch (`pip install --no-build-isolation .` from the "
            "source tree) and run `python -m bitsandbytes` to check.\n"
            f"{original_error}"
        )

    def _format_dependency_error(self) -> str:
        missing = self.error_msg.split(":", 1)[0].strip() or "unknown library"
        library_dir = "lib" if HIP_ENVIRONMENT else "lib64"
        return (
            f"The bitsandbytes native library could not load a dependency: {missing}.\n"
            f"Make sure the {BNB_BACKEND} {self.requested_version} runtime libraries are installed and on the "
            f"loader's path (e.g. export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/path/to/the/toolkit/{library_dir}).\n"
            f"Original error: {self.error_msg}\n"
            "Run `python -m bitsandbytes` for a diagnostics report.\n"
        )

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def throw_on_call(*args, **kwargs):
            raise RuntimeError(f"{self.formatted_error}Native code method attempted to call: lib.{name}()")

        return throw_on_call

    def __getitem__(self, name):
        return self.__getattr__(name)


def get_native_library() -> BNBNativeLibrary:
    """Loads the native library (already in the process as the extension's dependency) with ctypes."""
    if torch.cuda.is_available():
        _cuda_override.read_override()  # a malformed value raises as upstream
    if not NATIVE_LIBRARY_PATH.exists():
        raise RuntimeError(f"No compatible {BNB_BACKEND} binary found at {NATIVE_LIBRARY_PATH}")
    logger.debug("Loading bitsandbytes native library from: %s", NATIVE_LIBRARY_PATH)
    native = ctypes.CDLL(str(NATIVE_LIBRARY_PATH))
    native.bnb_backend_built.argtypes = [ctypes.c_int]
    if native.bnb_backend_built(_gpu_device_type()):
        return CudaBNBNativeLibrary(native)
    if torch._C._has_xpu:
        return XpuBNBNativeLibrary(native)
    return BNBNativeLibrary(native)


ROCM_GPU_ARCH = get_rocm_gpu_arch()

HIP_ENVIRONMENT = False
BNB_BACKEND = "CPU"
if torch.version.hip:
    HIP_ENVIRONMENT = True
    BNB_BACKEND = "ROCm"
elif torch.cuda.is_available():
    BNB_BACKEND = "CUDA"
elif torch._C._has_xpu:
    BNB_BACKEND = "XPU"

try:
    lib = get_native_library()
except (OSError, RuntimeError) as _load_error:
    if BNB_BACKEND not in ("CPU", "XPU"):
        logger.error("bitsandbytes library load error: %s", _load_error, exc_info=True)
    lib = ErrorHandlerMockBNBNativeLibrary(str(_load_error))
