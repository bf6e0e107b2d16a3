"""bitsandbytes.optim: construction with upstream's defaults, trajectories against float32
references, the multi-tensor path, paging, state dicts in upstream's format, overrides, and
errors. Upstream's own CUDA trajectories are checked in test_golden_optim.py."""

import inspect
import warnings

import pytest
import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes.optim import optimizer as optim_base
from bitsandbytes.optim.ademamix import _ReferenceAdEMAMix

pytestmark = pytest.mark.usefixtures("fresh_optim_manager")

# Every class of python_api.md 5 and the arguments it needs beyond its defaults.
REQUIRED_ARGUMENTS = {"SGD": {"lr": 0.01, "momentum": 0.9}, "LARS": {"lr": 0.01, "momentum": 0.9}}
OPTIMIZER_CLASSES = [
    "Adagrad", "Adagrad8bit", "Adagrad32bit", "Adam", "Adam8bit", "Adam32bit", "PagedAdam", "PagedAdam8bit",
    "PagedAdam32bit", "AdamW", "AdamW8bit", "AdamW32bit", "PagedAdamW", "PagedAdamW8bit", "PagedAdamW32bit",
    "AdEMAMix", "AdEMAMix8bit", "AdEMAMix32bit", "PagedAdEMAMix", "PagedAdEMAMix8bit", "PagedAdEMAMix32bit", "LAMB",
    "LAMB8bit", "LAMB32bit", "LARS", "LARS8bit", "LARS32bit", "PytorchLARS", "Lion", "Lion8bit", "Lion32bit",
    "PagedLion", "PagedLion8bit", "PagedLion32bit", "RMSprop", "RMSprop8bit", "RMSprop32bit", "SGD", "SGD8bit",
    "SGD32bit",
]
# Parameter shapes: 8-bit states need >= 4096 elements; odd sizes leave partial blocks.
SHAPES = [(64, 80), (4099,), (33, 130)]


def required_arguments(name: str) -> dict:
    base = name.removeprefix("Paged").removesuffix("8bit").removesuffix("32bit")
    return dict(REQUIRED_ARGUMENTS.get(base, {}))


def make_params(shapes=SHAPES, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator).to(dtype)) for shape in shapes]


def set_gradients(params, step: int, scale: float = 0.01):
    generator = torch.Generator().manual_seed(1000 + step)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=generator) * scale).to(p.dtype)


def run_steps(optimizer, params, steps: int):
    for step in range(steps):
        set_gradients(params, step)
        optimizer.step()


def test_exports_every_class():
    assert sorted(name for name in dir(bnb.optim) if not name.startswith("_") and name[0].isupper()) == sorted(
        OPTIMIZER_CLASSES + ["GlobalOptimManager"]
    )
    for name in ("Optimizer8bit", "Optimizer1State", "Optimizer2State", "MockArgs", "GlobalOptimManager"):
        assert hasattr(optim_base, name)


@pytest.mark.parametrize("name", OPTIMIZER_CLASSES)
def test_constructs_with_defaults_and_steps(name):
    params = make_params()
    before = [p.detach().clone() for p in params]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # paged classes warn that CPU states are not paged
        optimizer = getattr(bnb.optim, name)(params, **required_arguments(name))
        run_steps(optimizer, params, 2)
    for p, old in zip(params, before):
        assert torch.isfinite(p).all() and not torch.equal(p, old)
    if name == "PytorchLARS":
        return
    eight_bit = "8bit" in name
    assert optimizer.args.optim_bits == (8 if eight_bit else 32)
    for p in params:
        state = optimizer.state[p]
        assert state["step"] == 2
        assert state["state1"].dtype == (torch.uint8 if eight_bit else torch.float32)
        expected_state1 = (2, *p.shape) if "AdEMAMix" in name else p.shape
        assert state["state1"].shape == expected_state1


