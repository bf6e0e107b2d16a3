"""The base classes of the bitsandbytes optimizers (python_api.md 5.1-5.3, formats.md 8).

An optimizer keeps per parameter ``step`` and one or two states, 32-bit (float32, p's
shape) or 8-bit (uint8 codes with a float32 absmax per 256-element block and the
dynamic maps ``qmap1``/``qmap2``). ``step()`` feeds them to the optimizer ops. Within
a parameter group, tensors that share dtype, state bits, step and configuration go
to the ops in one multi-tensor call; clipped 32-bit updates (LAMB, LARS), batches of
one and any ``update_step`` a subclass overrides keep the single-tensor path.

The batches of a group are kept between steps (``_GroupPlan``): a step whose group,
gradients present, state dict and overrides are those of the previous one only reads
the gradients and the group's hyper-parameters, then calls the ops, so that its host
time does not grow with per-parameter bookkeeping. Any other step rebuilds the plan.

A parameter sharded by FSDP2 (a DTensor) is updated through the shard this rank holds:
its states have the shard's shape and the ops see the local parameter and gradient. The
updates are elementwise, so the shards together give the update of the whole tensor;
update-norm clipping (LAMB, LARS, max_unorm) needs the whole tensor's norm and is refused.
"""

import dataclasses
import math
import operator
import warnings
from collections import abc as container_abcs
from collections import defaultdict
from copy import deepcopy
from itertools import chain, repeat
from typing import Callable, Optional

import torch

import bitsandbytes.functional as F
from bitsandbytes._formats import CODE_SIZE
from bitsandbytes._singleton import singleton_instance
from bitsandbytes.utils import sync_gpu

BLOCKSIZE = 256
# States of parameters with at least this many elements are paged (formats.md 8.4).
MIN_PAGED_NUMEL = 1e5


class MockArgs:
    """The constructor options as attributes (Accelerate reads ``optimizer.args.optim_bits``)."""

    def __init__(self, initial_data):
        for key in initial_data:
            setattr(self, key, initial_data[key])


class GlobalOptimManager:
    """Per-parameter overrides of the optimizer configuration (a singleton).

    Overrides are keyed by parameter identity (``pid2config``) or by position in the
    parameter groups (``index2config``), so they can be registered before or after the
    optimizer is built; module overrides are resolved at the optimizer's first step.
    """

    _instance = None

    def __init__(self):
        raise RuntimeError("Call get_instance() instead")

    def initialize(self):
        # Bumped by every change below, so that optimizers notice new overrides cheaply.
        self._version = 0
        self.pid2config = {}
        self.index2config = {}
        self.optimizer = None
        self.uses_config_override = False
        self.module_weight_config_triple = []

    get_instance = classmethod(singleton_instance)

    def register_parameters(self, params):
        param_groups = list(params)
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group_index, group in enumerate(param_groups):
            for param_index, p in enumerate(group["params"]):
                if id(p) in self.pid2config:
                    self.index2config[(group_index, param_index)] = self.pid2config[id(p)]
        self._version += 1

    def override_config(self, parameters, key=None, value=None, key_value_dict=None):
        """Overrides hyper-parameters (``lr``, ``betas``, ``optim_bits``, ...) of the given parameters.

        Either ``key`` and ``value`` or a ``key_value_dict`` of several.
        """
        self.uses_config_override = True
        self._version += 1
        if isinstance(parameters, torch.Tensor):
            parameters = [parameters]
        if key is not None and value is not None:
            assert key_value_dict is None
            key_value_dict = {key: value}
        if key_value_dict is not None:
            for p in parameters:
                if id(p) in self.pid2config:
                    self.pid2config[id(p)].update(key_value_dict)
                else:
                    self.pid2config[id(p)] = key_value_dict

    def register_module_override(self, module, param_name, config):
        self.module_weight_config_triple.append((module, param_name, config))
        self._version += 1


@dataclasses.dataclass(frozen=True, slots=True)
class _HyperParameters:
    """The scalars of one update, shared by every parameter of a batch."""

    beta1: float
    beta2: float
    beta3: float
    alpha: float
    eps: float
    weight_decay: float
    step: int
    lr: float
    max_unorm: float
    skip_zeros: bool


@dataclasses.dataclass(slots=True)
class _Update:
    """What one parameter's update feeds to the single-tensor ops."""

    g: torch.Tensor
    p: torch.Tensor
    state1: torch.Tensor
    state2: Optional[torch.Tensor]
    qmap1: Optional[torch.Tensor]
    qmap2: Optional[torch.Tensor]
    absmax1: Optional[torch.Tensor]
    absmax2: Optional[torch.Tensor]
    unorm_vec: Optional[torch.Tensor]
    hp: _HyperParameters


