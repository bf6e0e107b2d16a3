"""The functional API of bitsandbytes (python_api.md section 2).

Codebooks, the QuantState that travels with a quantized tensor, and blockwise
8-bit and 4-bit (NF4/FP4) quantization. Numeric work goes through
``torch.ops.bitsandbytes.*`` only; this module chooses defaults, checks
arguments, nests statistics and keeps the state-dict format of upstream.
"""

import ctypes
import itertools
from typing import Any, Iterable, Optional

import torch

from . import _C
from ._ops import FLOAT_DTYPES, FOURBIT_BLOCKSIZES, FOURBIT_QUANT_TYPES
from .backends.cuda_reduction import cuda_mean_float32
from .utils import pack_dict_to_tensor, unpack_tensor_to_dict

# Cache of codebooks by name; "dynamic" is the signed dynamic map, created on the
# device of its first use.
name2qmap: dict[str, torch.Tensor] = {}

NESTED_4BIT_BLOCKSIZE = 256

# ---- codebooks --------------------------------------------------------------------------------


# Read once at import: torch.compile traces Python constants, not calls into _C.
_NATIVE_CODEBOOKS = {name: tuple(_C.codebook(name)) for name in ("dynamic_signed", "dynamic_unsigned", "nf4", "fp4")}


def _native_codebook(name: str, device=None) -> torch.Tensor:
    return torch.tensor(_NATIVE_CODEBOOKS[name], dtype=torch.float32, device=device)


def _float32(value: float) -> float:
    return torch.tensor(value, dtype=torch.float32).item()


def _torch_float32_linspace(start: float, end: float, steps: int) -> torch.Tensor:
    """``torch.linspace(start, end, steps)`` in float32, bit for bit, on any torch.

    torch computes element i as fma(step, i, start) for i < steps // 2 and as
    fma(-step, steps - 1 - i, end) above, with step = (end - start) / (steps - 1)
    in float32. float64 holds those products and sums exactly, so one rounding to
    float32 reproduces the fma (formats.md 1.4).
    """
    start32, end32 = _float32(start), _float32(end)
    if steps == 1:
        return torch.tensor([start32], dtype=torch.float32)
    step = _float32(_float32(end32 - start32) / _float32(steps - 1))
    index = torch.arange(steps, dtype=torch.float64)
    from_start = start32 + step * index
    from_end = end32 - step * (steps - 1 - index)
    return torch.where(index < steps // 2, from_start, from_end).to(torch.float32)


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) -> torch.Tensor:
    """The "dynamic tree" 8-bit map: a decimal exponent plus a linear fraction.

    The default maps are the native tables (what upstream's checkpoints contain);
    other parameters are constructed as upstream does (formats.md 1.4).
    """
    if max_exponent_bits == 7 and total_bits == 8 and signed in (True, False):
        return _native_codebook("dynamic_signed" if signed else "dynamic_unsigned")
    return _build_dynamic_map(signed, max_exponent_bits, total_bits)


def _build_dynamic_map(signed: bool, max_exponent_bits: int, total_bits: int) -> torch.Tensor:
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    values: list[float] = []

    def append_means(fraction_items: int, exponent: int) -> None:
        boundaries = _torch_float32_linspace(0.1, 1.0, fraction_items)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        scale = torch.tensor(10.0 ** (exponent - (max_exponent_bits - 1)), dtype=torch.float32)
        values.extend((scale * means).tolist())
        if signed:
            values.extend((-scale * means).tolist())

    for exponent in range(max_exponent_bits):
        exponent_fraction_bits = exponent + non_sign_bits - max_exponent_bits + (0 if signed else 1)
        append_means(2**exponent_fraction_bits + 1, exponent)
    if additional_items > 0:
        # Upstream fills these with the scale of the last exponent.
        append_means(additional_items + 1, max_exponent_bits - 1)
    values += [0.0, 1.0]
    if len(values) != 2**total_bits:
        raise ValueError(
            f"create_dynamic_map(signed={signed}, max_exponent_bits={max_exponent_bits}, total_bits={total_bits}) "
            f"yields {len(values)} values instead of 2**total_bits = {2**total_bits}"
        )
    values += [0.0] * (256 - len(values))
    values.sort()
    return torch.tensor(values, dtype=torch.float32)


