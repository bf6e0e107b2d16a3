"""Shared fixtures: golden vectors of upstream, devices, and the kernel implementation under test."""

import contextlib
import functools
import json
import os
import warnings
from math import prod
from pathlib import Path

import pytest
import torch

import bitsandbytes  # noqa: F401  (registers the ops)
from bitsandbytes.backends import torch as torch_kernels

REPO_ROOT = Path(__file__).resolve().parents[2]


def golden_dir() -> Path:
    return Path(os.environ.get("BNB_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden"))


@functools.lru_cache(maxsize=None)
def golden_manifest():
    manifest = golden_dir() / "golden_manifest.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text())


def golden_case_params(group: str):
    """pytest params, one per case of a manifest group (ids = case names)."""
    manifest = golden_manifest()
    if manifest is None:
        reason = f"golden vectors not found in {golden_dir()} (set BNB_GOLDEN_DIR)"
        return [pytest.param(None, id="no-golden", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(case, id=case["case"]) for case in manifest["groups"][group]]


class Golden:
    def __init__(self, directory: Path):
        self.directory = directory

    @functools.lru_cache(maxsize=None)
    def tensors(self, group: str) -> dict:
        from safetensors.torch import load_file

        return load_file(str(self.directory / f"golden_{group}.safetensors"))

    def case_tensors(self, group: str, case: dict) -> dict:
        stored = self.tensors(group)
        return {role: stored[key] for role, key in case["tensors"].items()}


@pytest.fixture(scope="session")
def golden() -> Golden:
    if golden_manifest() is None:
        pytest.skip(f"golden vectors not found in {golden_dir()} (set BNB_GOLDEN_DIR)")
    pytest.importorskip("safetensors", reason="safetensors is needed to read the golden vectors")
    return Golden(golden_dir())


CUDA_AVAILABLE = torch.cuda.is_available()
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not CUDA_AVAILABLE, reason="no CUDA device")),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@contextlib.contextmanager
def pure_torch_kernels(device_type: str):
    """Routes the quantization ops of `device_type` to the pure-torch kernels for a while.

    The native registration of that dispatch key is shadowed, not removed: it is
    back when the block ends.
    """
    dispatch_key = {"cpu": "CPU", "cuda": "CUDA"}[device_type]
    library = torch.library.Library("bitsandbytes", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Overriding a previously registered kernel.*")
        for name, kernel in torch_kernels.KERNELS.items():
            library.impl(name, kernel, dispatch_key)
    try:
        yield
    finally:
        library._destroy()


@pytest.fixture(params=["native", "pure_torch"])
def implementation(request, device):
    """Runs the test once with the native kernels of `device`, once with the pure-torch ones."""
    if request.param == "native":
        yield "native"
        return
    with pure_torch_kernels(device):
        yield "pure_torch"


# ---- inputs of the kernel tests --------------------------------------------------------------

SPECIAL_SIZE = 3 * 4096 + 5


def random_input(n: int, dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scale = torch.rand(1, generator=generator).item() * 10 + 0.01
    return (torch.randn(n, generator=generator) * scale).to(dtype=dtype, device=device)


def special_input(dtype: torch.dtype, device: str) -> torch.Tensor:
    """Blocks of awkward values, each at least 64 elements apart from the next kind."""
    values = random_input(SPECIAL_SIZE, torch.float32, "cpu", seed=7)
    values[0:64] = 0.0  # an all-zero block
    values[64:128] = -0.0
    values[130] = float("nan")
    values[200:264] = float("nan")  # an all-NaN block
    values[300] = float("inf")
    values[400] = float("-inf")
    values[520:540] = 1e-40  # float32 subnormals (flushed)
    values[540:560] = -3e-39
    values[600:664] = 1e-38  # normal, but x * rcp(absmax) is not
    values[700] = 3e38  # rcp underflows: every scaled value is zero
    values[800:810] = 1e-3
    values[810] = 65000.0
    values[1000:1064] = torch.linspace(-1, 1, 64)
    values[4096:4096 + 4096] = torch.linspace(-5, 5, 4096)
    return values.to(dtype=dtype, device=device)


def boundary_input(boundaries: torch.Tensor, dtype: torch.dtype, device: str) -> torch.Tensor:
    """Each boundary value, its float32 neighbours, and 1.0 so that the block absmax is 1 (s == x)."""
    boundaries = boundaries.float().cpu()
    up = torch.nextafter(boundaries, torch.tensor(float("inf")))
    down = torch.nextafter(boundaries, torch.tensor(float("-inf")))
    values = torch.cat([boundaries, up, down, torch.tensor([1.0, -1.0, 0.0, -0.0])])
    return values.to(dtype=dtype, device=device)


def assert_bitwise_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Same dtype, shape and bytes; NaNs only need to be NaN in the same places."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    actual, expected = actual.detach().cpu(), expected.detach().cpu()
    if actual.is_floating_point():
        nan = torch.isnan(actual)
        assert torch.equal(nan, torch.isnan(expected)), "NaN positions differ"
        actual, expected = actual[~nan], expected[~nan]
        int_type = {2: torch.int16, 4: torch.int32, 8: torch.int64}[actual.element_size()]
        actual, expected = actual.view(int_type), expected.view(int_type)
    mismatches = (actual != expected).sum().item()
    assert mismatches == 0, f"{mismatches} of {actual.numel()} elements differ"


# ---- LLM.int8() -------------------------------------------------------------------------------------


def int8_linear_by_composition(A, CB, SCB, bias, threshold):
    """(output, outlier_cols): the LLM.int8() forward as bnb.matmul composed it before int8_linear."""
    A_rows = A.reshape(prod(A.shape[:-1]), A.shape[-1])
    CA, SCA, outlier_cols = torch.ops.bitsandbytes.int8_vectorwise_quant(A_rows.to(torch.float16), threshold)
    if threshold > 0.0:
        out, _ = torch.ops.bitsandbytes.int8_mixed_scaled_mm(A_rows, CA, CB, SCA, SCB, outlier_cols, bias)
    else:
        out = torch.ops.bitsandbytes.int8_scaled_mm(CA, CB, SCA, SCB, bias=bias, dtype=A.dtype)
    return out.reshape(*A.shape[:-1], CB.shape[0]), outlier_cols


# ---- golden optimizer trajectories (group "optim") -------------------------------------------------

# Golden case -> (bnb.optim class, its constructor arguments beyond the parameters, the
# op arguments that class passes, formats.md 8.2). The golden runs used upstream's defaults
# except where an argument is given.
OPTIM_GOLDEN_CASES = {
    "Adam8bit": ("Adam8bit", {}, dict(optimizer_name="adam", beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                      lr=1e-3)),
    "AdamW8bit": ("AdamW8bit", {}, dict(optimizer_name="adam", beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                                        lr=1e-3)),
    "PagedAdamW8bit": ("PagedAdamW8bit", {}, dict(optimizer_name="adam", beta1=0.9, beta2=0.999, eps=1e-8,
                                                  weight_decay=1e-2, lr=1e-3)),
    "Adam32bit": ("Adam32bit", {}, dict(optimizer_name="adam", beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                        lr=1e-3)),
    "Lion8bit": ("Lion8bit", {}, dict(optimizer_name="lion", beta1=0.9, beta2=0.99, eps=0.0, weight_decay=0.0,
                                      lr=1e-4)),
    "SGD8bit_momentum": ("SGD8bit", {"lr": 0.01, "momentum": 0.9},
                         dict(optimizer_name="momentum", beta1=0.9, beta2=0.0, eps=0.0, weight_decay=0.0, lr=0.01)),
    # Upstream's run used lr 1e-3, not RMSprop's default 1e-2 (the first step moves p by 1e-3 * g / |0.1 g|).
    "RMSprop8bit": ("RMSprop8bit", {"lr": 1e-3}, dict(optimizer_name="rmsprop", beta1=0.99, beta2=0.0, eps=1e-8,
                                                      weight_decay=0.0, lr=1e-3)),
    "AdEMAMix8bit": ("AdEMAMix8bit", {}, dict(optimizer_name="ademamix", beta1=0.9, beta2=0.999, beta3=0.9999,
                                              alpha=5.0, eps=1e-8, weight_decay=1e-2, lr=1e-3)),
}
GOLDEN_OPTIM_STEPS = 3
# formats.md 8.0 / shared/golden/README.md.
GOLDEN_PARAM_RTOL = 1e-5
GOLDEN_CODE_MISMATCH_LIMIT = 1e-3


def assert_optimizer_matches_golden(tensors: dict, step: int, param: torch.Tensor, state: dict) -> None:
    """param and the state tensors (golden role names: state1, absmax1, ...) after `step` steps."""
    torch.testing.assert_close(param.detach().cpu(), tensors[f"param{step}"], rtol=GOLDEN_PARAM_RTOL, atol=1e-7)
    for role, value in state.items():
        expected = tensors.get(f"state{step}.{role}")
        if expected is None:
            continue
        value = value.detach().cpu()
        assert value.shape == expected.shape and value.dtype == expected.dtype, (role, value.shape, expected.shape)
        if value.dtype == torch.uint8:
            differences = (value.int() - expected.int()).abs()
            assert differences.max() <= 1, f"{role}: a code differs by {differences.max().item()}"
            fraction = (differences != 0).double().mean().item()
            assert fraction <= GOLDEN_CODE_MISMATCH_LIMIT, f"{role}: {fraction:.2%} of the codes differ by 1"
        else:
            torch.testing.assert_close(value, expected, rtol=GOLDEN_PARAM_RTOL, atol=1e-9, msg=role)


@pytest.fixture
def fresh_optim_manager():
    """An empty GlobalOptimManager for the test, the previous one restored after it.

    The manager is process-wide and keys overrides by id(parameter): overrides left by
    earlier tests (Transformers' Trainer registers one per embedding) would apply to
    new parameters that happen to reuse a freed id.
    """
    import bitsandbytes as bnb

    manager = bnb.optim.GlobalOptimManager.get_instance()
    saved = dict(manager.__dict__)
    manager.initialize()
    yield manager
    manager.__dict__.clear()
    manager.__dict__.update(saved)
