"""Small helpers shared by the public modules (python_api.md section 6)."""

import json
import logging
import shlex
import subprocess
from typing import Any, Callable, Optional

import torch

logger = logging.getLogger(__name__)

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


def execute_and_return(command_string: str) -> tuple[str, str]:
    """Runs a command (split like a POSIX shell would, but without one) and returns its stripped stdout and stderr."""
    if not isinstance(command_string, str):
        raise TypeError(f"command_string must be a str, got {type(command_string).__name__}")
    completed = subprocess.run(shlex.split(command_string), capture_output=True, check=False)
    return completed.stdout.decode("utf-8").strip(), completed.stderr.decode("utf-8").strip()


def replace_linear(model: torch.nn.Module, linear_replacement: Callable[..., torch.nn.Module],
                   skip_modules=("lm_head",), copy_weights: bool = False,
                   post_processing_function: Optional[str] = None) -> torch.nn.Module:
    """Replaces every ``nn.Linear`` below `model` whose attribute name is not in `skip_modules`.

    The new module is ``linear_replacement(in_features, out_features, has_bias)``
    (wrap other arguments in a lambda). With `copy_weights` it takes over the old
    weight and bias objects. `post_processing_function` names a method of the old
    module that, when present, is called with the old module after the swap.
    Returns `model`, changed in place.
    """
    if not callable(linear_replacement):
        raise TypeError(f"linear_replacement must be callable, got {type(linear_replacement).__name__}")
    for name, module in model.named_children():
        if any(True for _ in module.children()):
            replace_linear(module, linear_replacement, skip_modules, copy_weights, post_processing_function)
        if not isinstance(module, torch.nn.Linear) or name in skip_modules:
            continue
        replacement = linear_replacement(module.in_features, module.out_features, module.bias is not None)
        if copy_weights:
            replacement.weight = module.weight
            replacement.bias = module.bias
        model._modules[name] = replacement
        if post_processing_function is not None:
            post_process = getattr(module, post_processing_function, None)
            if post_process is not None:
                post_process(module)
    return model


def sync_gpu(t: torch.Tensor) -> None:
    """Waits for the device of ``t`` when it is a CUDA or XPU tensor."""
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)
    elif t.device.type == "xpu":
        torch.xpu.synchronize(t.device)


def find_outlier_dims(weight: torch.Tensor, reduction_dim: int = 0, zscore: float = 4.0, topk=None, rdm=False):
    """Indices of the dimensions whose spread (std over `reduction_dim`) stands out.

    A dimension is an outlier when the z-score of its std among all dimensions
    exceeds `zscore`; with `topk`, the `topk` dimensions of largest std; with
    `rdm`, `topk` random dimensions (a baseline for experiments).
    """
    if rdm:
        return torch.randint(0, weight.shape[1], size=(topk,), device=weight.device).long()
    spread = weight.std(reduction_dim)
    if topk is not None:
        return torch.topk(spread.abs(), k=topk, dim=0).indices
    standardized = (spread - spread.mean()) / spread.std()
    return torch.where(standardized > zscore)[0]


def outlier_hook(module: torch.nn.Module, input) -> None:
    """Forward pre-hook of OutlierTracer: records the outlier input dimensions of one linear layer."""
    if not isinstance(module, torch.nn.Linear):
        raise TypeError(f"outlier_hook: expected an nn.Linear, got {type(module).__name__}")
    tracer = OutlierTracer.get_instance()
    hvalue = tracer.get_hvalue(module.weight)
    if hvalue in tracer.hvalue2outlier_idx:
        # Every traced layer has run once: tracing is over.
        for hook in tracer.hooks:
            hook.remove()
        return
    weight_outliers = find_outlier_dims(module.weight)
    tracer.outliers.append(weight_outliers)
    tracer.hvalues.append(hvalue)
    if len(tracer.outliers) > 1:
        if weight_outliers.numel() > 0 and weight_outliers.max() >= module.weight.shape[1]:
            raise RuntimeError("outlier_hook: outlier index beyond the layer's input features")
        tracer.hvalue2outlier_idx[hvalue] = weight_outliers
        return
    # The first layer: its input's hidden dimensions, by spread (z-score 3) and by magnitude (> 6).
    hidden = input[0].reshape(-1, input[0].shape[-1])
    by_spread = find_outlier_dims(hidden, reduction_dim=1, zscore=3)
    by_magnitude = torch.where((hidden.abs() > 6).any(dim=0))[0]
    tracer.hvalue2outlier_idx[hvalue] = torch.cat([by_spread, by_magnitude]).unique()


class OutlierTracer:
    """Singleton that finds the outlier input dimensions of a model's linear layers in one forward."""

    _instance = None

    def __init__(self):
        raise RuntimeError("Call get_instance() instead")

    def initialize(self, model: torch.nn.Module):
        self.hvalues = []
        self.outliers = []
        self.hvalue2outlier_idx = {}
        self.initialized = True
        self.hooks = [m.register_forward_pre_hook(outlier_hook) for m in model.modules()
                      if isinstance(m, torch.nn.Linear)]

    def is_initialized(self) -> bool:
        return getattr(self, "initialized", False)

    def get_hvalue(self, weight: torch.Tensor) -> int:
        return weight.data.untyped_storage().data_ptr()

    def get_outliers(self, weight: torch.Tensor):
        if not self.is_initialized():
            logger.warning("Outlier tracer is not initialized...")
            return None
        return self.hvalue2outlier_idx.get(self.get_hvalue(weight))

    @classmethod
    def get_instance(cls) -> "OutlierTracer":
        if cls._instance is None:
            cls._instance = cls.__new__(cls)
        return cls._instance
