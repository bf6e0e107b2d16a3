"""bitsandbytes: k-bit quantization for PyTorch, a C++/CUDA drop-in for upstream's API 0.50.

Importing is cheap: it loads the native extension (which registers the
``torch.ops.bitsandbytes`` schemas and the native CPU/CUDA kernels), the fake
kernels for torch.compile and the pure-torch kernels for other devices. It never
initialises CUDA.
"""

# torch's shared libraries must be loaded, and its Python module initialised,
# before the extension that links against them.
import torch  # noqa: F401

try:
    from . import _C
except ImportError as _native_error:
    raise ImportError(
        "bitsandbytes: the native extension bitsandbytes._C failed to load:\n"
        f"    {_native_error}\n"
        "It is built against one torch version and loads only with that one (and needs "
        "libbitsandbytes beside it). Reinstall bitsandbytes against the installed torch: "
        "`pip install --no-build-isolation --force-reinstall .` from the source tree, or "
        "rebuild the staged package with `ninja -C <build dir>`; then run "
        "`python -m bitsandbytes` to check."
    ) from _native_error

from . import _cuda_override, _ops, utils  # noqa: E402  (_ops registers the fake kernels)
from .backends import torch as _torch_kernels  # noqa: E402

_torch_kernels.register_default_kernels()
_cuda_override.log_override()

from . import consts, cuda_specs, cextension  # noqa: E402
from . import functional  # noqa: E402
from . import autograd, nn, optim  # noqa: E402
from .autograd._functions import MatmulLtState, matmul, matmul_4bit  # noqa: E402
from .nn import modules  # noqa: E402
from .optim import adam  # noqa: E402


def _import_backends():
    """Loads third-party backends: each entry point of the group ``bitsandbytes.backends`` is called once.

    A backend that fails to load stops the import, naming itself, because its ops
    would otherwise be silently missing.
    """
    from importlib.metadata import entry_points

    for entry_point in entry_points(group="bitsandbytes.backends"):
        try:
            entry_point.load()()
        except Exception as error:
            raise RuntimeError(f"bitsandbytes: failed to load backend {entry_point.name}: {error}") from error


_import_backends()

__version__ = _C.version()

features = {"multi_backend"}
supported_torch_devices = {"cpu", "cuda", "xpu", "hpu", "npu", "mps"}

__pdoc__ = {
    "libbitsandbytes": False,
    "optim.optimizer.Optimizer8bit": False,
    "optim.optimizer.MockArgs": False,
}
