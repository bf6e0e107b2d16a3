"""The optimizer classes against upstream's CUDA trajectories (shared/golden, group "optim"):
three steps from the golden inputs, and a resume from a state dict built exactly as
upstream saves it after the first step."""

import warnings

import pytest
import torch
from conftest import GOLDEN_OPTIM_STEPS, OPTIM_GOLDEN_CASES, assert_optimizer_matches_golden, golden_case_params

import bitsandbytes as bnb

QUANT_STATE_KEY = "__bnb_optimizer_quant_state__"
pytestmark = pytest.mark.usefixtures("fresh_optim_manager")


def build(case: dict, param: torch.Tensor):
    class_name, kwargs, _ = OPTIM_GOLDEN_CASES[case["case"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # paged states on the CPU are not paged
        return getattr(bnb.optim, class_name)([param], **kwargs)


def step_with(optimizer, param, grad):
    param.grad = grad.to(param.device).clone()
    optimizer.step()


@pytest.mark.parametrize("case", golden_case_params("optim"))
def test_trajectory_matches_upstream(golden, case, device):
    tensors = golden.case_tensors("optim", case)
    param = torch.nn.Parameter(tensors["param0"].to(device).clone())  # the cache stays pristine
    optimizer = build(case, param)
    for step in range(1, GOLDEN_OPTIM_STEPS + 1):
        step_with(optimizer, param, tensors[f"grad{step - 1}"])
        state = optimizer.state[param]
        assert state["step"] == step
        assert_optimizer_matches_golden(tensors, step, param, {k: v for k, v in state.items() if k != "step"})


def upstream_state_dict(optimizer, tensors: dict, step: int) -> dict:
    """The state dict upstream's Optimizer8bit.state_dict() writes after `step` steps."""
    saved = optimizer.state_dict()  # only for param_groups: hyper-parameters, the parameter id 0
    quant_state = {key.split(".", 1)[1]: value.clone() for key, value in tensors.items()
                   if key.startswith(f"state{step}.")}
    return {"state": {0: {"step": step, QUANT_STATE_KEY: quant_state}}, "param_groups": saved["param_groups"]}


@pytest.mark.parametrize("case", golden_case_params("optim"))
def test_resume_from_upstream_state_dict(golden, case, device):
    tensors = golden.case_tensors("optim", case)
    param = torch.nn.Parameter(tensors["param1"].to(device).clone())  # the cache stays pristine
    optimizer = build(case, param)
    optimizer.load_state_dict(upstream_state_dict(optimizer, tensors, step=1))
    for step in range(2, GOLDEN_OPTIM_STEPS + 1):
        step_with(optimizer, param, tensors[f"grad{step - 1}"])
        state = optimizer.state[param]
        assert_optimizer_matches_golden(tensors, step, param, {k: v for k, v in state.items() if k != "step"})
    saved = optimizer.state_dict()["state"][0]
    assert saved["step"] == GOLDEN_OPTIM_STEPS
    assert set(saved[QUANT_STATE_KEY]) == {key.split(".", 1)[1] for key in tensors if key.startswith("state3.")}
