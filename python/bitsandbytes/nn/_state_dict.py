"""Loading state dicts into the quantized modules all or nothing.

torch's ``Module._load_from_state_dict`` copies each tensor that fits and reports the
rest, so a checkpoint that fails half-way leaves a layer with new biases next to its
old weight (or new codes next to old statistics). The quantized layers first find
every problem torch would report for their own keys, without touching anything, and
load only a checkpoint that has none; their own checks (statistics, layouts) raise
before anything is loaded.
"""

import torch
from torch import nn


def record_load_problems(module: nn.Module, state_dict: dict, prefix: str, strict: bool, missing_keys: list,
                         unexpected_keys: list, error_msgs: list, rebuilt: tuple = ()) -> bool:
    """True when loading `state_dict` into `module`'s own entries would fail; then what torch would
    report is appended to the lists load_state_dict raises from.

    `rebuilt` names the parameters the caller builds itself from the checkpoint (and checks).
    """
    local = {**module._parameters, **{name: buffer for name, buffer in module._buffers.items()
                                      if name not in module._non_persistent_buffers_set}}
    missing, errors = [], []
    for name, current in local.items():
        key = prefix + name
        if current is None or name in rebuilt:
            continue
        if key not in state_dict:
            missing.append(key)
            continue
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            errors.append(f'While copying the parameter named "{key}", expected torch.Tensor or Tensor-like '
                          f"object from checkpoint but received {type(value)}")
        elif value.shape != current.shape:
            errors.append(f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                          f"the shape in current model is {current.shape}.")
        elif value.is_meta and not current.is_meta:
            errors.append(f"{key}: the checkpoint's tensor is on the meta device and holds no data to copy")
    unexpected = []
    if strict:
        known = set(local) | set(module._modules) | {"_extra_state"}
        unexpected = [key for key in state_dict if key.startswith(prefix)
                      and key[len(prefix):].split(".", 1)[0] not in known]
    if not errors and not (strict and (missing or unexpected)):
        return False
    missing_keys.extend(missing)
    unexpected_keys.extend(unexpected)
    error_msgs.extend(errors)
    return True