def create_normal_map(offset=0.9677083, use_extra_value=True) -> torch.Tensor:
    """The NormalFloat map: standard-normal quantiles, zero-padded to 256 and normalised."""
    try:
        from scipy.stats import norm
    except ImportError as error:
        raise ImportError(
            "Scipy is required for `create_normal_map`. Install `bitsandbytes` with the `[test]` extra."
        ) from error

    positive_count = 9 if use_extra_value else 8
    positive = norm.ppf(torch.linspace(offset, 0.5, positive_count)[:-1]).tolist()
    negative = (-norm.ppf(torch.linspace(offset, 0.5, 8)[:-1])).tolist()
    zeros = [0.0] * (256 - len(positive) - len(negative))
    values = torch.tensor(positive + zeros + negative, dtype=torch.float32).sort().values
    return values / values.max()


def create_fp8_map(signed=True, exponent_bits=5, precision_bits=2, total_bits=8) -> torch.Tensor:
    """Every value of a small float format (sign, exponent, mantissa), sorted and normalised.

    The exponent bias is 2**(exponent_bits - 1); a normal value with exponent field
    e is (1 + fraction) * 2**(bias + 1 - e) and a subnormal one fraction * 2**-bias,
    as upstream computes them, before dividing by the largest value.
    """
    has_sign = 1 if signed else 0
    if exponent_bits + precision_bits != total_bits - has_sign:
        raise ValueError(
            f"exponent_bits + precision_bits must equal total_bits - {has_sign} (sign bit), got "
            f"{exponent_bits} + {precision_bits} and total_bits={total_bits}"
        )
    bias = 2 ** (exponent_bits - 1)
    values: list[float] = []
    for exponent_field in range(2**exponent_bits):
        for mantissa_bits in itertools.product([0, 1], repeat=precision_bits):
            fraction = sum(bit * 2 ** -(position + 1) for position, bit in enumerate(mantissa_bits))
            if exponent_field == 0:
                value = fraction * 2**-bias
            else:
                value = (1 + fraction) * 2 ** -(exponent_field - bias - 1)
            values.append(value)
            if signed:
                values.append(-value)
    values += [0.0] * (256 - len(values))
    code = torch.tensor(sorted(values), dtype=torch.float32)
    return code / code.max()


def create_linear_map(signed=True, total_bits=8, add_zero=True) -> torch.Tensor:
    """Evenly spaced values in [-1, 1] (or [0, 1]); fewer than 256 are padded with zeros in the middle."""
    lowest = -1.0 if signed else 0.0
    count = 2**total_bits
    if (add_zero or total_bits < 8) and signed:
        # An odd count puts a value exactly on zero.
        count -= 1
    values = torch.linspace(lowest, 1.0, count)
    gap = 256 - values.numel()
    if gap == 0:
        return values
    half = values.numel() // 2
    return torch.cat([values[:half], torch.zeros(gap), values[half:]])


_INT4_VALUES = [7, 6, 5, 4, 3, 2, 1, 0, 0, -1, -2, -3, -4, -5, -6, -7]
# AbnormalFloat4 for blocksize 64, in ascending order (get_4bit_type returns it reversed).
_AF4_BLOCKSIZE_64_VALUES = [
    -1.0, -0.69441008, -0.51243739, -0.3736951, -0.25607552, -0.14982478, -0.04934812, 0.0,
    0.04273164, 0.12934483, 0.21961274, 0.31675666, 0.42563882, 0.55496234, 0.72424863, 1.0,
]  # fmt: skip


