"""Paged (CUDA managed) memory for the paged optimizers (python_api.md 2.7, formats.md 8.4).

A paged tensor is a CPU-device torch tensor over managed memory, marked with the
attributes ``is_paged = True`` and ``page_deviceid``; the driver migrates its pages
between host and device on demand, and ``prefetch_tensor`` migrates them ahead of use.
The memory comes from ``torch.ops.bitsandbytes.paged_empty`` (ordinary zeroed host
memory where no managed memory exists).
"""

import torch

from .._singleton import singleton_instance

FIRST_CUDA_DEVICE = torch.device("cuda", index=0)


class GlobalPageManager:
    """Every paged tensor the optimizers allocated, in allocation order (a singleton)."""

    _instance = None

    def __init__(self):
        raise RuntimeError("Call get_instance() instead")

    def initialize(self):
        self.paged_tensors = []

    get_instance = classmethod(singleton_instance)

    def prefetch_all(self, to_cpu=False):
        # The first tensors are used first, so they are fetched last and are the
        # least likely to be evicted again before use.
        for tensor in self.paged_tensors[::-1]:
            prefetch_tensor(tensor, to_cpu)


def get_paged(*shape, dtype=torch.float32, device=FIRST_CUDA_DEVICE) -> torch.Tensor:
    """A zero-filled paged tensor of shape and dtype whose pages belong to device."""
    device = torch.device(device)
    out = torch.ops.bitsandbytes.paged_empty(list(shape), dtype, device)
    out.is_paged = True
    out.page_deviceid = device.index
    return out


def _page_device(A: torch.Tensor) -> torch.device:
    index = A.page_deviceid
    return torch.device("cpu") if index is None else torch.device("cuda", index)


def prefetch_tensor(A: torch.Tensor, to_cpu=False) -> None:
    """Starts migrating A's pages to its device (or to the host with to_cpu); asynchronous."""
    assert getattr(A, "is_paged", False), "Only paged tensors can be prefetched!"
    torch.ops.bitsandbytes.paged_prefetch(A, _page_device(A), not to_cpu)


def _synchronize_paged(*tensors) -> None:
    # Managed memory is written asynchronously by the device; the caller expects the
    # final values when this returns.
    if any(getattr(t, "is_paged", False) for t in tensors if t is not None) and torch.cuda.is_available():
        torch.cuda.synchronize()


_ELEMENTWISE_FUNCTIONS = {
    "fill": lambda A, B, value: A.fill_(value),
    "_mul": lambda A, B, value: A.mul_(B),
}


def elementwise_func(func_name, A, B, value, prefetch=True) -> None:
    """fill / _mul of float32 or uint8 tensors, paged or not, in place."""
    function = _ELEMENTWISE_FUNCTIONS.get(func_name)
    if function is None or A.dtype not in (torch.float32, torch.uint8):
        raise NotImplementedError(f"Function not implemented: {func_name}")
    if prefetch:
        for tensor in (A, B):
            if getattr(tensor, "is_paged", False):
                prefetch_tensor(tensor)
    function(A, B, value)
    _synchronize_paged(A, B)


def fill(A, value, device=None, prefetch=True) -> None:
    elementwise_func("fill", A, None, value, prefetch)


def _mul(A, B, device=None) -> None:
    elementwise_func("_mul", A, B, 0)
