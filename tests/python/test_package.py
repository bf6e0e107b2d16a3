"""The package surface: version, flags, cheap import, loud native-library errors, ``python -m bitsandbytes``."""

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bitsandbytes


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ), **kwargs
    )


def test_top_level_names():
    assert bitsandbytes.__version__ == "0.50.2"
    assert "multi_backend" in bitsandbytes.features
    assert bitsandbytes.supported_torch_devices == {"cpu", "cuda", "xpu", "hpu", "npu", "mps"}
    assert bitsandbytes.functional.QuantState is not None
    assert bitsandbytes.utils.pack_dict_to_tensor is not None
    assert bitsandbytes.modules is bitsandbytes.nn.modules
    assert callable(bitsandbytes.matmul_4bit)
    assert bitsandbytes.matmul is bitsandbytes.autograd._functions.matmul


# The names bitsandbytes.functional held as one file (commit b2a836a), less its
# imports of the standard library, typing and torch: the facade keeps all of them.
FUNCTIONAL_PUBLIC_NAMES = {
    "C", "FLOAT_DTYPES", "FOURBIT_BLOCKSIZES", "FOURBIT_QUANT_TYPES", "NESTED_4BIT_BLOCKSIZE", "QuantState",
    "QuantStateKeyError", "create_dynamic_map", "create_fp8_map", "create_linear_map", "create_normal_map",
    "cuda_mean_float32", "dequantize_4bit", "dequantize_blockwise", "dequantize_fp4", "dequantize_nf4", "gemv_4bit",
    "get_4bit_type", "get_ptr", "is_on_gpu", "name2qmap", "pack_dict_to_tensor", "quantize_4bit",
    "quantize_blockwise", "quantize_fp4", "quantize_nf4", "unpack_tensor_to_dict",
    # LLM.int8() (python_api.md 2.5)
    "batched_igemm", "check_matmul", "igemm", "int8_double_quant", "int8_linear_matmul", "int8_mm_dequant",
    "int8_vectorwise_dequant", "int8_vectorwise_quant",
    # Optimizer updates and paged memory (python_api.md 2.6, 2.7; the multi-tensor update is this package's)
    "optimizer_update_32bit", "optimizer_update_8bit_blockwise", "optimizer_update_multi_tensor",
    "FIRST_CUDA_DEVICE", "GlobalPageManager", "elementwise_func", "fill", "get_paged", "prefetch_tensor",
    # Upstream's cuBLAS handle cache and the CPU packed-weight probe (python_api.md 2.7, 2.8)
    "CUBLAS_Context", "has_avx512bf16",
}  # fmt: skip
# Private names that other modules and the tests read from bitsandbytes.functional.
FUNCTIONAL_PRIVATE_NAMES_IN_USE = {
    "_build_dynamic_map", "_denested_absmax", "_get_tensor_stream", "_mul", "_nested_offset",
    "_torch_float32_linspace",
    "_convert_weight_packed_for_cpu", "_convert_weight_packed_for_cpu_inverse",  # python_api.md 2.8
}  # fmt: skip


def test_functional_facade_keeps_every_name():
    import bitsandbytes.functional as F

    public = {name for name in dir(F) if not name.startswith("_")}
    assert public == FUNCTIONAL_PUBLIC_NAMES
    for name in FUNCTIONAL_PUBLIC_NAMES | FUNCTIONAL_PRIVATE_NAMES_IN_USE:
        value = getattr(F, name)
        if callable(value) and hasattr(value, "__module__"):
            # The facade re-exports; it never wraps or copies what it exposes.
            assert getattr(sys.modules[value.__module__], value.__name__) is value, name
    assert F.QuantState is bitsandbytes.nn.modules.QuantState
    assert F.FOURBIT_BLOCKSIZES == tuple(bitsandbytes._C.blocksizes("quantize_4bit"))
    assert F.NESTED_4BIT_BLOCKSIZE == bitsandbytes._C.nested_blocksize() == 256


def test_import_is_cheap_and_leaves_cuda_alone():
    result = run_python(
        "import sys, bitsandbytes, torch\n"  # bitsandbytes first: it must load torch itself
        "print(torch.cuda.is_initialized())\n"
        "print(sorted(m for m in ('scipy', 'transformers', 'safetensors', 'triton') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False", "[]"]