def get_4bit_type(typename, device=None, blocksize=64) -> torch.Tensor:
    """The 16-entry float32 codebook of a 4-bit type ("nf4", "fp4", "int4", "af4"), scaled to [-1, 1]."""
    if device is None:
        device = "cuda"
    if typename in ("nf4", "fp4"):
        data = _NATIVE_CODEBOOKS[typename]
    elif typename == "int4":
        data = _INT4_VALUES
    elif typename == "af4":
        if blocksize != 64:
            raise NotImplementedError("4-bit AbnormalFloats currently only support blocksize 64.")
        data = _AF4_BLOCKSIZE_64_VALUES[::-1]
    else:
        raise NotImplementedError(f"Typename {typename} not supported")
    table = torch.tensor(data, dtype=torch.float32, device=device)
    return table.div_(table.abs().max())


def _dynamic_map_on(device: torch.device) -> torch.Tensor:
    if "dynamic" not in name2qmap:
        name2qmap["dynamic"] = create_dynamic_map().to(device)
    return name2qmap["dynamic"]


# ---- pointers, devices, streams ------------------------------------------------------------


def is_on_gpu(tensors: Iterable[Optional[torch.Tensor]]) -> bool:
    """True when the tensors share one device; None entries and paged tensors are ignored.

    Raises RuntimeError when CPU and accelerator tensors are mixed or when two
    accelerators appear.
    """
    tensors = list(tensors)
    devices = {
        (t.device.type, t.device.index)
        for t in tensors
        if t is not None and not getattr(t, "is_paged", False)
    }
    described = [(tuple(t.shape), t.device) for t in tensors if t is not None]
    on_cpu = {device for device in devices if device[0] == "cpu"}
    if on_cpu and len(on_cpu) != len(devices):
        raise RuntimeError(f"Input tensors need to be on the same device, but found: {described}")
    if len(devices) > 1:
        raise RuntimeError(
            f"Input tensors need to be on the same GPU, but found the following tensor and device "
            f"combinations: {described}"
        )
    return True


def get_ptr(A: Optional[torch.Tensor]) -> Optional[ctypes.c_void_p]:
    """The address of A's first element as a ctypes pointer (None for None)."""
    if A is None:
        return None
    return ctypes.c_void_p(A.data_ptr())


def _get_tensor_stream(tensor: torch.Tensor) -> ctypes.c_void_p:
    """The current stream of the tensor's device as a raw handle; NULL on the CPU."""
    if tensor.device.type == "cuda":
        return ctypes.c_void_p(torch.cuda.current_stream(tensor.device).cuda_stream)
    if tensor.device.type == "xpu":
        return ctypes.c_void_p(torch.xpu.current_stream(tensor.device).sycl_queue)
    return ctypes.c_void_p()


# ---- QuantState ---------------------------------------------------------------------------------


def _dtype_name(dtype: torch.dtype) -> str:
    # "torch.bfloat16" -> "bfloat16", the spelling of upstream's state dicts.
    return str(dtype).strip("torch.")


def _dtype_from_name(name: str, key: str) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"QuantState.from_dict: {key} must name a torch dtype such as 'bfloat16', got {name!r}")
    return dtype


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """allclose needs equal dtypes and broadcastable shapes; states differ otherwise."""
    return a.dtype == b.dtype and a.shape == b.shape and a.device == b.device


class QuantStateKeyError(ValueError, AssertionError):
    """Unknown keys in QuantState.from_dict. Upstream asserts here, so callers that
    catch AssertionError keep working; it is a ValueError like every other bad input."""


