"""Codebooks: the 8-bit maps (dynamic, normal, fp8, linear) and the 4-bit tables."""

import itertools

import torch

from .. import _C

# Cache of codebooks by name; "dynamic" is the signed dynamic map, created on the
# device of its first use.
name2qmap: dict[str, torch.Tensor] = {}

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
    if additional_items > 0 and max_exponent_bits < 1:
        # The extra values take the scale of the last exponent, and there is none
        # (upstream fails here as well).
        raise ValueError(
            f"create_dynamic_map: max_exponent_bits must be >= 1 when total_bits > 1, got {max_exponent_bits}"
        )
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
        # Negative when the exponent has more bits than the code (2- to 7-bit maps
        # with max_exponent_bits == total_bits): upstream truncates 2**bits + 1 to
        # one boundary, so that exponent contributes no values.
        append_means(int(2.0**exponent_fraction_bits + 1), exponent)
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
    """The signed dynamic map, cached on the device of its first use (as upstream caches it) unless
    that is the meta device: a meta map holds no values for any later call to copy."""
    if "dynamic" in name2qmap:
        return name2qmap["dynamic"]
    code = create_dynamic_map().to(device)
    if code.device.type != "meta":
        name2qmap["dynamic"] = code
    return code
