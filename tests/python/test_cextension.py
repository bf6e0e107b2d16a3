"""bitsandbytes.cextension, cuda_specs, consts and third-party backend loading (python_api.md sections 1 and 7)."""

import ctypes
import logging
import platform
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import bitsandbytes
from bitsandbytes import _C, cextension, consts, cuda_specs

CUDA_BUILT = dict((name, built) for name, built, _ in _C.backends())["cuda"]


def test_submodules_are_package_attributes():
    for name in ("cextension", "cuda_specs", "consts", "utils", "backends", "functional", "nn", "optim", "autograd"):
        assert hasattr(bitsandbytes, name), name
    assert bitsandbytes.adam is bitsandbytes.optim.adam


def test_consts_name_the_package_and_library_suffix():
    assert consts.PACKAGE_DIR == Path(bitsandbytes.__file__).parent
    expected_suffix = {"Linux": ".so", "Darwin": ".dylib", "Windows": ".dll"}.get(platform.system(), ".so")
    assert consts.DYNAMIC_LIBRARY_SUFFIX == expected_suffix
    assert cextension.NATIVE_LIBRARY_PATH.is_file()


def test_lib_exposes_the_c_abi():
    lib = cextension.lib
    assert lib.bnb_version() == bitsandbytes.__version__.encode()
    assert lib["bnb_op_count"]() == len(_C.ops())
    assert lib.bnb_op_name(0) == _C.ops()[0].encode()
    assert lib.bnb_abi_version() == _C.abi_version()
    assert type(lib).compiled_with_cuda is CUDA_BUILT
    assert isinstance(lib, cextension.CudaBNBNativeLibrary if CUDA_BUILT else cextension.BNBNativeLibrary)


@pytest.mark.parametrize("name", ["cfill_fp32", "cigemm", "get_context", "has_avx512bf16_cpu", "malloc"])
def test_missing_function_raises_runtime_error_only_when_called(name):
    function = getattr(cextension.lib, name)  # access alone must not raise (upstream code probes with getattr)
    assert cextension.lib[name] is function
    with pytest.raises(RuntimeError, match=f"Method '{name}' not available in .* version of bitsandbytes"):
        function()


def test_protocol_names_are_not_native_lookups():
    with pytest.raises(AttributeError):
        cextension.lib.__deepcopy__  # noqa: B018


@pytest.mark.skipif(CUDA_BUILT, reason="the native library of this build has a CUDA backend")
def test_cpu_only_build_has_no_managed_memory_functions():
    with pytest.raises(RuntimeError, match="Method 'cget_managed_ptr' not available in CPU-only version"):
        cextension.lib.cget_managed_ptr(ctypes.c_size_t(64))


@pytest.mark.skipif(not CUDA_BUILT or torch.cuda.is_available(), reason="needs a CUDA build on a machine without CUDA")
def test_managed_memory_functions_report_the_c_abi_error_without_a_device():
    with pytest.raises(RuntimeError, match="cget_managed_ptr failed: device: .*no device"):
        cextension.lib.cget_managed_ptr(ctypes.c_size_t(64))


@pytest.mark.skipif(not (CUDA_BUILT and torch.cuda.is_available()), reason="needs the CUDA backend and a CUDA device")
def test_managed_pointer_is_usable_memory_and_prefetches():
    lib = cextension.lib
    address = lib.cget_managed_ptr(ctypes.c_size_t(4096))
    assert address
    # Upstream's convention: device index, or -1 for the host.
    lib.cprefetch(ctypes.c_void_p(address), ctypes.c_size_t(4096), ctypes.c_int32(torch.cuda.current_device()))
    lib.cprefetch(ctypes.c_void_p(address), ctypes.c_size_t(4096), ctypes.c_int32(-1))
    torch.cuda.synchronize()
    assert ctypes.string_at(address, 16) == bytes(16)  # zero-filled and host-readable


def test_backend_name_follows_torch():
    if torch.version.hip:
        expected = "ROCm"
    elif torch.cuda.is_available():
        expected = "CUDA"
    elif torch._C._has_xpu:
        expected = "XPU"
    else:
        expected = "CPU"
    assert cextension.BNB_BACKEND == expected
    assert cextension.HIP_ENVIRONMENT is bool(torch.version.hip)
    if not torch.version.hip:
        assert cextension.ROCM_GPU_ARCH == "unknown"


SPECS = cuda_specs.CUDASpecs(highest_compute_capability=(9, 0), cuda_version_string="124", cuda_version_tuple=(12, 4))


def test_cuda_library_path_is_the_single_native_library(monkeypatch):
    monkeypatch.delenv("BNB_CUDA_VERSION", raising=False)
    monkeypatch.delenv("BNB_ROCM_VERSION", raising=False)
    assert cextension.get_cuda_bnb_library_path(SPECS) == cextension.NATIVE_LIBRARY_PATH
    assert cextension.get_xpu_bnb_library_path() == cextension.NATIVE_LIBRARY_PATH
    with pytest.raises(TypeError, match="cuda_specs must be a bitsandbytes.cuda_specs.CUDASpecs"):
        cextension.get_cuda_bnb_library_path("124")