class QuantState:
    """Everything needed to dequantize a blockwise-quantized tensor."""

    valid_quant_types = ("fp4", "nf4")
    valid_qs_type_keys = [f"bitsandbytes__{x}" for x in valid_quant_types]
    valid_qs_keys = [
        "absmax",
        "quant_map",
        "nested_absmax",
        "nested_quant_map",
        "quant_state",
        "quant_type",
        "blocksize",
        "dtype",
        "shape",
        "nested_blocksize",
        "nested_dtype",
        "nested_offset",
    ]

    def __init__(
        self,
        absmax,
        shape=None,
        code=None,
        blocksize=None,
        quant_type=None,
        dtype=None,
        offset=None,
        state2=None,
    ):
        self.absmax = absmax
        self.shape = shape
        self.code = code
        self.dtype = dtype
        self.blocksize = blocksize
        self.quant_type = quant_type
        self.offset = offset
        self.state2 = state2
        self.nested = state2 is not None

    def __getattr__(self, name):
        # Lets FSDP resolve the state-dict key `weight.quant_state.bitsandbytes__nf4`
        # by attribute traversal. Only reached for attributes that do not exist.
        if name.startswith("bitsandbytes__"):
            packed = self.as_dict(packed=True)
            key = f"quant_state.{name}"
            if key in packed:
                return packed[key]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __getitem__(self, idx):
        """The legacy list view [absmax, shape, dtype, blocksize, nesting, quant_type]."""
        nesting = [self.offset, self.state2] if self.nested else None
        return [self.absmax, self.shape, self.dtype, self.blocksize, nesting, self.quant_type][idx]

    @classmethod
    def from_dict(cls, qs_dict: dict[str, Any], device) -> "QuantState":
        """Rebuilds a 4-bit QuantState from its state-dict entries (packed or unpacked).

        Keys may carry a prefix (``"layer.weight.absmax"``); only the last dotted
        component counts. The caller's dict is not modified.
        """
        packed_keys = [k for k, v in qs_dict.items() if "quant_state" in k and isinstance(v, torch.Tensor)]
        unpacked = any(k.split(".")[-1] == "quant_type" for k in qs_dict)
        if not unpacked:
            if not packed_keys:
                raise ValueError("Expected packed or unpacked quant_state items, found neither")
            if len(packed_keys) != 1 or packed_keys[0].split(".")[-1] not in cls.valid_qs_type_keys:
                raise ValueError(
                    f"There should be exactly one `quant_state` item with ending from {cls.valid_qs_type_keys}.\n"
                    f"Detected {packed_keys}."
                )
        entries = dict(qs_dict)
        if len(packed_keys) == 1:
            entries.update(unpack_tensor_to_dict(entries.pop(packed_keys[0])))
        entries = {k.split(".")[-1]: v for k, v in entries.items()}

        unknown = sorted(set(entries) - set(cls.valid_qs_keys))
        if unknown:
            raise QuantStateKeyError(f"QuantState.from_dict: unexpected keys {unknown}; valid keys are {cls.valid_qs_keys}")
        required = ["quant_type", "absmax", "blocksize", "quant_map", "dtype", "shape"]
        if "nested_absmax" in entries:
            required += ["nested_blocksize", "nested_quant_map", "nested_dtype", "nested_offset"]
        missing = [key for key in required if key not in entries]
        if missing:
            raise ValueError(f"QuantState.from_dict: missing keys {missing}")
        if entries["quant_type"] not in cls.valid_quant_types:
            raise ValueError(
                f"QuantState.from_dict: quant_type must be one of {cls.valid_quant_types}, got {entries['quant_type']!r}"
            )

        offset, state2 = None, None
        if "nested_absmax" in entries:
            offset = torch.tensor(float(entries["nested_offset"]), dtype=torch.float32, device=device)
            state2 = cls(
                absmax=entries["nested_absmax"].to(device),
                blocksize=entries["nested_blocksize"],
                code=entries["nested_quant_map"].to(device),
                dtype=_dtype_from_name(entries["nested_dtype"], "nested_dtype"),
            )
        shape = entries["shape"]
        return cls(
            quant_type=entries["quant_type"],
            absmax=entries["absmax"].to(device),
            blocksize=entries["blocksize"],
            code=entries["quant_map"].to(device),
            dtype=_dtype_from_name(entries["dtype"], "dtype"),
            shape=torch.Size(shape) if shape is not None else None,
            offset=offset,
            state2=state2,
        )

    def as_dict(self, packed=False) -> dict[str, Any]:
        """The state-dict entries of this state (formats.md 3.4).

        packed=True keeps only tensors plus one uint8 tensor
        ``quant_state.bitsandbytes__<quant_type>`` holding the JSON of the rest,
        byte-identical to upstream's. 8-bit states (quant_type None) are never packed.
        """
        entries: dict[str, Any] = {
            "quant_type": self.quant_type,
            "absmax": self.absmax,
            "blocksize": self.blocksize,
            "quant_map": self.code,
            "dtype": _dtype_name(self.dtype),
            "shape": tuple(self.shape) if self.shape is not None else None,
        }
        if self.nested:
            entries.update(
                {
                    "nested_absmax": self.state2.absmax,
                    "nested_blocksize": self.state2.blocksize,
                    "nested_quant_map": self.state2.code.clone(),
                    "nested_dtype": _dtype_name(self.state2.dtype),
                    "nested_offset": self.offset.item(),
                }
            )
        if not packed or self.quant_type is None:
            return entries
        tensors = {k: v for k, v in entries.items() if isinstance(v, torch.Tensor)}
        others = {k: v for k, v in entries.items() if not isinstance(v, torch.Tensor)}
        tensors[f"quant_state.bitsandbytes__{self.quant_type}"] = pack_dict_to_tensor(others)
        return tensors

    def to(self, device) -> None:
        """Moves the state's tensors to `device`, in place."""
        self.code = self.code.to(device)
        self.absmax = self.absmax.to(device)
        if self.nested:
            self.offset = self.offset.to(device)
            self.state2.absmax = self.state2.absmax.to(device)
            self.state2.code = self.state2.code.to(device)

    def __eq__(self, other) -> bool:
        if not isinstance(other, QuantState):
            return False
        return (
            _same_layout(self.absmax, other.absmax)
            and torch.allclose(self.absmax, other.absmax, atol=1e-6)
            and self.shape == other.shape
            and _same_layout(self.code, other.code)
            and torch.allclose(self.code, other.code, atol=1e-6)
            and self.dtype == other.dtype
            and self.blocksize == other.blocksize
            and self.quant_type == other.quant_type
            and (
                self.offset == other.offset
                if self.offset is not None and other.offset is not None
                else self.offset is other.offset
            )
            and (
                self.state2 == other.state2
                if self.state2 is not None and other.state2 is not None
                else self.state2 is other.state2
            )
        )


