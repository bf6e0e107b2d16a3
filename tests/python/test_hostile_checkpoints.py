"""Hostile checkpoints (issue 14): every key of real 4-bit, 8-bit and optimizer state dicts, damaged in
every way support/hostile_checkpoints.py knows, must fail to load with an error that names the key,
without allocating for sizes it claims and without changing the module or optimizer (nothing
half-loaded). What upstream accepts (valid checkpoints, torch's non-strict rules) still loads.
"""

import copy
import tracemalloc

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import bitsandbytes as bnb
from bitsandbytes.nn import Linear4bit, Linear8bitLt, Params4bit
from support.hostile_checkpoints import (
    linear4bit_corruptions,
    linear8bit_corruptions,
    optimizer_corruptions,
    tensor_bytes,
)

ERRORS = (ValueError, TypeError, RuntimeError, KeyError)
# Far above anything a load of these small layers needs, far below a claimed 2**40 elements.
ALLOCATION_LIMIT_BYTES = 1 << 24


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch op creates while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for tensor in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(tensor, torch.Tensor) and not tensor.is_meta:
                self.largest = max(self.largest, tensor.numel() * tensor.element_size())
        return result


def _measured(load):
    error = None
    with LargestTensor() as tensors:
        tracemalloc.start()
        try:
            load()
        except ERRORS as raised:
            error = raised
        finally:
            _, python_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    return error, max(tensors.largest, python_peak)


def load_bounded(load):
    """Runs `load`; returns its exception (or None) after checking that neither torch nor Python
    allocated anything near an absurd claimed size. A second run tells allocations from the
    modules that a first error message imports (once per process)."""
    error, peak = _measured(load)
    if peak >= ALLOCATION_LIMIT_BYTES:
        error, peak = _measured(load)
    assert peak < ALLOCATION_LIMIT_BYTES, f"the load allocated {peak} bytes"
    return error


def quant_state_fingerprint(state):
    if state is None:
        return None
    return (tensor_bytes(state.absmax), tensor_bytes(state.code), tuple(state.shape or ()), state.dtype,
            state.blocksize, state.quant_type, tensor_bytes(state.offset), quant_state_fingerprint(state.state2))


def module_fingerprint(module):
    """Everything a load may change: parameters (with their 4-bit or int8 statistics) and identities."""
    layer = module[0]
    weight = layer.weight
    parts = {name: tensor_bytes(value) for name, value in module.state_dict(keep_vars=True).items()
             if isinstance(value, torch.Tensor)}
    parts["weight object"] = id(weight)
    parts["weight type"] = type(weight)
    parts["weight data"] = tensor_bytes(weight.data)
    if isinstance(weight, Params4bit):
        parts["quant_state"] = (id(weight.quant_state), quant_state_fingerprint(weight.quant_state))
        parts["module quant_state"] = id(layer.quant_state)
        parts["quant_storage"] = layer.quant_storage
    if isinstance(layer, Linear8bitLt):
        parts["SCB"] = tensor_bytes(weight.SCB)
        parts["state"] = (tensor_bytes(layer.state.SCB), tensor_bytes(layer.state.CB))
    return parts


def check_every_corruption(source, make_target, corruptions, strict):
    """Loads each corruption of source's state dict into a fresh target; returns the failures."""
    state_dict = source.state_dict()
    failures = []
    for corruption in corruptions(state_dict, "0."):
        target = make_target()
        before = module_fingerprint(target)
        damaged = corruption.applied_to(state_dict)
        error = load_bounded(lambda: target.load_state_dict(damaged, strict=strict))
        accepted = corruption.accepted or (corruption.accepted_unless_strict and not strict)
        if accepted:
            if error is not None:
                failures.append(f"{corruption.name}: upstream loads it, got {error!r}")
            continue
        if error is None:
            failures.append(f"{corruption.name}: loaded without error")
        elif corruption.key not in str(error):
            failures.append(f"{corruption.name}: the error does not name {corruption.key}: {error}")
        elif module_fingerprint(target) != before:
            changed = [k for k, v in module_fingerprint(target).items() if before.get(k) != v]
            failures.append(f"{corruption.name}: raised, but changed {changed}")
    return failures


FOURBIT_CONFIGS = [
    pytest.param(quant_type, nested, storage, id=f"{quant_type}-{'nested' if nested else 'plain'}-{str(storage)[6:]}")
    for quant_type, nested, storage in [
        ("nf4", True, torch.uint8), ("nf4", False, torch.uint8), ("fp4", True, torch.uint8),
        ("fp4", False, torch.uint8), ("nf4", True, torch.bfloat16), ("fp4", False, torch.float16),
        ("nf4", False, torch.float32),
    ]
]