def test_version_override_must_be_digits(monkeypatch, caplog):
    variable = "BNB_ROCM_VERSION" if torch.version.hip else "BNB_CUDA_VERSION"
    monkeypatch.setenv(variable, "12.4")
    with pytest.raises(RuntimeError, match="digits only"):
        cextension.get_cuda_bnb_library_path(SPECS)
    monkeypatch.setenv(variable, "124")
    with caplog.at_level(logging.WARNING, logger="bitsandbytes.cextension"):
        assert cextension.get_cuda_bnb_library_path(SPECS) == cextension.NATIVE_LIBRARY_PATH
    assert "selects nothing" in caplog.text


def test_missing_library_file_is_a_runtime_error(monkeypatch, tmp_path):
    monkeypatch.setattr(cextension, "NATIVE_LIBRARY_PATH", tmp_path / "libbitsandbytes.so")
    with pytest.raises(RuntimeError, match=f"No compatible {cextension.BNB_BACKEND} binary found at {tmp_path}"):
        cextension.get_native_library()


def test_compact_versions_split_like_upstream_file_names():
    assert cextension._split_cuda_version("118", is_hip=False) == (11, 8)
    assert cextension._split_cuda_version("132", is_hip=False) == (13, 2)
    assert cextension._split_cuda_version("72", is_hip=True) == (7, 2)
    assert cextension._split_cuda_version("713", is_hip=True) == (7, 13)
    with pytest.raises(ValueError, match="compact must be a CUDA version"):
        cextension._split_cuda_version("12", is_hip=False)
    if not torch.version.hip:
        assert cextension.parse_cuda_version("124") == "12.4"
    assert cextension.parse_cuda_version("unknown") == "unknown"


def test_per_toolkit_libraries_are_found_by_upstream_names(monkeypatch, tmp_path):
    suffix = consts.DYNAMIC_LIBRARY_SUFFIX
    for name in ("cuda118", "cuda124", "cuda130", "cudaX", "cpu"):
        (tmp_path / f"libbitsandbytes_{name}{suffix}").touch()
    monkeypatch.setattr(cextension, "PACKAGE_DIR", tmp_path)
    found = cextension._find_cuda_libs("cuda", is_hip=False)
    assert sorted(found) == [(11, 8), (12, 4), (13, 0)]
    assert found[(12, 4)] == tmp_path / f"libbitsandbytes_cuda124{suffix}"
    if not torch.version.hip:
        assert cextension.get_available_cuda_binary_versions() == ["11.8", "12.4", "13.0"]
    monkeypatch.setattr(cextension, "PACKAGE_DIR", consts.PACKAGE_DIR)
    assert cextension.get_available_cuda_binary_versions() == []  # one library serves every toolkit


def test_error_mock_defers_the_load_error_to_the_first_call():
    missing_dependency = "libcudart.so.12: cannot open shared object file: No such file or directory"
    mock = cextension.ErrorHandlerMockBNBNativeLibrary(missing_dependency)
    function = mock.cquantize_blockwise_fp32  # no error yet
    with pytest.raises(RuntimeError, match=r"(?s)libcudart\.so\.12.*lib\.cquantize_blockwise_fp32\(\)"):
        function()
    other = cextension.ErrorHandlerMockBNBNativeLibrary("undefined symbol: bnb_version")
    with pytest.raises(RuntimeError, match=r"(?s)undefined symbol: bnb_version.*lib\.anything\(\)"):
        other["anything"]()


def test_cuda_specs_without_cuda():
    if torch.version.cuda is None and torch.version.hip is None:
        assert cuda_specs.get_cuda_version_tuple() is None
        assert cuda_specs.get_cuda_version_string() is None
    if not torch.cuda.is_available():
        assert cuda_specs.get_cuda_specs() is None
    assert SPECS.has_imma
    assert not cuda_specs.CUDASpecs((7, 0), "118", (11, 8)).has_imma or bool(torch.version.hip)
    if not torch.version.hip:
        assert cuda_specs.get_rocm_gpu_arch() == "unknown"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_specs_on_a_cuda_machine():
    specs = cuda_specs.get_cuda_specs()
    assert specs.highest_compute_capability == max(cuda_specs.get_compute_capabilities())
    assert specs.cuda_version_tuple == cuda_specs.get_cuda_version_tuple()
    assert specs.cuda_version_string == "".join(map(str, specs.cuda_version_tuple))


def _fake_entry_point(name, load):
    return SimpleNamespace(name=name, load=load)


def test_third_party_backends_are_loaded_and_failures_name_the_backend(monkeypatch):
    import importlib.metadata

    calls = []
    working = _fake_entry_point("working", lambda: (lambda: calls.append("working")))
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [working] if group == "bitsandbytes.backends" else [])
    bitsandbytes._import_backends()
    assert calls == ["working"]

    def broken():
        raise ValueError("boom")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [_fake_entry_point("broken", lambda: broken)])
    with pytest.raises(RuntimeError, match="bitsandbytes: failed to load backend broken: boom"):
        bitsandbytes._import_backends()


def test_native_library_is_found_in_a_wheel_and_in_a_staged_build(tmp_path):
    suffix = cextension.DYNAMIC_LIBRARY_SUFFIX
    assert cextension.native_library_in(tmp_path) == tmp_path / f"libbitsandbytes{suffix}"  # missing: the plain name
    versioned = tmp_path / f"libbitsandbytes{suffix}.0.50.2"
    versioned.write_bytes(b"")
    assert cextension.native_library_in(tmp_path) == versioned
    plain = tmp_path / f"libbitsandbytes{suffix}"
    plain.write_bytes(b"")
    assert cextension.native_library_in(tmp_path) == plain