def _nested_offset(absmax: torch.Tensor) -> torch.Tensor:
    """absmax.mean(), rounded as upstream's CUDA torch.mean rounds it, on every device.

    The last bit of this offset is stored in checkpoints; torch sums in a
    different order on the CPU, so other devices replay the CUDA order.
    """
    if absmax.device.type == "cuda":
        return absmax.mean()
    return cuda_mean_float32(absmax)


def _denested_absmax(quant_state: QuantState) -> torch.Tensor:
    """The float32 per-block absmax, de-nesting compressed statistics (formats.md 3.3)."""
    if not quant_state.nested:
        return quant_state.absmax
    absmax = dequantize_blockwise(quant_state.absmax, quant_state.state2)
    absmax += quant_state.offset
    return absmax if absmax.dtype == torch.float32 else absmax.float()


# ---- blockwise 8-bit ------------------------------------------------------------------------


def quantize_blockwise(
    A: torch.Tensor,
    code: Optional[torch.Tensor] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=4096,
    nested=False,
) -> tuple[torch.Tensor, QuantState]:
    """Quantizes A blockwise to 8-bit indices into `code` (default: the signed dynamic map).

    Returns the uint8 codes (A's shape) and a QuantState. nested=True quantizes the
    absmax too (minus its mean, with the same blocksize). `out` / `absmax` receive
    copies of the results (legacy arguments).
    """
    if blocksize <= 0:
        raise ValueError(f"blocksize must be positive, got {blocksize}")
    if A.dtype not in FLOAT_DTYPES:
        raise ValueError(f"Blockwise quantization only supports 16/32-bit floats, but got {A.dtype}")
    if code is None:
        code = _dynamic_map_on(A.device)

    quantized, block_absmax = torch.ops.bitsandbytes.quantize_blockwise.default(A, code.to(A.device), blocksize)
    if nested:
        offset = _nested_offset(block_absmax)
        block_absmax -= offset
        quantized_absmax, state2 = quantize_blockwise(block_absmax, blocksize=blocksize, nested=False)
        quant_state = QuantState(
            absmax=quantized_absmax,
            code=code.to(A.device, copy=True),
            blocksize=blocksize,
            dtype=A.dtype,
            offset=offset,
            state2=state2,
        )
    else:
        quant_state = QuantState(
            absmax=block_absmax, code=code.to(A.device, copy=True), blocksize=blocksize, dtype=A.dtype
        )

    if out is not None:
        quantized = out.copy_(quantized)
    if absmax is not None:
        quant_state.absmax = absmax.copy_(quant_state.absmax)
    return quantized, quant_state


