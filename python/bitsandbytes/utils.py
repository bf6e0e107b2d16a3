"""Small helpers shared by the public modules (python_api.md section 6)."""

import json
from typing import Any

import torch

LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING = {"row": 0, "col32": 1, "col_turing": 2, "col_ampere": 3}
INVERSE_LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING = {val: name for name, val in LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING.items()}


def pack_dict_to_tensor(source_dict: dict[str, Any]) -> torch.Tensor:
    """The UTF-8 bytes of ``json.dumps(source_dict)`` (default separators) as a 1-D uint8 CPU tensor.

    This is how the non-tensor fields of a QuantState travel in a state dict
    (``weight.quant_state.bitsandbytes__nf4``); the bytes must equal upstream's.
    """
    encoded = json.dumps(source_dict).encode("utf-8")
    return torch.frombuffer(bytearray(encoded), dtype=torch.uint8)


def unpack_tensor_to_dict(tensor_data: torch.Tensor) -> dict[str, Any]:
    """Inverse of :func:`pack_dict_to_tensor`."""
    if tensor_data.dtype != torch.uint8:
        raise TypeError(f"tensor_data must be a uint8 tensor of JSON bytes, got {tensor_data.dtype}")
    encoded = bytes(tensor_data.detach().cpu().reshape(-1).tolist())
    try:
        return json.loads(encoded.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"tensor_data does not hold UTF-8 JSON: {error}") from error


def sync_gpu(t: torch.Tensor) -> None:
    """Waits for the device of ``t`` when it is a CUDA or XPU tensor."""
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)
    elif t.device.type == "xpu":
        torch.xpu.synchronize(t.device)
