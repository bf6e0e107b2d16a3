"""Pointers, devices and streams of tensors (upstream's helpers for native calls)."""

import ctypes
from typing import Iterable, Optional

import torch

from .._singleton import singleton_instance
from ..cextension import lib


def is_on_gpu(tensors: Iterable[Optional[torch.Tensor]]) -> bool:
    """True when the tensors share one device; None entries and paged tensors are ignored.

    Raises RuntimeError when CPU and accelerator tensors are mixed or when two
    accelerators appear.
    """
    tensors = list(tensors)
    devices = {
        (t.device.type, t.device.index)
        for t in tensors
        if t is not None and not getattr(t, "is_paged", False)
    }
    if len(devices) <= 1:
        return True
    described = [(tuple(t.shape), t.device) for t in tensors if t is not None]
    if any(device[0] == "cpu" for device in devices):
        raise RuntimeError(f"Input tensors need to be on the same device, but found: {described}")
    raise RuntimeError(
        f"Input tensors need to be on the same GPU, but found the following tensor and device "
        f"combinations: {described}"
    )


def get_ptr(A: Optional[torch.Tensor]) -> Optional[ctypes.c_void_p]:
    """The address of A's first element as a ctypes pointer (None for None)."""
    if A is None:
        return None
    return ctypes.c_void_p(A.data_ptr())


def _get_tensor_stream(tensor: torch.Tensor) -> ctypes.c_void_p:
    """The current stream of the tensor's device as a raw handle; NULL on the CPU."""
    if tensor.device.type == "cuda":
        return ctypes.c_void_p(torch.cuda.current_stream(tensor.device).cuda_stream)
    if tensor.device.type == "xpu":
        return ctypes.c_void_p(torch.xpu.current_stream(tensor.device).sycl_queue)
    return ctypes.c_void_p()


class CUBLAS_Context:
    """Upstream's cache of one cuBLAS handle per CUDA device (a singleton), used by the deprecated igemm.

    Our native library creates and caches its cuBLASLt handles itself, below the C
    ABI, and does not hand them out: ``get_context`` asks ``lib.get_context`` as
    upstream does, which raises RuntimeError here.
    """

    _instance = None

    def __init__(self):
        raise RuntimeError("Call get_instance() instead")

    def initialize(self):
        self.context = {}

    get_instance = classmethod(singleton_instance)

    def get_context(self, device):
        device = torch.device(device)
        if device.type != "cuda":
            raise ValueError(f"device must be a CUDA device, got {device}")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index not in self.context:
            self.context[index] = ctypes.c_void_p(lib.get_context())
        return self.context[index]