def test_signatures_match_upstream():
    """Spot checks of python_api.md Appendix A (names, order and defaults)."""
    def signature(cls):
        return str(inspect.signature(cls.__init__))

    assert signature(bnb.optim.Adam8bit) == (
        "(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, amsgrad=False, optim_bits=32, "
        "args=None, min_8bit_size=4096, is_paged=False)"
    )
    assert signature(bnb.optim.PagedAdamW) == (
        "(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False, optim_bits=32, "
        "args=None, min_8bit_size=4096)"
    )
    assert signature(bnb.optim.SGD) == (
        "(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, optim_bits=32, args=None, "
        "min_8bit_size=4096)"
    )
    assert signature(bnb.optim.Lion8bit) == (
        "(self, params, lr=0.0001, betas=(0.9, 0.99), weight_decay=0, args=None, min_8bit_size=4096, is_paged=False)"
    )
    assert list(inspect.signature(bnb.optim.AdEMAMix8bit.__init__).parameters) == [
        "self", "params", "lr", "betas", "alpha", "t_alpha", "t_beta3", "eps", "weight_decay", "min_8bit_size",
        "is_paged",
    ]
    assert list(inspect.signature(optim_base.Optimizer2State.__init__).parameters) == [
        "self", "optimizer_name", "params", "lr", "betas", "eps", "weight_decay", "optim_bits", "args",
        "min_8bit_size", "max_unorm", "skip_zeros", "is_paged", "alpha", "t_alpha", "t_beta3",
    ]


# ---- trajectories against float32 references -------------------------------------------------------


