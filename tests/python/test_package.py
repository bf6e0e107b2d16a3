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
    assert lines[0].startswith("bitsandbytes 0.50.2")
    assert lines[1].startswith("torch ")
    assert any(line.split()[:3] == ["cpu", "built", "available"] for line in lines)
    assert any(line.startswith("self-test cpu: OK") for line in lines)


def test_python_m_bitsandbytes_exits_1_when_a_self_test_fails(monkeypatch, capsys):
    main_module = pytest.importorskip("bitsandbytes.__main__")

    def failing_self_test(device):
        raise AssertionError("nf4 codes differ from the pure-torch reference")

    monkeypatch.setattr(main_module, "self_test", failing_self_test)
    assert main_module.main() == 1
    assert "self-test cpu: FAILED, AssertionError: nf4 codes differ" in capsys.readouterr().out