@dataclasses.dataclass(slots=True)
class _Batch:
    """Parameters of one group that share state kind, step and configuration, with
    the lists the update ops take. One multi-tensor call per step, or one
    single-tensor call per parameter where ``per_tensor`` (a batch of one, or
    update-norm clipping, which only the single-tensor 32-bit op has)."""

    positions: list  # of the parameters in the group's list, in order
    params: list
    states: list  # the parameters' state dicts, whose "step" (equal in a batch) it advances
    state1: list
    state2: list  # empty for one-state optimizers
    absmax1: list  # empty for 32-bit states
    absmax2: list
    unorm_vec: list
    qmap1: Optional[torch.Tensor]
    qmap2: Optional[torch.Tensor]
    override_by_index: Optional[dict]  # the manager's overrides of these parameters
    override_by_id: Optional[dict]
    per_tensor: bool
    pick_grads: Optional[Callable]  # the batch's gradients from the group's; None: all of them


@dataclasses.dataclass(slots=True)
class _GroupPlan:
    """One parameter group's step, kept between steps (python_api.md 5.2 describes the
    step it stands for). Building it costs what a step used to cost per parameter; a
    step that finds it valid pays for reading the gradients and one op call per batch.
    It holds while the group's list is the same object and size, exactly these
    gradients are present and all are dense and contiguous; what it depends on beyond
    the group (the state dict, the overrides, the number of groups, max_unorm) is in
    the optimizer's plan signature. A parameter changed through ``.data`` (dtype,
    device, size) fails the op's own checks of every tensor, which run before any
    update: that batch then takes the single-tensor ops and the plan is rebuilt."""

    group: dict
    params: list  # the group's list object
    count: int
    missing: Optional[list]  # per parameter whether its grad is None; None: all present
    batches: list
    paged: list  # parameters whose states are prefetched before the update
    sharded: bool  # some parameters are DTensors: the ops take their local shards


_grad_of = operator.attrgetter("grad")
_is_contiguous = torch.Tensor.is_contiguous


def _local_shard(tensor: torch.Tensor) -> torch.Tensor:
    """The part of a DTensor (FSDP2's sharded parameters and their gradients) that this rank
    holds; any other tensor itself. (`to_local()` is an autograd function: too slow per step.)"""
    return getattr(tensor, "_local_tensor", tensor)


def _is_sharded(tensor: torch.Tensor) -> bool:
    return _local_shard(tensor) is not tensor


def _active_grads_usable(grads) -> bool:
    """Whether the gradients can go to the ops as they are: dense and contiguous (the
    plan's build makes them so, or raises for sparse ones)."""
    try:
        return all(map(_is_contiguous, grads))
    except RuntimeError:  # sparse layouts have no strides
        return False