def quantized_4bit(quant_type, nested, storage, seed):
    torch.manual_seed(seed)
    layer = Linear4bit(128, 24, quant_type=quant_type, compress_statistics=nested, quant_storage=storage)
    return torch.nn.Sequential(layer).to("cpu")


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
@pytest.mark.parametrize("quant_type,nested,storage", FOURBIT_CONFIGS)
def test_linear4bit_hostile_checkpoints(quant_type, nested, storage, strict):
    source = quantized_4bit(quant_type, nested, storage, seed=0)
    failures = check_every_corruption(source, lambda: quantized_4bit(quant_type, nested, storage, seed=1),
                                      linear4bit_corruptions, strict)
    assert not failures, "\n".join(failures)
    # The undamaged checkpoint loads, into a quantized layer and into a fresh one.
    for target in (quantized_4bit(quant_type, nested, storage, seed=1),
                   torch.nn.Sequential(Linear4bit(128, 24, quant_type="fp4"))):
        target.load_state_dict(source.state_dict(), strict=strict)
        x = torch.randn(3, 128)
        assert torch.equal(target(x), source(x))


def quantized_8bit(seed, threshold=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(Linear8bitLt(128, 24, has_fp16_weights=False, threshold=threshold)).to("cpu")


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_linear8bitlt_hostile_checkpoints(strict):
    source = quantized_8bit(seed=0)
    failures = check_every_corruption(source, lambda: quantized_8bit(seed=1), linear8bit_corruptions, strict)
    assert not failures, "\n".join(failures)
    target = quantized_8bit(seed=1)
    target.load_state_dict(source.state_dict(), strict=strict)
    x = torch.randn(3, 128, dtype=torch.float16)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


def stepped_optimizer(make, seed):
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(64, 80)), torch.nn.Parameter(torch.randn(40)),
              torch.nn.Parameter(torch.randn(8))]  # 8-bit (>= min_8bit_size), 32-bit, and one never stepped
    optimizer = make(params)
    for p in params[:2]:
        p.grad = torch.randn_like(p)
    with pytest.warns(UserWarning) if "Paged" in type(optimizer).__name__ else _no_warning_check():
        optimizer.step()
    return optimizer


class _no_warning_check:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def optimizer_fingerprint(optimizer):
    state = {}
    for index, (p, entries) in enumerate(optimizer.state.items()):
        state[index] = {k: tensor_bytes(v) if isinstance(v, torch.Tensor) else v for k, v in entries.items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return state, groups, id(optimizer.state)


OPTIMIZERS = {
    "Adam8bit": lambda params: bnb.optim.Adam8bit(params, lr=1e-3),
    "AdamW32bit": lambda params: bnb.optim.AdamW(params, lr=1e-3),
    "PagedAdamW8bit": lambda params: bnb.optim.PagedAdamW8bit(params, lr=1e-3),
    "Lion8bit": lambda params: bnb.optim.Lion8bit(params, lr=1e-4),
    "AdEMAMix8bit": lambda params: bnb.optim.AdEMAMix8bit(params, lr=1e-3),
    "LAMB32bit": lambda params: bnb.optim.LAMB32bit(params, lr=1e-3),
}


@pytest.mark.filterwarnings("ignore:Paged optimizers are not supported on CPU")
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_hostile_checkpoints(name):
    make = OPTIMIZERS[name]
    state_dict = stepped_optimizer(make, seed=0).state_dict()
    failures = []
    for corruption in optimizer_corruptions(state_dict):
        target = stepped_optimizer(make, seed=1)
        before = optimizer_fingerprint(target)
        damaged = corruption.applied_to(state_dict)
        error = load_bounded(lambda: target.load_state_dict(damaged))
        if error is None:
            failures.append(f"{corruption.name}: loaded without error")
        elif corruption.key not in str(error):
            failures.append(f"{corruption.name}: the error does not name {corruption.key}: {error}")
        elif optimizer_fingerprint(target) != before:
            failures.append(f"{corruption.name}: raised, but changed the optimizer")
    assert not failures, "\n".join(failures)
    # The undamaged state loads and steps exactly like the optimizer it came from.
    source, target = stepped_optimizer(make, seed=0), stepped_optimizer(make, seed=1)
    target.load_state_dict(copy.deepcopy(source.state_dict()))
    for a, b in zip(source.param_groups[0]["params"], target.param_groups[0]["params"]):
        b.data.copy_(a.data)
        a.grad = b.grad = torch.ones_like(a) if a.grad is not None else None
    source.step()
    target.step()
    for a, b in zip(source.param_groups[0]["params"], target.param_groups[0]["params"]):
        assert torch.equal(a, b)