def dequantize_blockwise(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    code: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize: int = 4096,
    nested=False,
) -> torch.Tensor:
    """Dequantizes 8-bit blockwise codes: ``code[A] * absmax[block]`` in quant_state.dtype.

    Without a quant_state, `absmax` (and optionally `code`, `blocksize`) describe
    it and the output is float32. `nested` is accepted for compatibility and ignored:
    the state says whether its absmax is nested.
    """
    if quant_state is None and absmax is None:
        raise ValueError("dequantize_blockwise requires either quant_state or absmax")
    if A.dtype != torch.uint8:
        raise ValueError(f"A must be uint8, got {A.dtype}")
    if quant_state is None:
        if code is None:
            code = _dynamic_map_on(A.device)
        quant_state = QuantState(absmax=absmax, code=code, blocksize=blocksize, dtype=torch.float32)

    block_absmax = _denested_absmax(quant_state)
    code_on_device = quant_state.code.to(A.device)
    if out is not None:
        torch.ops.bitsandbytes.dequantize_blockwise.out(
            A, block_absmax, code_on_device, quant_state.blocksize, quant_state.dtype, out=out
        )
        return out
    return torch.ops.bitsandbytes.dequantize_blockwise.default(
        A, block_absmax, code_on_device, quant_state.blocksize, quant_state.dtype
    )


# ---- 4-bit NF4 / FP4 ----------------------------------------------------------------------------


def _check_4bit_arguments(blocksize, quant_type: str, dtype: torch.dtype, direction: str) -> None:
    if blocksize not in FOURBIT_BLOCKSIZES:
        raise ValueError(f"invalid blocksize {blocksize}: must be one of {FOURBIT_BLOCKSIZES}")
    if quant_type not in FOURBIT_QUANT_TYPES:
        raise ValueError(f"quant_type must be 'nf4' or 'fp4', got {quant_type!r}")
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"Blockwise 4bit {direction} only supports 16/32-bit floats, but got {dtype}")


def quantize_4bit(
    A: torch.Tensor,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    compress_statistics=False,
    quant_type="fp4",
    quant_storage=torch.uint8,
) -> tuple[torch.Tensor, QuantState]:
    """Quantizes A to packed 4-bit codes (two per byte) with one absmax per block.

    Returns the packed storage ``[(n + 1) // (2 * itemsize), 1]`` of dtype
    quant_storage and the QuantState. compress_statistics=True quantizes the
    absmax once more: its mean is subtracted and the rest is quantized 8-bit
    blockwise (blocksize 256, signed dynamic map). blocksize None means 64.
    """
    if blocksize is None:
        blocksize = 64
    _check_4bit_arguments(blocksize, quant_type, A.dtype, "quantization")
    packed, block_absmax = torch.ops.bitsandbytes.quantize_4bit.default(A, blocksize, quant_type, quant_storage)
    code = get_4bit_type(quant_type, device=A.device)

    if compress_statistics:
        offset = _nested_offset(block_absmax)
        quantized_absmax, state2 = quantize_blockwise(block_absmax - offset, blocksize=NESTED_4BIT_BLOCKSIZE)
        state = QuantState(
            absmax=quantized_absmax,
            shape=A.shape,
            dtype=A.dtype,
            blocksize=blocksize,
            code=code,
            quant_type=quant_type,
            offset=offset,
            state2=state2,
        )
    else:
        state = QuantState(
            absmax=block_absmax, shape=A.shape, dtype=A.dtype, blocksize=blocksize, code=code, quant_type=quant_type
        )

    if out is not None:
        packed = out.copy_(packed)
    if absmax is not None:
        state.absmax = absmax.copy_(state.absmax)
    return packed, state


