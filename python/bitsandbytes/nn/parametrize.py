"""4-bit quantization of any parameter through ``torch.nn.utils.parametrize`` (python_api.md section 3.8).

For tensors that are not the weight of an ``nn.Linear`` (the stacked expert weights
of a mixture-of-experts layer, say): the parameter's storage becomes the packed
4-bit data, and reading the attribute dequantizes it. Transformers loads MoE
checkpoints through ``replace_parameter_4bit_prequantized``. The state dict keeps
upstream's layout: ``<name>`` is the packed data and ``<name>.absmax``,
``<name>.quant_map``, ..., ``<name>.quant_state.bitsandbytes__<type>`` its statistics,
exactly as a ``Linear4bit`` saves its weight.
"""

import functools
import math
from typing import Any, Literal, Optional

import torch
import torch.nn as nn
import torch.nn.utils.parametrize as P

from .. import functional as F


class Bnb4bitParametrization(nn.Module):
    """Turns the packed 4-bit data stored as ``parametrizations.<name>.original`` back into the tensor."""

    def __init__(self, quant_state: F.QuantState):
        super().__init__()
        if not isinstance(quant_state, F.QuantState):
            raise TypeError(f"quant_state must be a QuantState, got {type(quant_state).__name__}")
        self.quant_state = quant_state

    @torch.no_grad()
    def forward(self, quantized_param: torch.Tensor) -> torch.Tensor:
        return F.dequantize_4bit(quantized_param, self.quant_state)


def _existing_parameter(module: nn.Module, param_name: str) -> nn.Parameter:
    if not isinstance(param_name, str):
        raise TypeError(f"param_name must be a str, got {type(param_name).__name__}")
    if not hasattr(module, param_name):
        raise AttributeError(f"Module does not have parameter '{param_name}'")
    parameter = getattr(module, param_name)
    if not isinstance(parameter, nn.Parameter):
        raise TypeError(f"Parameter '{param_name}' is not an instance of nn.Parameter")
    return parameter


def replace_parameter_4bit_prequantized(module: nn.Module, param_name: str, qs_dict: dict[str, Any],
                                        device: torch.device):
    """Attaches the statistics `qs_dict` to a parameter that already holds packed 4-bit data.

    `qs_dict` holds the parameter's state-dict entries other than the data itself
    (``absmax``, ``quant_map``, ..., ``quant_state.bitsandbytes__nf4``; prefixed or not).
    """
    packed = _existing_parameter(module, param_name)
    quant_state = F.QuantState.from_dict(qs_dict, device=device)
    expected_bytes = (math.prod(quant_state.shape) + 1) // 2
    if packed.numel() * packed.element_size() != expected_bytes:
        raise ValueError(
            f"Parameter '{param_name}' holds {packed.numel() * packed.element_size()} bytes, but 4-bit data of "
            f"shape {tuple(quant_state.shape)} (from qs_dict) takes {expected_bytes}"
        )
    P.register_parametrization(module, param_name, Bnb4bitParametrization(quant_state), unsafe=True)
    _register_parametrization_hooks(module, param_name)


def replace_parameter_4bit(module: nn.Module, param_name: str, compress_statistics: bool = False,
                           quant_type: Literal["nf4", "fp4"] = "nf4", blocksize: Optional[int] = None):
    """Quantizes ``module.<param_name>`` to 4 bits in place; reading it afterwards dequantizes.

    Experimental in upstream too. The packed data is a frozen parameter (no
    gradient); blocksize None is quantize_4bit's default (64).
    """
    original = _existing_parameter(module, param_name)
    packed, quant_state = F.quantize_4bit(original.data, blocksize=blocksize,
                                          compress_statistics=compress_statistics, quant_type=quant_type)
    setattr(module, param_name, nn.Parameter(packed, requires_grad=False))
    P.register_parametrization(module, param_name, Bnb4bitParametrization(quant_state), unsafe=True)
    _register_parametrization_hooks(module, param_name)


def _disable_parametrization_cache(module: nn.Module, inputs: tuple[Any, ...], output: Any):
    # The hook also runs when the forward raised before the pre-hook counted (always_call),
    # and a negative count would be truthy: the cache would never be cleared again.
    P._cache_enabled = max(0, P._cache_enabled - 1)
    if not P._cache_enabled:
        P._cache = {}


def _enable_parametrization_cache(module: nn.Module, inputs: tuple[Any, ...]):
    P._cache_enabled += 1


def _register_parametrization_hooks(module: nn.Module, param_name: str):
    # The state-dict post-hook API is public from torch 2.5 on; without it the state dict
    # keeps torch's parametrization keys.
    if hasattr(module, "register_state_dict_post_hook"):
        module.register_state_dict_post_hook(functools.partial(_parametrized_state_dict_post_hook,
                                                               param_name=param_name))
    # Within one forward, every read of the parameter reuses one dequantized tensor.
    # always_call: non-reentrant activation checkpointing ends its recomputation by raising
    # inside the forward; a skipped decrement would leave the cache on (and growing) for good.
    module.register_forward_pre_hook(_enable_parametrization_cache)
    module.register_forward_hook(_disable_parametrization_cache, always_call=True)


def _parametrized_state_dict_post_hook(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                                       local_metadata: Any, *, param_name: str = "weight", **kwargs: Any) -> None:
    """Saves ``<prefix><param_name>`` (packed) and its statistics instead of torch's parametrization keys."""
    original_key = f"{prefix}parametrizations.{param_name}.original"
    if original_key not in state_dict:
        return
    state_dict[f"{prefix}{param_name}"] = state_dict.pop(original_key)
    parametrization = next((p for p in module.parametrizations[param_name] if isinstance(p, Bnb4bitParametrization)),
                           None)
    if parametrization is None:
        raise RuntimeError(f"'{param_name}' is parametrized without a Bnb4bitParametrization")
    for key, value in parametrization.quant_state.as_dict(packed=True).items():
        state_dict[f"{prefix}{param_name}.{key}"] = value