class ReferenceLion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023) with decoupled weight decay, in float64-free plain torch."""

    def __init__(self, params, lr, betas, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                momentum = self.state[p].setdefault("momentum", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(momentum * beta1 + p.grad * (1 - beta1)), alpha=-group["lr"])
                momentum.mul_(beta2).add_(p.grad, alpha=1 - beta2)


class ReferenceLAMB(torch.optim.Optimizer):
    """formats.md 7: Adam whose update (without decay) is scaled to at most max_unorm * ||p||."""

    def __init__(self, params, lr, betas, eps, weight_decay, max_unorm):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_unorm=max_unorm))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                step = state["step"]
                m, v = state["m"], state["v"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                c1, c2 = 1 - beta1**step, 1 - beta2**step
                update = (m / c1) / ((v / c2).sqrt() + group["eps"])
                limit = group["max_unorm"] * p.norm()
                scale = torch.where(update.norm() > limit, limit / update.norm(), 1.0)
                denominator = v.sqrt() + group["eps"] * c2**0.5
                p.add_(scale * (-group["lr"] * c2**0.5 / c1) * m / denominator)
                p.mul_(1 - group["lr"] * group["weight_decay"])


# name -> (bnb factory, reference factory). Adam's decay is applied after the update
# (formats.md 6.1), torch's AdamW before it: the difference is O(lr^2 * wd).
REFERENCES = {
    "Adam": (lambda ps, bits: bnb.optim.Adam(ps, lr=1e-3, optim_bits=bits),
             lambda ps: torch.optim.Adam(ps, lr=1e-3)),
    "AdamW": (lambda ps, bits: bnb.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, optim_bits=bits),
              lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2)),
    "Lion": (lambda ps, bits: bnb.optim.Lion(ps, lr=1e-4, weight_decay=1e-2, optim_bits=bits),
             lambda ps: ReferenceLion(ps, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-2)),
    "SGD": (lambda ps, bits: bnb.optim.SGD(ps, lr=1e-2, momentum=0.9, optim_bits=bits),
            lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9)),
    "RMSprop": (lambda ps, bits: bnb.optim.RMSprop(ps, lr=1e-3, optim_bits=bits),
                lambda ps: torch.optim.RMSprop(ps, lr=1e-3, alpha=0.99, eps=1e-8)),
    "Adagrad": (lambda ps, bits: bnb.optim.Adagrad(ps, lr=1e-2, optim_bits=bits),
                lambda ps: torch.optim.Adagrad(ps, lr=1e-2, eps=1e-10)),
    "AdEMAMix": (lambda ps, bits: bnb.optim.AdEMAMix(ps, lr=1e-3, optim_bits=bits),
                 lambda ps: _ReferenceAdEMAMix(ps, lr=1e-3)),
    "AdEMAMix-scheduled": (
        lambda ps, bits: bnb.optim.AdEMAMix(ps, lr=1e-3, t_alpha=30, t_beta3=30, optim_bits=bits),
        lambda ps: _ReferenceAdEMAMix(ps, lr=1e-3, t_alpha=30, t_beta3=30),
    ),
    "LAMB": (lambda ps, bits: bnb.optim.LAMB(ps, lr=1e-3, weight_decay=1e-2, optim_bits=bits),
             lambda ps: ReferenceLAMB(ps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, max_unorm=1.0)),
    "LARS": (lambda ps, bits: bnb.optim.LARS(ps, lr=1e-2, momentum=0.9, optim_bits=bits),
             lambda ps: bnb.optim.PytorchLARS(ps, lr=1e-2, momentum=0.9)),
}
# LAMB/LARS clip only with 32-bit states (the 8-bit ops have no clipping), so their
# 8-bit runs have no reference here.
CLIPPED = ("LAMB", "LARS")
STEPS = 40


# 8-bit states drift away from a float32 run; like upstream's tests, the reference takes the
# 8-bit run's parameters every few steps, and the drift of each stretch is bounded relative
# to the distance the reference travelled in it (measured: 1-3% for every optimizer here).
RESYNC_EVERY = 10
EIGHT_BIT_DRIFT_LIMIT = 0.05


def assert_trajectory_close(params, reference_params, starts, eight_bit: bool):
    for p, r, start in zip(params, reference_params, starts):
        if eight_bit:
            drift = (p.detach().double() - r.detach().double()).abs().mean()
            travelled = (r.detach().double() - start.double()).abs().mean()
            assert drift < EIGHT_BIT_DRIFT_LIMIT * travelled, (drift, travelled)
        else:
            torch.testing.assert_close(p.detach(), r.detach(), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("bits", [32, 8])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_matches_float32_reference(name, bits):
    if bits == 8 and name in CLIPPED:
        pytest.skip("8-bit LAMB/LARS states have no update-norm clipping, unlike the reference")
    make, make_reference = REFERENCES[name]
    params = make_params()
    reference_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    optimizer, reference = make(params, bits), make_reference(reference_params)
    starts = [p.detach().clone() for p in params]
    for step in range(STEPS):
        set_gradients(params, step)
        set_gradients(reference_params, step)
        optimizer.step()
        reference.step()
        assert_trajectory_close(params, reference_params, starts, eight_bit=bits == 8)
        if bits == 8 and step % RESYNC_EVERY == RESYNC_EVERY - 1:
            with torch.no_grad():
                for p, r in zip(params, reference_params):
                    r.copy_(p)
            starts = [p.detach().clone() for p in params]
    if bits == 8:
        assert all(optimizer.state[p]["state1"].dtype == torch.uint8 for p in params)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["Adam", "Lion", "SGD", "AdEMAMix"])
def test_half_precision_parameters_follow_float32_run(name, dtype):
    make, _ = REFERENCES[name]
    params = make_params(dtype=dtype)
    float32_params = [torch.nn.Parameter(p.detach().float()) for p in params]
    optimizer, float32_optimizer = make(params, 8), make(float32_params, 8)
    for step in range(10):
        set_gradients(params, step)
        set_gradients(float32_params, step)
        for p, q in zip(params, float32_params):
            q.grad = p.grad.float()
        optimizer.step()
        float32_optimizer.step()
    # Each step rounds p to its dtype: up to half an ulp per step.
    tolerance = 10 * torch.finfo(dtype).eps / 2
    for p, q in zip(params, float32_params):
        assert p.dtype == dtype
        torch.testing.assert_close(p.detach().float(), q.detach(), atol=tolerance, rtol=tolerance)


# ---- the multi-tensor path -----------------------------------------------------------------------


def per_tensor(cls):
    """The class with its own update_step, which keeps every parameter on the single-tensor ops."""
    class PerTensor(cls):
        def update_step(self, group, p, gindex, pindex):
            super().update_step(group, p, gindex, pindex)

    return PerTensor


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", ["Adam8bit", "Adam32bit", "AdEMAMix8bit", "AdEMAMix32bit", "Lion8bit", "Lion32bit",
                                  "SGD8bit", "SGD32bit", "RMSprop8bit", "Adagrad32bit", "LAMB8bit", "LARS32bit"])
def test_multi_tensor_equals_per_tensor(name, dtype, monkeypatch):
    cls = getattr(bnb.optim, name)
    batched_calls = []
    multi_tensor = F.optimizer_update_multi_tensor
    monkeypatch.setattr(F, "optimizer_update_multi_tensor",
                        lambda *args, **kwargs: batched_calls.append(len(args[2])) or multi_tensor(*args, **kwargs))
    shapes = [(64, 80), (4099,), (33, 130), (5000,), (7,)]
    params, copies = make_params(shapes, dtype), make_params(shapes, dtype)
    optimizer = cls(params, **required_arguments(name))
    reference = per_tensor(cls)(copies, **required_arguments(name))
    for step in range(3):
        set_gradients(params, step)
        set_gradients(copies, step)
        optimizer.step()
        reference.step()
    clipped_32bit = name == "LARS32bit"
    assert (batched_calls == []) if clipped_32bit else (batched_calls and max(batched_calls) >= 2)
    assert_same_run(optimizer, params, reference, copies)


def test_multi_tensor_groups_by_state_bits(monkeypatch):
    """A group mixing 8-bit and 32-bit states (small tensors) runs one batch of each."""
    batch_sizes = []
    multi_tensor = F.optimizer_update_multi_tensor
    monkeypatch.setattr(F, "optimizer_update_multi_tensor",
                        lambda *args, **kwargs: batch_sizes.append(len(args[2])) or multi_tensor(*args, **kwargs))
    params = make_params([(64, 80), (5000,), (10,), (20,)])
    optimizer = bnb.optim.Adam8bit(params)
    run_steps(optimizer, params, 1)
    assert sorted(batch_sizes) == [2, 2]


def assert_same_run(optimizer, params, reference, copies):
    """Parameters and every state entry equal bit for bit."""
    for p, q in zip(params, copies):
        assert p.dtype == q.dtype and torch.equal(p.view(torch.uint8), q.view(torch.uint8))
        assert optimizer.state[p].keys() == reference.state[q].keys()
        for key, value in optimizer.state[p].items():
            expected = reference.state[q][key]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value.view(torch.uint8), expected.view(torch.uint8)), key
            else:
                assert value == expected, key


def change_lr(optimizer, params, manager):
    optimizer.param_groups[0]["lr"] *= 3


def change_betas(optimizer, params, manager):
    optimizer.param_groups[0]["betas"] = (0.8, 0.95, *optimizer.param_groups[0]["betas"][2:])


def drop_one_gradient(optimizer, params, manager):
    params[1].grad = None


def make_one_parameter_bfloat16(optimizer, params, manager):
    params[0].data = params[0].data.to(torch.bfloat16)
    params[0].grad = params[0].grad.to(torch.bfloat16)


def make_one_parameter_non_contiguous(optimizer, params, manager):
    params[0].data = params[0].data.t().contiguous().t()


def transpose_one_gradient(optimizer, params, manager):
    # Same shape, other strides: the step makes it contiguous.
    params[2].grad = params[2].grad.t().contiguous().t()


def override_lr_of_one_parameter(optimizer, params, manager):
    manager.override_config(params[0], "lr", 1e-2)


def update_existing_override(optimizer, params, manager):
    # params[4] has an override from the start: this one updates that dict in place.
    manager.override_config(params[4], "lr", 2e-2)


def override_betas_of_registered_position(optimizer, params, manager):
    betas = (0.5, 0.6, *optimizer.param_groups[0]["betas"][2:])
    manager.override_config(params[3], key_value_dict={"betas": betas})
    manager.register_parameters(optimizer.param_groups)


def reload_own_state_dict(optimizer, params, manager):
    # Every state tensor is replaced by a copy; updating the old ones would lose the step.
    optimizer.load_state_dict(optimizer.state_dict())


def add_group_of_new_parameters(optimizer, params, manager):
    extra = make_params([(70, 70), (9,)], seed=7)
    set_gradients(extra, 99)
    params.extend(extra)
    optimizer.add_param_group({"params": extra, "lr": 5e-4})


def edit_group_params_in_place(optimizer, params, manager):
    extra = make_params([(4100,)], seed=8)
    set_gradients(extra, 99)
    params.extend(extra)
    optimizer.param_groups[0]["params"].extend(extra)


@pytest.mark.parametrize("change", [
    change_lr, change_betas, drop_one_gradient, make_one_parameter_bfloat16, make_one_parameter_non_contiguous,
    transpose_one_gradient,
    override_lr_of_one_parameter, update_existing_override, override_betas_of_registered_position,
    reload_own_state_dict,
    add_group_of_new_parameters, edit_group_params_in_place,
])
@pytest.mark.parametrize("name", ["AdamW8bit", "Lion32bit", "AdEMAMix8bit"])
def test_step_plan_follows_changes_between_steps(name, change, fresh_optim_manager, monkeypatch):
    """The cached per-group plan of the batched step against the single-tensor path after
    a change between two steps, bit for bit; and unchanged steps reuse the plan."""
    builds = []
    build_plan = optim_base.Optimizer8bit._build_plan
    monkeypatch.setattr(optim_base.Optimizer8bit, "_build_plan",
                        lambda self, *args: builds.append(type(self)) or build_plan(self, *args))
    cls = getattr(bnb.optim, name)
    # 8-bit and 32-bit states (the small ones): two batches.
    shapes = [(64, 80), (4099,), (33, 130), (10,), (20,)]
    params, copies = make_params(shapes), make_params(shapes)
    fresh_optim_manager.override_config([params[4], copies[4]], "eps", 1e-6)
    optimizer = cls(params, lr=1e-3)
    reference = per_tensor(cls)(copies, lr=1e-3)

    def step_both(step):
        set_gradients(params, step)
        set_gradients(copies, step)
        for p, q in zip(params, copies):
            p.grad, q.grad = p.grad.to(p.dtype), q.grad.to(q.dtype)

    for step in range(3):
        step_both(step)
        optimizer.step()
        reference.step()
    assert builds == [cls]  # built once, then reused
    step_both(3)
    change(optimizer, params, fresh_optim_manager)
    change(reference, copies, fresh_optim_manager)
    for step in (4, 5):
        optimizer.step()
        reference.step()
        assert_same_run(optimizer, params, reference, copies)
        step_both(step + 1)
    if change in (change_lr, change_betas):
        assert builds == [cls]  # group hyper-parameters are read at every step
    else:
        assert len(builds) >= 2


# ---- paging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("paged_name, name", [("PagedAdamW8bit", "AdamW8bit"), ("PagedAdEMAMix32bit", "AdEMAMix32bit"),
                                              ("PagedLion8bit", "Lion8bit")])
def test_paged_equals_unpaged_on_cpu(paged_name, name):
    shapes = [(400, 300), (4099,)]  # the first has >= 1e5 elements, where states are paged
    params, copies = make_params(shapes), make_params(shapes)
    with pytest.warns(UserWarning, match="Paged optimizers are not supported on CPU") as caught:
        paged = getattr(bnb.optim, paged_name)(params)
        run_steps(paged, params, 3)
    assert len([w for w in caught if "Paged" in str(w.message)]) == 1  # once per optimizer
    plain = getattr(bnb.optim, name)(copies)
    run_steps(plain, copies, 3)
    assert paged.is_paged and not plain.is_paged
    for p, q in zip(params, copies):
        assert torch.equal(p, q)
        assert torch.equal(paged.state[p]["state1"], plain.state[q]["state1"])


def test_get_paged_and_prefetch():
    buffer = F.get_paged(3, 5, dtype=torch.float32, device=torch.device("cpu"))
    assert buffer.shape == (3, 5) and buffer.device.type == "cpu" and buffer.is_paged
    assert buffer.page_deviceid is None and torch.equal(buffer, torch.zeros(3, 5))
    F.fill(buffer, 2.5)
    assert torch.equal(buffer, torch.full((3, 5), 2.5))
    F.prefetch_tensor(buffer)
    F.prefetch_tensor(buffer, to_cpu=True)
    with pytest.raises(AssertionError, match="Only paged tensors can be prefetched!"):
        F.prefetch_tensor(torch.zeros(3))
    with pytest.raises(NotImplementedError, match="Function not implemented: fill"):
        F.fill(torch.zeros(3, dtype=torch.float16), 1.0)
    with pytest.raises(RuntimeError, match="Call get_instance"):
        F.GlobalPageManager()
    assert F.GlobalPageManager.get_instance() is F.GlobalPageManager.get_instance()


# ---- state dicts --------------------------------------------------------------------------------------


QUANT_STATE_KEY = "__bnb_optimizer_quant_state__"


def test_state_dict_has_upstream_layout():
    params = make_params([(64, 80), (10,)])
    optimizer = bnb.optim.Adam8bit(params)
    run_steps(optimizer, params, 2)
    saved = optimizer.state_dict()
    eight_bit, small = saved["state"][0], saved["state"][1]
    assert set(eight_bit) == {"step", QUANT_STATE_KEY} and eight_bit["step"] == 2
    quant = eight_bit[QUANT_STATE_KEY]
    assert set(quant) == {"state1", "state2", "qmap1", "qmap2", "absmax1", "absmax2"}
    assert quant["state1"].dtype == quant["state2"].dtype == torch.uint8
    assert quant["absmax1"].shape == quant["absmax2"].shape == (20,)
    assert quant["qmap1"].dtype == torch.float32 and quant["qmap1"].shape == (256,)
    assert set(small[QUANT_STATE_KEY]) == {"state1", "state2"}
    assert small[QUANT_STATE_KEY]["state1"].dtype == torch.float32
    # The live state keeps its flat layout.
    assert "state1" in optimizer.state[params[0]]


@pytest.mark.parametrize("name", ["Adam8bit", "AdEMAMix8bit", "Lion32bit", "LAMB32bit", "PagedAdamW8bit"])
def test_state_dict_round_trip_resumes_exactly(name, tmp_path):
    cls = getattr(bnb.optim, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = make_params()
        optimizer = cls(params)
        run_steps(optimizer, params, 2)
        path = tmp_path / "optimizer.pt"
        torch.save(optimizer.state_dict(), path)
        resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
        resumed = cls(resumed_params)
        resumed.load_state_dict(torch.load(path, weights_only=False))
        for step in (2, 3):
            set_gradients(params, step)
            set_gradients(resumed_params, step)
            optimizer.step()
            resumed.step()
    for p, q in zip(params, resumed_params):
        assert torch.equal(p, q)
        assert resumed.state[q]["step"] == 4


def test_load_state_dict_rejects_other_groups():
    optimizer = bnb.optim.Adam8bit(make_params())
    saved = optimizer.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        bnb.optim.Adam8bit([{"params": make_params()[:1]}, {"params": make_params()[1:]}]).load_state_dict(saved)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        bnb.optim.Adam8bit(make_params()[:2]).load_state_dict(saved)


def test_load_state_dict_casts_only_castable_tensors():
    params = make_params([(64, 80)])
    optimizer = bnb.optim.Adam8bit(params)
    run_steps(optimizer, params, 1)
    half_params = [torch.nn.Parameter(params[0].detach().half())]
    resumed = bnb.optim.Adam8bit(half_params)
    resumed.load_state_dict(optimizer.state_dict())
    state = resumed.state[half_params[0]]
    assert state["state1"].dtype == torch.uint8 and state["absmax1"].dtype == torch.float32
    assert state["qmap1"].dtype == torch.float32


# ---- overrides ------------------------------------------------------------------------------------


def test_override_config_forces_32bit(fresh_optim_manager):
    params = make_params([(64, 80), (64, 80)])
    fresh_optim_manager.register_parameters(params)
    fresh_optim_manager.override_config(params[1], "optim_bits", 32)
    optimizer = bnb.optim.Adam(params, optim_bits=8)
    run_steps(optimizer, params, 1)
    assert optimizer.state[params[0]]["state1"].dtype == torch.uint8
    assert optimizer.state[params[1]]["state1"].dtype == torch.float32
    fresh_optim_manager.override_config([params[0]], key_value_dict={"lr": 0.0})
    before = params[0].detach().clone()
    run_steps(optimizer, params, 1)
    assert torch.equal(params[0], before)
    with pytest.raises(RuntimeError, match="Call get_instance"):
        bnb.optim.GlobalOptimManager()


@pytest.mark.parametrize("embedding", ["StableEmbedding", "Embedding"])
def test_embeddings_keep_32bit_states(fresh_optim_manager, embedding):
    model = torch.nn.Sequential(getattr(bnb.nn, embedding)(1024, 64), torch.nn.Linear(64, 64))
    assert len(fresh_optim_manager.module_weight_config_triple) == 1
    optimizer = bnb.optim.Adam8bit(model.parameters())
    model(torch.randint(0, 1024, (4, 8))).sum().backward()
    optimizer.step()
    assert optimizer.state[model[0].weight]["state1"].dtype == torch.float32
    assert optimizer.state[model[1].weight]["state1"].dtype == torch.uint8  # 4096 elements: 8-bit
    big = torch.nn.Linear(128, 64)
    fresh_optim_manager.register_module_override(big, "weight", {"optim_bits": 8})
    big(torch.randn(2, 128)).sum().backward()
    optimizer = bnb.optim.Adam(big.parameters(), optim_bits=32)
    optimizer.step()
    assert optimizer.state[big.weight]["state1"].dtype == torch.uint8


def test_stable_embedding_forward():
    torch.manual_seed(0)
    layer = bnb.nn.StableEmbedding(10, 8, padding_idx=0)
    assert torch.equal(layer.weight[0], torch.zeros(8))
    out = layer(torch.tensor([[0, 3, 9]]))
    assert out.shape == (1, 3, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out.mean(-1), torch.zeros(1, 3), atol=1e-5, rtol=0)


# ---- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "Invalid learning rate"),
    ({"eps": -1.0}, "Invalid epsilon value"),
    ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0"),
    ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1"),
    ({"weight_decay": -1.0}, "Invalid weight_decay value"),
])
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bnb.optim.Adam(make_params(), **kwargs)


def test_class_specific_rejections():
    params = make_params()
    with pytest.raises(ValueError, match="Adam8bit does not support amsgrad=True"):
        bnb.optim.Adam8bit(params, amsgrad=True)
    with pytest.raises(ValueError, match="only supports optim_bits=32"):
        bnb.optim.AdamW8bit(params, optim_bits=8)
    with pytest.raises(ValueError, match="only supports max_unorm=1.0"):
        bnb.optim.LAMB8bit(params, max_unorm=0.5)
    with pytest.raises(ValueError, match="only supports optim_bits=8"):
        bnb.optim.Adagrad8bit(params, optim_bits=32)
    with pytest.raises(ValueError, match="Lr Decay"):
        bnb.optim.Adagrad(params, lr_decay=0.1)
    with pytest.raises(NotImplementedError, match="SGD without momentum"):
        bnb.optim.SGD(params, lr=0.1)
    with pytest.raises(NotImplementedError, match="Centered RMSprop"):
        bnb.optim.RMSprop(params, centered=True)
    with pytest.raises(TypeError):
        bnb.optim.Adam(params, percentile_clipping=5)
    with pytest.raises(NotImplementedError, match="optimizer bits not supported: 4"):
        optimizer = bnb.optim.Adam(params, optim_bits=4)
        run_steps(optimizer, params, 1)


def test_betas_from_string():
    optimizer = bnb.optim.Adam8bit(make_params(), betas="(0.8, 0.95)")
    assert list(optimizer.param_groups[0]["betas"]) == [0.8, 0.95]


def test_sparse_gradient_is_rejected():
    embedding = torch.nn.Embedding(100, 64, sparse=True)
    optimizer = bnb.optim.Adam8bit(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        optimizer.step()


def _adam_32bit_args(n=300, dtype=torch.float32):
    g, p = torch.randn(n, dtype=dtype), torch.randn(n, dtype=dtype)
    return g, p, torch.zeros(n), torch.zeros(n)


def test_op_rejects_bad_tensors():
    g, p, s1, s2 = _adam_32bit_args()
    with pytest.raises(ValueError, match="Unsupported optimizer name: adamx"):
        F.optimizer_update_32bit("adamx", g, p, s1, 0.9, 1e-8, 1, 1e-3, s2, 0.999)
    with pytest.raises(ValueError, match="g and p must have the same number of elements"):
        F.optimizer_update_32bit("adam", g[:10], p, s1, 0.9, 1e-8, 1, 1e-3, s2, 0.999)
    with pytest.raises(ValueError, match="g.dtype=torch.float16, p.dtype=torch.float32"):
        F.optimizer_update_32bit("adam", g.half(), p, s1, 0.9, 1e-8, 1, 1e-3, s2, 0.999)
    with pytest.raises(ValueError, match="state2 is required"):
        F.optimizer_update_32bit("adam", g, p, s1, 0.9, 1e-8, 1, 1e-3, None, 0.999)
    with pytest.raises(ValueError, match="state1 must have 600 elements"):
        F.optimizer_update_32bit("ademamix", g, p, s1, 0.9, 1e-8, 1, 1e-3, s2, 0.999, 0.9999, 5.0)
    codes = torch.zeros(300, dtype=torch.uint8)
    qmap = F.create_dynamic_map(signed=True)
    with pytest.raises(ValueError, match="absmax1 must have 2 entries"):
        F.optimizer_update_8bit_blockwise("momentum", g, p, codes, None, 0.9, 0.0, 0.0, 0.0, 0.0, 1, 1e-3, qmap, None,
                                          torch.zeros(1), None)
    with pytest.raises(ValueError, match="state1 must be torch.uint8"):
        F.optimizer_update_8bit_blockwise("momentum", g, p, s1, None, 0.9, 0.0, 0.0, 0.0, 0.0, 1, 1e-3, qmap, None,
                                          torch.zeros(2), None)
    with pytest.raises(ValueError, match="one dtype"):
        F.optimizer_update_multi_tensor("adam", [g, g.half()], [p, p.half()], [s1, s1], [s2, s2], [], [], None,
                                        None, 0.9, 0.999, 0.0, 0.0, 1e-8, 0.0, 1, 1e-3)


def test_multi_tensor_op_equals_single_ops():
    """The op itself, including one-state lists and empty ones."""
    generator = torch.Generator().manual_seed(5)
    sizes = (4099, 256, 5000)
    qmap1 = F.create_dynamic_map(signed=True)

    def tensors():
        grads = [torch.randn(n, generator=torch.Generator().manual_seed(n)) for n in sizes]
        params = [torch.randn(n, generator=torch.Generator().manual_seed(n + 1)) for n in sizes]
        codes = [torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n + 2), dtype=torch.uint8)
                 for n in sizes]
        absmax = [torch.rand(-(n // -256), generator=torch.Generator().manual_seed(n + 3)) for n in sizes]
        return grads, params, codes, absmax

    grads, params, codes, absmax = tensors()
    F.optimizer_update_multi_tensor("lion", grads, params, codes, [], absmax, [], qmap1, None, 0.9, 0.99, 0.0, 0.0,
                                    0.0, 0.01, 3, 1e-3)
    grads2, params2, codes2, absmax2 = tensors()
    for g, p, c, a in zip(grads2, params2, codes2, absmax2):
        F.optimizer_update_8bit_blockwise("lion", g, p, c, None, 0.9, 0.99, 0.0, 0.0, 0.0, 3, 1e-3, qmap1, None, a,
                                          None, 0.01)
    for got, expected in zip(params + codes + absmax, params2 + codes2 + absmax2):
        assert torch.equal(got, expected)
    F.optimizer_update_multi_tensor("adam", [], [], [], [], [], [], None, None, 0.9, 0.999, 0.0, 0.0, 1e-8, 0.0, 1,
                                    1e-3)