class Optimizer8bit(torch.optim.Optimizer):
    _FSDP_WRAPPED_QUANT_STATE_KEY = "__bnb_optimizer_quant_state__"

    def __init__(self, params, defaults, optim_bits=32, is_paged=False):
        """Base class: state bookkeeping, overrides, paging and the (de)serialisation of the states.

        Arguments:
            params: the parameters or parameter groups to optimize.
            defaults (`dict`): the group defaults.
            optim_bits (`int`, defaults to 32): bits of the optimizer states (32 or 8).
            is_paged (`bool`, defaults to `False`): allocate large states in managed memory.
        """
        super().__init__(params, defaults)
        self.initialized = False
        self.name2qmap = {}
        self.is_paged = is_paged
        self.page_mng = F.GlobalPageManager.get_instance()
        self.mng = GlobalOptimManager.get_instance()
        # Tensors load_state_dict must not cast to the parameter dtype.
        self.non_castable_tensor_keys = {
            "qmap1", "qmap2", "max1", "max2", "new_max1", "new_max2", "state1", "state2", "gnorm_vec", "absmax1",
            "absmax2", "unorm_vec",
        }
        if optim_bits == 8:
            self.fill_qmap()
        self._invalidate_plans()

    def fill_qmap(self):
        self.name2qmap["dynamic"] = F.create_dynamic_map(signed=True)
        self.name2qmap["udynamic"] = F.create_dynamic_map(signed=False)

    def state_dict(self):
        """torch's state dict, with each parameter's quantization tensors nested under
        ``__bnb_optimizer_quant_state__`` (FSDP gathers top-level tensors shaped like the
        parameter and would fail on them)."""
        state_dict = super().state_dict()
        state_dict["state"] = {
            k: dict(v) if isinstance(v, dict) else v for k, v in state_dict["state"].items()
        }
        for param_state in state_dict["state"].values():
            if not isinstance(param_state, dict):
                continue
            quant_state = {key: param_state.pop(key) for key in list(param_state)
                           if key in self.non_castable_tensor_keys}
            if quant_state:
                param_state[self._FSDP_WRAPPED_QUANT_STATE_KEY] = quant_state
        return state_dict

    def __setstate__(self, state):
        super().__setstate__(state)
        self._invalidate_plans()

    def load_state_dict(self, state_dict, move_to_device=True):
        """Loads a state dict of ``state_dict()`` (or of upstream bitsandbytes).

        Arguments:
            state_dict (`dict`): the optimizer state.
            move_to_device (`bool`, defaults to `True`): move the quantization tensors to
                their parameter's device.
        """
        state_dict = deepcopy(state_dict)
        for param_state in state_dict["state"].values():
            if isinstance(param_state, dict) and self._FSDP_WRAPPED_QUANT_STATE_KEY in param_state:
                param_state.update(param_state.pop(self._FSDP_WRAPPED_QUANT_STATE_KEY))

        groups = self.param_groups
        saved_groups = state_dict["param_groups"]
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
            )
        saved_ids = chain.from_iterable(g["params"] for g in saved_groups)
        id_map = dict(zip(saved_ids, chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value):
            if isinstance(value, torch.Tensor):
                # Floating states follow the parameter dtype; uint8 codes never change.
                if param.is_floating_point() and value.dtype != torch.uint8:
                    value = value.to(param.dtype)
                return value
            if isinstance(value, dict):
                for k, v in value.items():
                    if k in self.non_castable_tensor_keys:
                        if move_to_device:
                            value[k] = v.to(param.device)
                    else:
                        value[k] = cast(param, v)
                return value
            if isinstance(value, container_abcs.Iterable) and not isinstance(value, str):
                return type(value)(cast(param, v) for v in value)
            return value

        for gindex, (group, saved) in enumerate(zip(groups, saved_groups)):
            self._check_loaded_group(gindex, group, saved)
        for k, param in id_map.items():
            if k in state_dict["state"]:
                self._check_loaded_state(k, param, state_dict["state"][k])

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                state[id_map[k]] = cast(id_map[k], v)
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})

    def _state1_shape(self, p) -> tuple:
        """The shape of a parameter's first state (AdEMAMix stacks two)."""
        return tuple(p.shape)

    def _check_loaded_group(self, gindex: int, group: dict, saved: dict) -> None:
        """A saved group must hold every hyper-parameter this optimizer reads, each valid."""
        for name in _READ_HYPERPARAMETERS.intersection(self.defaults):
            where = f"loaded state dict: param_groups[{gindex}][{name!r}]"
            if name not in saved:
                raise KeyError(f"{where} is missing")
            value = saved[name]
            if name == "betas":
                if not (isinstance(value, (list, tuple)) and len(value) == len(group["betas"])
                        and all(_is_real(b) and 0.0 <= b < 1.0 for b in value)):
                    raise ValueError(f"{where}: expected {len(group['betas'])} numbers in [0, 1), got {value!r}")
            elif name in ("lr", "eps", "weight_decay"):
                if not (_is_real(value) and 0.0 <= value < math.inf):
                    raise ValueError(f"{where}: expected a finite number >= 0, got {value!r}")
            elif name == "alpha":
                if not (_is_real(value) and abs(value) < math.inf):
                    raise ValueError(f"{where}: expected a finite number, got {value!r}")
            elif name in ("t_alpha", "t_beta3"):
                if not (value is None or (_is_real(value) and value >= 0)):
                    raise ValueError(f"{where}: expected None or a number of steps >= 0, got {value!r}")

    def _check_loaded_state(self, key, p, state) -> None:
        """A saved parameter state must be one that update_step can read for `p`: the 32-bit or the
        8-bit layout of this optimizer (either loads, as upstream's do), whole, on a device with data.
        Raises before anything is loaded, naming the entry."""
        def fail(name, problem):
            return ValueError(f"loaded state dict: state[{key!r}][{name!r}] (parameter of shape "
                              f"{tuple(p.shape)}): {problem}")

        if not isinstance(state, dict):
            raise ValueError(f"loaded state dict: state[{key!r}]: expected a dict, got {type(state).__name__}")
        if not state:
            return
        for name in ("step", "state1"):
            if name not in state:
                raise KeyError(f"loaded state dict: state[{key!r}][{name!r}] is missing")
        step = state["step"]
        if isinstance(step, torch.Tensor) and step.numel() == 1 and not step.is_meta:
            step = step.item()
        if not (_is_real(step) and step >= 0 and float(step).is_integer()):
            raise fail("step", f"expected a step count >= 0, got {state['step']!r}")

        two_state = self._has_second_state()
        state1 = state["state1"]
        eight_bit = isinstance(state1, torch.Tensor) and state1.dtype == torch.uint8
        blocks = -(p.numel() // -BLOCKSIZE)
        state1_shape = self._state1_shape(p)
        stacked = state1_shape[:1] if len(state1_shape) > p.dim() else ()
        expected = {"state1": (state1_shape, (torch.uint8,) if eight_bit else (torch.float32,))}
        if two_state:
            expected["state2"] = (tuple(p.shape), expected["state1"][1])
        if eight_bit:
            expected["qmap1"] = ((CODE_SIZE,), (torch.float32,))
            expected["absmax1"] = ((*stacked, blocks), (torch.float32,))
            if two_state:
                expected["qmap2"] = ((CODE_SIZE,), (torch.float32,))
                expected["absmax2"] = ((blocks,), (torch.float32,))
        if "unorm_vec" in state or (not eight_bit and self.args.max_unorm > 0.0):
            expected["unorm_vec"] = ((1,), (torch.float32,))
        layout = "8-bit" if eight_bit else "32-bit"
        for name in ("state2", "qmap1", "qmap2", "absmax1", "absmax2"):
            if name in state and name not in expected:
                raise fail(name, f"does not belong to a {layout} state of {type(self).__name__}, which "
                                 f"state[{key!r}]['state1'] of {getattr(state1, 'dtype', type(state1).__name__)} is")
        for name, (shape, dtypes) in expected.items():
            if name not in state:
                raise KeyError(f"loaded state dict: state[{key!r}][{name!r}] is missing from a {layout} state")
            value = state[name]
            if not isinstance(value, torch.Tensor):
                raise fail(name, f"expected a tensor, got {type(value).__name__}")
            if value.dtype not in dtypes:
                raise fail(name, f"expected dtype {dtypes[0]} in a {layout} state, got {value.dtype}")
            if tuple(value.shape) != tuple(shape):
                raise fail(name, f"expected shape {tuple(shape)}, got {tuple(value.shape)}")
            if value.is_meta and not p.is_meta:
                raise fail(name, "is on the meta device (it holds no data)")

    def to_gpu(self):
        """Moves each non-paged state tensor to its parameter's device."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.device.type == "cpu" or p not in self.state:
                    continue
                for k, v in self.state[p].items():
                    if isinstance(v, torch.Tensor) and not getattr(v, "is_paged", False):
                        self.state[p][k] = v.to(p.device)

    def check_overrides(self):
        """Resolves the module overrides (register_module_override) to this optimizer's parameters."""
        for module, attr, config in self.mng.module_weight_config_triple:
            pmodule = getattr(module, attr)
            assert pmodule is not None
            assert isinstance(pmodule, torch.Tensor)
            position = next(
                ((gindex, pindex) for gindex, group in enumerate(self.param_groups)
                 for pindex, p in enumerate(group["params"]) if p is pmodule),
                None,
            )
            if position is not None:
                self.mng.pid2config[id(pmodule)] = config
                self.mng.index2config[position] = config
                self.mng._version += 1  # may replace an entry, which the sizes would not show

    def _has_batchable_update_step(self) -> bool:
        # A subclass's own update_step must run as written, one parameter at a time.
        return type(self).update_step in _BATCHABLE_UPDATE_STEPS

    @torch.no_grad()
    def step(self, closure=None):
        """Performs one optimization step.

        Arguments:
            closure (`Callable`, *optional*): re-evaluates the model and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self.initialized:
            self.check_overrides()
            self.to_gpu()  # needed for fairseq pure fp16 training
            self.initialized = True

        if not self._has_batchable_update_step():
            self._step_each_parameter()
            return loss
        if not self._plans_may_hold():
            self._plans = [None] * len(self.param_groups)
        last_paged = None
        for gindex, group in enumerate(self.param_groups):
            grads = list(map(_grad_of, group["params"]))
            plan = self._plans[gindex]
            if plan is None or not self._plan_holds(plan, group, grads):
                plan = self._plans[gindex] = self._build_plan(gindex, group, grads)
            if not self._run_plan(plan, group, grads):
                self._plans[gindex] = None
            last_paged = plan.paged[-1] if plan.paged else last_paged
        # Taken after the step: building a plan creates states.
        self._plan_signature = self._signature()
        if last_paged is not None:
            # Paged states are written asynchronously (the host may evict them once the
            # step returns): the step ends when they are final. Without paged states
            # (e.g. every LoRA tensor, below MIN_PAGED_NUMEL) there is nothing to wait
            # for, and the step stays free of host syncs (CUDA-graph capturable).
            sync_gpu(last_paged)
        return loss

    def _step_each_parameter(self) -> None:
        """The step of a subclass with its own update_step: update_step per parameter."""
        last = None
        for gindex, group in enumerate(self.param_groups):
            for pindex, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                self._check_dense_gradient(p.grad, gindex, pindex)
                last = p
                state = self.state[p]
                if len(state) == 0:
                    self.init_state(group, p, gindex, pindex)
                self.prefetch_state(p)
                self.update_step(group, p, gindex, pindex)
                sync_gpu(p)
        if self.is_paged and last is not None:
            sync_gpu(last)

    def _check_dense_gradient(self, grad, gindex: int, pindex: int) -> None:
        if grad.is_sparse:
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients (parameter {pindex} of "
                f"group {gindex} has one); use a dense gradient, e.g. nn.Embedding(sparse=False)"
            )

    # ---- step plans ----------------------------------------------------------------------------

    def _invalidate_plans(self) -> None:
        self._plans = []  # per parameter group its _GroupPlan, or None where it must be built
        self._plan_signature = None

    def _signature(self) -> tuple:
        """What every group's plan depends on beyond its group: the state dict (replaced by
        load_state_dict) and its size (states created or dropped), the number of groups,
        the manager's overrides and the constructor option that decides clipping. Objects
        compared by identity, counts by value."""
        mng = self.mng
        objects = (self.state, mng.pid2config, mng.index2config)
        counts = (len(self.state), len(self.param_groups), mng._version, len(mng.pid2config), len(mng.index2config),
                  self.args.max_unorm)
        return objects, counts

    def _plans_may_hold(self) -> bool:
        if self._plan_signature is None:
            return False
        objects, counts = self._signature()
        return all(map(operator.is_, objects, self._plan_signature[0])) and counts == self._plan_signature[1]

    def _plan_holds(self, plan: _GroupPlan, group: dict, grads: list) -> bool:
        """Whether this step's group and gradients are those the plan was built for."""
        params = group["params"]
        if plan.group is not group or plan.params is not params or len(params) != plan.count:
            return False
        if plan.missing is None:
            if any(map(operator.is_, grads, repeat(None))):
                return False
            return _active_grads_usable(grads)
        if list(map(operator.is_, grads, repeat(None))) != plan.missing:
            return False
        return _active_grads_usable([g for g in grads if g is not None])

    def _build_plan(self, gindex: int, group: dict, grads: list) -> _GroupPlan:
        """Creates missing states, makes parameters and gradients contiguous (updating
        grads) and groups the parameters with a gradient into batches."""
        params = group["params"]
        group_config = self._group_config(group)
        two_state = self._has_second_state()
        batches = {}
        paged = []
        for pindex, p in enumerate(params):
            if grads[pindex] is None:
                continue
            self._check_dense_gradient(grads[pindex], gindex, pindex)
            state = self.state[p]
            if len(state) == 0:
                self.init_state(group, p, gindex, pindex)
            if self.is_paged and getattr(state["state1"], "is_paged", False):
                paged.append(p)
            # Reassigning .data costs microseconds per parameter: only when needed.
            if not p.is_contiguous():
                p.data = p.data.contiguous()
            if not p.grad.is_contiguous():
                p.grad = p.grad.contiguous()
            grads[pindex] = p.grad
            by_index = self.mng.index2config.get((gindex, pindex))
            by_id = self.mng.pid2config.get(id(p))
            config = self._with_overrides(group_config, gindex, pindex, p)
            state1 = state["state1"]
            eight_bit = state1.dtype == torch.uint8
            qmap1 = state.get("qmap1") if eight_bit else None
            qmap2 = state.get("qmap2") if eight_bit and two_state else None
            # The 8-bit ops have no update-norm clipping.
            clipped = not eight_bit and config["max_unorm"] > 0.0
            key = (p.dtype, p.device, state1.dtype, id(qmap1), id(qmap2), state["step"], clipped, id(by_index),
                   id(by_id))
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = _Batch(
                    positions=[], params=[], states=[], state1=[], state2=[], absmax1=[], absmax2=[], unorm_vec=[],
                    qmap1=qmap1, qmap2=qmap2, override_by_index=by_index, override_by_id=by_id, per_tensor=clipped,
                    pick_grads=None,
                )
            batch.positions.append(pindex)
            batch.params.append(p)
            batch.states.append(state)
            batch.state1.append(state1)
            if two_state:
                batch.state2.append(state["state2"])
            if eight_bit:
                batch.absmax1.append(state["absmax1"])
                if two_state:
                    batch.absmax2.append(state["absmax2"])
            batch.unorm_vec.append(state.get("unorm_vec"))
        for batch in batches.values():
            batch.per_tensor = batch.per_tensor or len(batch.params) == 1
            if not batch.per_tensor and batch.positions != list(range(len(params))):
                batch.pick_grads = operator.itemgetter(*batch.positions)
        missing = [g is None for g in grads]
        return _GroupPlan(
            group=group, params=params, count=len(params), missing=missing if any(missing) else None,
            batches=list(batches.values()), paged=paged, sharded=any(map(_is_sharded, params)),
        )

    def _run_plan(self, plan: _GroupPlan, group: dict, grads: list) -> bool:
        """Runs the group's step; False where the plan turned out stale (the step is done all the same)."""
        held = True
        for p in plan.paged:
            self.prefetch_state(p)
        group_config = self._group_config(group)
        if plan.sharded:
            grads = [None if g is None else _local_shard(g) for g in grads]
        for batch in plan.batches:
            params = list(map(_local_shard, batch.params)) if plan.sharded else batch.params
            config = group_config
            if batch.override_by_index is not None or batch.override_by_id is not None:
                config = {**group_config, **(batch.override_by_index or {}), **(batch.override_by_id or {})}
            step = batch.states[0]["step"] + 1
            for state in batch.states:
                state["step"] = step
            hp = self._hyperparameters(config, step)
            if batch.per_tensor:
                self._run_each(batch, params, hp, [grads[i] for i in batch.positions])
                continue
            batch_grads = grads if batch.pick_grads is None else batch.pick_grads(grads)
            try:
                F.optimizer_update_multi_tensor(
                    self.optimizer_name, batch_grads, params, batch.state1, batch.state2, batch.absmax1,
                    batch.absmax2, batch.qmap1, batch.qmap2, hp.beta1, hp.beta2, hp.beta3, hp.alpha, hp.eps,
                    hp.weight_decay, hp.step, hp.lr, 1.0, hp.skip_zeros,
                )
            except ValueError:
                # The op checks every tensor before it updates any. A parameter changed
                # behind the plan (its dtype, device, size or layout through .data) fails them:
                # the single-tensor ops take this batch, and the next step rebuilds the plan.
                held = False
                for param in batch.params:
                    if not param.is_contiguous():
                        param.data = param.data.contiguous()
                params = list(map(_local_shard, batch.params)) if plan.sharded else batch.params
                self._run_each(batch, params, hp, list(batch_grads))
        return held

    def _run_each(self, batch: _Batch, params: list, hp: _HyperParameters, grads: list) -> None:
        for i, g in enumerate(grads):
            self._run_update(_Update(
                g=g, p=params[i], state1=batch.state1[i], state2=batch.state2[i] if batch.state2 else None,
                qmap1=batch.qmap1, qmap2=batch.qmap2, absmax1=batch.absmax1[i] if batch.absmax1 else None,
                absmax2=batch.absmax2[i] if batch.absmax2 else None, unorm_vec=batch.unorm_vec[i], hp=hp,
            ))

    def _run_update(self, u: _Update) -> None:
        hp = u.hp
        if u.state1.dtype == torch.uint8:
            F.optimizer_update_8bit_blockwise(
                self.optimizer_name, u.g, u.p, u.state1, u.state2, hp.beta1, hp.beta2, hp.beta3, hp.alpha, hp.eps,
                hp.step, hp.lr, u.qmap1, u.qmap2, u.absmax1, u.absmax2, hp.weight_decay, gnorm_scale=1.0,
                skip_zeros=hp.skip_zeros,
            )
        else:
            F.optimizer_update_32bit(
                self.optimizer_name, u.g, u.p, u.state1, hp.beta1, hp.eps, hp.step, hp.lr, u.state2, hp.beta2,
                hp.beta3, hp.alpha, hp.weight_decay, 1.0, u.unorm_vec if hp.max_unorm > 0.0 else None,
                max_unorm=hp.max_unorm, skip_zeros=hp.skip_zeros,
            )

    # ---- configuration ------------------------------------------------------------------------

    def _group_config(self, group) -> dict:
        """The group's hyper-parameters and the constructor options (read once per step)."""
        return {
            "betas": group["betas"],
            "eps": group["eps"],
            "weight_decay": group["weight_decay"],
            "lr": group["lr"],
            "alpha": group.get("alpha", 0.0),
            "t_alpha": group.get("t_alpha", None),
            "t_beta3": group.get("t_beta3", None),
            "optim_bits": self.args.optim_bits,
            "min_8bit_size": self.args.min_8bit_size,
            "max_unorm": self.args.max_unorm,
            "skip_zeros": self.args.skip_zeros,
        }

    def _with_overrides(self, config: dict, gindex: int, pindex: int, p) -> dict:
        """config updated by the manager's overrides of this parameter (a copy only when there are any)."""
        by_index = self.mng.index2config.get((gindex, pindex))
        by_id = self.mng.pid2config.get(id(p))
        if by_index is None and by_id is None:
            return config
        config = dict(config)
        config.update(by_index or {})
        config.update(by_id or {})
        return config

    def get_config(self, gindex, pindex, group):
        """The group's hyper-parameters and the constructor options, then the overrides."""
        p = self.param_groups[gindex]["params"][pindex]
        return self._with_overrides(self._group_config(group), gindex, pindex, p)

    def init_state(self, group, p, gindex, pindex):
        raise NotImplementedError("init_state method needs to be overridden")

    def _scheduled_beta3_alpha(self, config, step: int) -> tuple[float, float]:
        """beta3 and alpha of this step (AdEMAMix schedules them)."""
        betas = config["betas"]
        return (betas[2] if len(betas) >= 3 else 0.0), config.get("alpha", 0.0)

    def _has_second_state(self) -> bool:
        return True

    def _hyperparameters(self, config: dict, step: int) -> _HyperParameters:
        beta3, alpha = self._scheduled_beta3_alpha(config, step)
        if not self._has_second_state():
            beta3, alpha = 0.0, 0.0
        return _HyperParameters(
            beta1=config["betas"][0], beta2=config["betas"][1], beta3=beta3, alpha=alpha, eps=config["eps"],
            weight_decay=config["weight_decay"], step=step, lr=config["lr"], max_unorm=config["max_unorm"],
            skip_zeros=config["skip_zeros"],
        )

    def _prepare_update(self, group, p, gindex, pindex) -> _Update:
        """Advances the parameter's step and collects what its single-tensor update needs."""
        if not p.is_contiguous():
            p.data = p.data.contiguous()
        if not p.grad.is_contiguous():
            p.grad = p.grad.contiguous()
        state = self.state[p]
        config = self.get_config(gindex, pindex, group)
        state["step"] += 1
        two_state = self._has_second_state()
        eight_bit = state["state1"].dtype == torch.uint8
        return _Update(
            g=_local_shard(p.grad),
            p=_local_shard(p),
            state1=state["state1"],
            state2=state["state2"] if two_state else None,
            qmap1=state.get("qmap1") if eight_bit else None,
            qmap2=state.get("qmap2") if eight_bit and two_state else None,
            absmax1=state.get("absmax1") if eight_bit else None,
            absmax2=state.get("absmax2") if eight_bit and two_state else None,
            unorm_vec=state.get("unorm_vec"),
            hp=self._hyperparameters(config, state["step"]),
        )

    def update_step(self, group, p, gindex, pindex):
        """One parameter's update through the single-tensor ops."""
        self._run_update(self._prepare_update(group, p, gindex, pindex))

    def get_state_buffer(self, p, dtype=torch.float32):
        return self._state_buffer(p, tuple(p.shape), dtype)

    def _state_buffer(self, p, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A zeroed state of shape: paged for large parameters of a paged optimizer on an accelerator."""
        if p.device.type == "cpu":
            if self.is_paged and not getattr(self, "_cpu_paged_warned", False):
                warnings.warn(
                    "Paged optimizers are not supported on CPU. Falling back to non-paged optimizer behavior.",
                    stacklevel=3,
                )
                self._cpu_paged_warned = True
            return torch.zeros(shape, dtype=dtype, device=p.device)
        if not self.is_paged or p.numel() < MIN_PAGED_NUMEL:
            return torch.zeros(shape, dtype=dtype, device=p.device)
        buffer = F.get_paged(*shape, dtype=dtype, device=p.device)
        F.fill(buffer, 0)
        self.page_mng.paged_tensors.append(buffer)
        return buffer

    def prefetch_state(self, p):
        if not self.is_paged:
            return
        state = self.state[p]
        if getattr(state["state1"], "is_paged", False):
            F.prefetch_tensor(state["state1"])
            if "state2" in state:
                F.prefetch_tensor(state["state2"])

    def _init_quantized_state(self, p, state, state1_shape: tuple, two_state: bool) -> None:
        """uint8 codes, zero absmax per block (one row per stacked state) and the shared maps."""
        if "dynamic" not in self.name2qmap:
            self.fill_qmap()
        self.name2qmap["dynamic"] = self.name2qmap["dynamic"].to(p.device)
        self.name2qmap["udynamic"] = self.name2qmap["udynamic"].to(p.device)
        blocks = -(p.numel() // -BLOCKSIZE)
        stacked = state1_shape[:1] if len(state1_shape) > p.dim() else ()
        state["state1"] = self._state_buffer(p, state1_shape, torch.uint8)
        state["qmap1"] = self.name2qmap["dynamic"]
        state["absmax1"] = torch.zeros((*stacked, blocks), dtype=torch.float32, device=p.device)
        if two_state:
            state["state2"] = self._state_buffer(p, tuple(p.shape), torch.uint8)
            state["qmap2"] = self.name2qmap["udynamic"]
            state["absmax2"] = torch.zeros((blocks,), dtype=torch.float32, device=p.device)

    def _init_state(self, group, p, gindex, pindex, state1_shape: tuple) -> None:
        config = self.get_config(gindex, pindex, group)
        if config["optim_bits"] not in (8, 32):
            raise NotImplementedError(f"Amount of optimizer bits not supported: {config['optim_bits']}")
        # Decided on the whole parameter: a shard keeps the state bits it has without FSDP.
        eight_bit = config["optim_bits"] == 8 and p.numel() >= config["min_8bit_size"]
        state = self.state[p]
        local = _local_shard(p)
        if local is not p:
            if config["max_unorm"] > 0.0:
                raise NotImplementedError(
                    f"{type(self).__name__}: update-norm clipping (max_unorm={config['max_unorm']}) needs the norm of "
                    f"the whole tensor; parameter {pindex} of group {gindex} is sharded (a DTensor, e.g. FSDP2)"
                )
            # The subclass's state shape ends with the parameter's shape: the states hold the shard.
            state1_shape = (*state1_shape[:len(state1_shape) - p.dim()], *local.shape)
            p = local
        two_state = self._has_second_state()
        state["step"] = 0
        if eight_bit:
            self._init_quantized_state(p, state, state1_shape, two_state)
        else:
            state["state1"] = self._state_buffer(p, state1_shape, torch.float32)
            if two_state:
                state["state2"] = self._state_buffer(p, tuple(p.shape), torch.float32)
        if config["max_unorm"] > 0.0:
            state["unorm_vec"] = torch.zeros((1,), device=p.device)


# The group entries update_step reads (a group may hold others, e.g. torch's own flags).
_READ_HYPERPARAMETERS = frozenset({"lr", "betas", "eps", "weight_decay", "alpha", "t_alpha", "t_beta3"})


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_hyperparameters(lr, eps, betas, weight_decay) -> None:
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def check_adam_8bit_options(name: str, amsgrad: bool, optim_bits: int) -> None:
    """The 8-bit Adam-type classes fix their bits; optim_bits is kept only for compatibility."""
    if amsgrad:
        raise ValueError(f"{name} does not support amsgrad=True")
    if optim_bits != 32:
        raise ValueError(f"{name} only supports optim_bits=32 (default value for compatibility)")


def _constructor_args(args, optim_bits, min_8bit_size, max_unorm, skip_zeros):
    if args is not None:
        return args
    return MockArgs(
        {"optim_bits": optim_bits, "min_8bit_size": min_8bit_size, "max_unorm": max_unorm, "skip_zeros": skip_zeros}
    )


class Optimizer2State(Optimizer8bit):
    def __init__(
        self,
        optimizer_name,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        optim_bits=32,
        args=None,
        min_8bit_size=4096,
        max_unorm=0.0,
        skip_zeros=False,
        is_paged=False,
        alpha=0.0,
        t_alpha: Optional[int] = None,
        t_beta3: Optional[int] = None,
    ):
        """Base class of the optimizers with two states (Adam, LAMB, AdEMAMix).

        Arguments:
            optimizer_name (`str`): the op's optimizer name (`adam`, `lamb`, `ademamix`).
            params: the parameters or parameter groups.
            lr, betas, eps, weight_decay: the hyper-parameters; betas may be a string "(b1, b2)".
            optim_bits (`int`, defaults to 32): 32 or 8 bits of state.
            args: an object with optim_bits, min_8bit_size, max_unorm, skip_zeros (overrides those arguments).
            min_8bit_size (`int`, defaults to 4096): smaller parameters keep 32-bit states.
            max_unorm (`float`, defaults to 0.0): update-norm clipping relative to ||p|| (32-bit only).
            skip_zeros (`bool`, defaults to `False`): leave elements with a zero gradient untouched.
            is_paged (`bool`, defaults to `False`): page the states of large parameters.
            alpha, t_alpha, t_beta3: AdEMAMix's mixing coefficient and schedule lengths.
        """
        if isinstance(betas, str):
            # "(0.9, 0.999)" from a command line.
            betas = [float(b) for b in betas.replace("(", "").replace(")", "").strip().split(",")]
        _check_hyperparameters(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3
        )
        super().__init__(params, defaults, optim_bits, is_paged)
        self.args = _constructor_args(args, optim_bits, min_8bit_size, max_unorm, skip_zeros)
        self.optimizer_name = optimizer_name

    @torch.no_grad()
    def init_state(self, group, p, gindex, pindex):
        self._init_state(group, p, gindex, pindex, self._state1_shape(p))

    @torch.no_grad()
    def update_step(self, group, p, gindex, pindex):
        super().update_step(group, p, gindex, pindex)


class Optimizer1State(Optimizer8bit):
    def __init__(
        self,
        optimizer_name,
        params,
        lr=1e-3,
        betas=(0.9, 0.0),
        eps=1e-8,
        weight_decay=0.0,
        optim_bits=32,
        args=None,
        min_8bit_size=4096,
        max_unorm=0.0,
        skip_zeros=False,
        is_paged=False,
    ):
        """Base class of the optimizers with one state (SGD, LARS, RMSprop, Adagrad, Lion).

        Arguments as Optimizer2State; betas are (beta1, beta2) of the op (e.g. SGD's
        (momentum, dampening)).
        """
        _check_hyperparameters(lr, eps, betas, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, optim_bits, is_paged)
        self.args = _constructor_args(args, optim_bits, min_8bit_size, max_unorm, skip_zeros)
        self.optimizer_name = optimizer_name

    def _has_second_state(self) -> bool:
        return False

    @torch.no_grad()
    def init_state(self, group, p, gindex, pindex):
        self._init_state(group, p, gindex, pindex, self._state1_shape(p))

    @torch.no_grad()
    def update_step(self, group, p, gindex, pindex):
        super().update_step(group, p, gindex, pindex)


_BATCHABLE_UPDATE_STEPS = {Optimizer2State.update_step, Optimizer1State.update_step}