def quantize_fp4(
    A: torch.Tensor,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    compress_statistics=False,
    quant_storage=torch.uint8,
):
    return quantize_4bit(A, absmax, out, blocksize, compress_statistics, "fp4", quant_storage)


def quantize_nf4(
    A: torch.Tensor,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    compress_statistics=False,
    quant_storage=torch.uint8,
):
    return quantize_4bit(A, absmax, out, blocksize, compress_statistics, "nf4", quant_storage)


def dequantize_4bit(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
    quant_type="fp4",
) -> torch.Tensor:
    """Dequantizes packed 4-bit codes to quant_state.dtype and quant_state.shape.

    Without a quant_state, `absmax` and `out` describe it (shape and dtype from
    `out`). A packed weight passed transposed (``A.shape[0] == 1``) gives a
    transposed result, as upstream does for backward compatibility.
    """
    if blocksize is None:
        blocksize = 64
    if quant_state is None:
        if absmax is None or out is None:
            raise ValueError("dequantize_4bit requires both absmax and out when quant_state is not provided")
        quant_state = QuantState(
            absmax=absmax, shape=out.shape, dtype=out.dtype, blocksize=blocksize, quant_type=quant_type
        )
    _check_4bit_arguments(quant_state.blocksize, quant_state.quant_type, quant_state.dtype, "dequantization")

    block_absmax = _denested_absmax(quant_state)
    shape = list(quant_state.shape)
    if out is not None:
        torch.ops.bitsandbytes.dequantize_4bit.out(
            A, block_absmax, quant_state.blocksize, quant_state.quant_type, shape, quant_state.dtype, out=out
        )
    else:
        out = torch.ops.bitsandbytes.dequantize_4bit.default(
            A, block_absmax, quant_state.blocksize, quant_state.quant_type, shape, quant_state.dtype
        )
    if A.shape[0] == 1:
        return out.t()
    return out


def dequantize_fp4(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
) -> torch.Tensor:
    return dequantize_4bit(A, quant_state, absmax, out, blocksize, "fp4")


def dequantize_nf4(
    A: torch.Tensor,
    quant_state: Optional[QuantState] = None,
    absmax: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    blocksize=None,
) -> torch.Tensor:
    return dequantize_4bit(A, quant_state, absmax, out, blocksize, "nf4")


# ---- 4-bit inference matmul (gemv_4bit) -------------------------------------------------------


def gemv_4bit(
    A: torch.Tensor,
    B: torch.Tensor,
    out: Optional[torch.Tensor] = None,
    transposed_A=False,
    transposed_B=False,
    state: Optional[QuantState] = None,
) -> torch.Tensor:
    """A @ W.T for a packed 4-bit weight W described by `state` (upstream's gemv_4bit).

    A holds one row (or a few) of length K = state.shape[1]; B is the packed weight
    in its [X, 1] or transposed [1, X] form. The transposed flags are accepted for
    compatibility and ignored, as upstream does.
    """
    if state is None:
        raise ValueError("state cannot be None. gemv_4bit() requires the state from quantize_4bit()")
    absmax = _denested_absmax(state)
    shape = list(state.shape)
    if out is not None:
        torch.ops.bitsandbytes.gemv_4bit.out(A, B, shape, absmax, state.code, state.blocksize, out=out)
        return out
    return torch.ops.bitsandbytes.gemv_4bit.default(A, B, shape, absmax, state.code, state.blocksize)
