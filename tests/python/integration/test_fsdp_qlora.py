"""FSDP + QLoRA across processes: launches tests/distributed/fsdp_qlora.py with torchrun,
two CPU processes on gloo (the script picks NCCL and the GPU where CUDA is available).

Each phase checks its own results (loss falls, ranks agree bit for bit, packed weights and
quant states bit-exact through sharding, checkpoints and reloads, identical logits) and
exits non-zero with a FAIL line otherwise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed")
pytest.importorskip("peft", reason="peft is not installed")
pytest.importorskip("accelerate", reason="accelerate is not installed")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[2] / "distributed" / "fsdp_qlora.py"
PROCESSES = 2
TIMEOUT_S = 240


def run_phase(*args, distributed=True, processes=PROCESSES):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = (launcher if distributed else [sys.executable]) + [str(SCRIPT), *map(str, args)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command[-3:])} failed:\n" + output[-6000:]
    return output


@pytest.mark.parametrize("fsdp_version", [2, 1])
def test_train_save_and_reload_bit_exact(tmp_path, fsdp_version):
    output = run_phase("train", tmp_path, "--fsdp", fsdp_version)
    assert f"train (FSDP{fsdp_version}, {PROCESSES} ranks, gloo): OK" in output
    assert "verify (one process): OK" in run_phase("verify", tmp_path, distributed=False)
    if fsdp_version == 2:
        assert f"reload ({PROCESSES} ranks, gloo): OK" in run_phase("reload", tmp_path)


def test_accelerate_fsdp2_plugin(tmp_path):
    assert f"accelerate (FSDP2 plugin, {PROCESSES} ranks, gloo): OK" in run_phase("accelerate", tmp_path)


def test_one_process_takes_the_one_gpu_paths(tmp_path):
    """The device's one-GPU run: FSDP1 in one process (NO_SHARD, the root's frozen modules kept
    outside FSDP) and Accelerate's full checkpoint loaded back through Accelerate."""
    output = run_phase("train", tmp_path / "fsdp1", "--fsdp", 1, processes=1)
    assert "train (FSDP1, 1 ranks, gloo): OK" in output
    assert "verify (one process): OK" in run_phase("verify", tmp_path / "fsdp1", distributed=False)
    assert "accelerate (FSDP2 plugin, 1 ranks, gloo): OK" in run_phase("accelerate", tmp_path / "accelerate",
                                                                         processes=1)