def test_broken_native_library_raises_import_error_with_the_loader_message(tmp_path):
    """A package whose _C cannot load fails at import, naming the loader's error and the fix."""
    source = Path(bitsandbytes.__file__).parent
    package = tmp_path / "bitsandbytes"
    package.mkdir()
    for entry in source.iterdir():
        if entry.suffix in (".py",) or entry.name in ("backends", "nn", "autograd"):
            (package / entry.name).symlink_to(entry)
    (package / f"_C{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"not a shared library")
    result = subprocess.run(
        [sys.executable, "-c", "import bitsandbytes"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
    )
    assert result.returncode != 0
    assert "ImportError: bitsandbytes: the native extension bitsandbytes._C failed to load" in result.stderr
    assert "invalid ELF header" in result.stderr or "file too short" in result.stderr
    assert "--no-build-isolation" in result.stderr


def test_python_m_bitsandbytes_reports_and_self_tests():
    result = subprocess.run(
        [sys.executable, "-m", "bitsandbytes"], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Upstream's report: a header with the version, platform and versions, related packages.
    assert lines[0].strip("= ") == "bitsandbytes v0.50.2"
    assert any(line.startswith("Python: ") for line in lines)
    assert f"PyTorch: {__import__('torch').__version__}" in lines
    assert any(line.startswith("  CUDA: ") for line in lines) and any(line.startswith("  HIP: ") for line in lines)
    assert "Related packages:" in lines and any(line.startswith("  transformers: ") for line in lines)
    # Ours besides: the library files, the backends, a self-test per device.
    package = Path(bitsandbytes.__file__).parent
    assert any(line.strip().startswith(str(package)) and "libbitsandbytes" in line for line in lines)
    assert any(line.split()[:3] == ["cpu", "built", "available"] for line in lines)
    assert any(line.startswith("self-test cpu: OK") for line in lines)
    if not __import__("torch").cuda.is_available():
        assert "No CUDA, ROCm, or XPU detected; CPU library loaded successfully." in lines
    else:
        assert any(line.startswith("8-bit optimizer cuda: OK") for line in lines)
    assert lines[-1] == "SUCCESS!"


def test_python_m_bitsandbytes_exits_1_when_a_self_test_fails(monkeypatch, capsys):
    from bitsandbytes.diagnostics import main as report

    def failing_self_test(device):
        raise AssertionError("nf4 codes differ from the pure-torch reference")

    monkeypatch.setattr(report, "self_test", failing_self_test)
    assert report.main() == 1
    out = capsys.readouterr().out
    assert "self-test cpu: FAILED, AssertionError: nf4 codes differ" in out
    assert out.splitlines()[-1].startswith("FAILED")


def test_optimizer_check_takes_an_8bit_step():
    from bitsandbytes.diagnostics import main as report

    assert "Adam8bit step changed the parameter" in report.optimizer_step("cpu")


def test_import_without_gpu_is_silent():
    result = run_python("import logging, warnings\nwarnings.simplefilter('error')\nimport bitsandbytes")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


@pytest.mark.parametrize("torch_build", ["cuda", "hip"])
def test_cuda_version_override_as_upstream(monkeypatch, caplog, torch_build):
    """BNB_CUDA_VERSION (BNB_ROCM_VERSION on ROCm): digits only, reported, ignored on a CPU-only torch."""
    import torch

    from bitsandbytes import _cuda_override

    variable = "BNB_ROCM_VERSION" if torch_build == "hip" else "BNB_CUDA_VERSION"
    monkeypatch.setattr(torch.version, "cuda", "12.8" if torch_build == "cuda" else None)
    monkeypatch.setattr(torch.version, "hip", "7.0" if torch_build == "hip" else None)
    monkeypatch.delenv("BNB_CUDA_VERSION", raising=False)
    monkeypatch.delenv("BNB_ROCM_VERSION", raising=False)
    assert _cuda_override.read_override() is None

    monkeypatch.setenv(variable, "124")
    assert _cuda_override.read_override() == (variable, "124")
    with caplog.at_level("WARNING", logger="bitsandbytes.cextension"):
        _cuda_override.log_override()
    assert f"WARNING: {variable}=124 environment variable detected" in caplog.text
    assert f"unset {variable}" in caplog.text

    monkeypatch.setenv(variable, "12.4")
    with pytest.raises(RuntimeError, match="digits only"):
        _cuda_override.read_override()
    caplog.clear()
    with caplog.at_level("ERROR", logger="bitsandbytes.cextension"):
        _cuda_override.log_override()  # at import: logged, never raised
    assert "digits only" in caplog.text

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    assert _cuda_override.read_override() is None  # a CPU-only torch never reads it


def test_python_m_bitsandbytes_fails_on_a_malformed_cuda_version_override(monkeypatch, capsys):
    import torch

    from bitsandbytes.diagnostics import main as report

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setenv("BNB_CUDA_VERSION", "cuda12")
    monkeypatch.setattr(report, "self_test", lambda device: "skipped")
    assert report.main() == 1
    assert "ERROR: BNB_CUDA_VERSION='cuda12': value must be digits only" in capsys.readouterr().out


def test_license_and_metadata_declared_for_sdist_and_wheel():
    tomllib = pytest.importorskip("tomllib")

    root = Path(__file__).resolve().parents[2]
    license_text = (root / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "the bitsandbytes-native authors" in license_text
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "bitsandbytes"
    assert project["project"]["license"] == "MIT" and project["project"]["license-files"] == ["LICENSE"]
    assert not any(req.startswith("torch") for req in project["build-system"]["requires"])
    assert any(req.startswith("torch") for req in project["project"]["dependencies"])
