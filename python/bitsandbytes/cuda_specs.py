"""What torch reports about the CUDA (or ROCm) runtime and devices of this machine.

Asking for device capabilities initialises CUDA, so nothing here runs at import;
callers ask when they need the answer (diagnostics, library selection).
"""

import dataclasses
import functools
import logging
import platform
import re
import subprocess
from typing import Optional

import torch

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CUDASpecs:
    highest_compute_capability: tuple[int, int]
    cuda_version_string: str  # "124" for CUDA 12.4, as in upstream's library file names
    cuda_version_tuple: tuple[int, int]

    @property
    def has_imma(self) -> bool:
        # Integer tensor-core matmul (IMMA) needs Turing (sm_75) or newer; every ROCm GPU
        # that torch supports has an equivalent.
        return bool(torch.version.hip) or self.highest_compute_capability >= (7, 5)


def get_compute_capabilities() -> list[tuple[int, int]]:
    """(major, minor) of every visible CUDA device, in increasing order."""
    return sorted(torch.cuda.get_device_capability(index) for index in range(torch.cuda.device_count()))


@functools.lru_cache(None)
def get_cuda_version_tuple() -> Optional[tuple[int, int]]:
    """(major, minor) of the CUDA or HIP version torch was built with; None for a CPU-only torch."""
    version = torch.version.cuda or torch.version.hip
    if not version:
        return None
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def get_cuda_version_string() -> Optional[str]:
    """The version of get_cuda_version_tuple() written compactly ("124" for 12.4), or None."""
    version = get_cuda_version_tuple()
    return None if version is None else f"{version[0]}{version[1]}"


def get_cuda_specs() -> Optional[CUDASpecs]:
    """The specs of this machine's CUDA devices; None without a usable CUDA device or version."""
    if not torch.cuda.is_available():
        return None
    try:
        capabilities = get_compute_capabilities()
    except RuntimeError as error:  # a driver that lists devices but cannot open them
        logger.warning("bitsandbytes: could not read the CUDA compute capabilities: %s", error)
        return None
    version = get_cuda_version_tuple()
    if not capabilities or version is None:
        return None
    return CUDASpecs(
        highest_compute_capability=capabilities[-1],
        cuda_version_string=get_cuda_version_string(),
        cuda_version_tuple=version,
    )


def get_rocm_gpu_arch() -> str:
    """The gfx name of the first ROCm GPU ("gfx90a"), as rocminfo reports it; "unknown" elsewhere."""
    if not torch.version.hip:
        return "unknown"
    if platform.system() == "Windows":
        command, pattern = ["hipinfo.exe"], r"gcnArchName:\s+(gfx[a-zA-Z\d]+)"
    else:
        command, pattern = ["rocminfo"], r"Name:\s+(gfx[a-zA-Z\d]+)"
    try:
        report = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    except OSError as error:
        logger.error("bitsandbytes: could not run %s to detect the ROCm GPU architecture: %s", command[0], error)
        return "unknown"
    match = re.search(pattern, report)
    return match.group(1) if match else "unknown"
