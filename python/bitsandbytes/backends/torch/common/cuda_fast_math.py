"""float32 arithmetic of upstream's CUDA build (``--use_fast_math``), in torch.

Upstream's quantizers multiply by ``1.0f / absmax``, which fast math compiles to the
PTX instruction ``rcp.approx.ftz.f32``, and flush subnormal operands and results
to zero. Matching upstream's bytes on any device needs both (formats.md section 0).
"""

import functools
from importlib import resources

import torch

RCP_TABLE_FILE = "rcp_approx_f32_delta.bin"
_FLOAT32_TINY = torch.finfo(torch.float32).tiny  # smallest normal float32
_FLOAT32_MANTISSA_BITS = 0x7FFFFF
_FLOAT32_EXPONENT_MASK = 0xFF


# The NaN that CUDA's arithmetic and its conversions to 16 bits write, whatever NaN
# they meet or make (measured on the H200, docs/numerics.md): every mantissa bit set,
# sign clear. Torch on other devices keeps operand payloads or writes others
# (the CPU turns a float32 NaN into bf16 0xffff).
_CANONICAL_NAN_BITS = {torch.float32: (torch.int32, 0x7FFFFFFF), torch.float16: (torch.int16, 0x7FFF),
                       torch.bfloat16: (torch.int16, 0x7FFF)}


def canonical_nan(x: torch.Tensor) -> torch.Tensor:
    """x with every NaN element replaced by CUDA's NaN of x's dtype (a computed result)."""
    int_dtype, bits = _CANONICAL_NAN_BITS[x.dtype]
    nan = torch.tensor(bits, dtype=int_dtype, device=x.device).view(x.dtype)
    return torch.where(torch.isnan(x), nan, x)


def flush_denormal(x: torch.Tensor) -> torch.Tensor:
    """Subnormal float32 values become a zero of the same sign (ftz)."""
    return torch.where(x.abs() < _FLOAT32_TINY, x * 0.0, x)


def ftz_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One float32 multiply with subnormal operands and result flushed."""
    return flush_denormal(flush_denormal(a) * flush_denormal(b))


@functools.lru_cache(maxsize=None)
def _rcp_delta_table_on_cpu() -> torch.Tensor:
    table_file = resources.files("bitsandbytes").joinpath(RCP_TABLE_FILE)
    try:
        raw = table_file.read_bytes()
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"bitsandbytes: {RCP_TABLE_FILE} is missing from the package ({table_file}); it is "
            "installed by the build (csrc/cpu/data). Reinstall bitsandbytes or rebuild the "
            "staged package."
        ) from error
    expected = (_FLOAT32_MANTISSA_BITS + 1) // 4
    if len(raw) != expected:
        raise RuntimeError(f"bitsandbytes: {table_file} holds {len(raw)} bytes, expected {expected}")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


@functools.lru_cache(maxsize=None)
def _rcp_delta_table(device: torch.device) -> torch.Tensor:
    return _rcp_delta_table_on_cpu().to(device)


def rcp_approx_ftz(x: torch.Tensor) -> torch.Tensor:
    """Bit-exact emulation of ``rcp.approx.ftz.f32`` for a float32 tensor.

    For a normal x with a normal reciprocal the result is the correctly rounded
    1/x moved by -1, 0 or +1 ulp; the offset depends only on x's mantissa and
    is read from the table measured on an H100 (2 bits per mantissa,
    shared/golden/README.md). IEEE float32 division is correctly rounded, the same
    value the CPU backend gets by dividing in double and rounding once more.
    """
    bits = x.view(torch.int32)
    exponent = (bits >> 23) & _FLOAT32_EXPONENT_MASK
    mantissa = bits & _FLOAT32_MANTISSA_BITS

    exact = 1.0 / x
    table = _rcp_delta_table(x.device)
    entry = (table[(mantissa >> 2).long()].to(torch.int32) >> (2 * (mantissa & 3))) & 3
    approx = (exact.view(torch.int32) + (entry - 1)).view(torch.float32)

    signed_zero = x * 0.0
    signed_inf = torch.copysign(torch.full_like(x, float("inf")), x)
    result = torch.where(exact.abs() < _FLOAT32_TINY, signed_zero, approx)
    # Zero or a (flushed) subnormal input: infinity of its sign.
    result = torch.where(exponent == 0, signed_inf, result)
    # Infinity gives a zero of its sign, NaN stays NaN.
    not_finite = exponent == _FLOAT32_EXPONENT_MASK
    result = torch.where(not_finite & (mantissa == 0), torch.copysign(torch.zeros_like(x), x), result)
    result = torch.where(not_finite & (mantissa != 0), x, result)
    return result


def fast_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b`` and ``__fdividef(a, b)`` under fast math: ``div.approx.ftz.f32``.

    Measured on the H100 (shared/golden/README.md): the quotient equals
    ``a * rcp.approx(b)`` rounded once, with subnormals flushed.
    """
    return ftz_mul(a, rcp_approx_ftz(b))


def fma_float32(a: torch.Tensor, b, c: torch.Tensor) -> torch.Tensor:
    """``fmaf(a, b, c)`` for float32 operands: the product of two float32 values is exact
    in float64, so only the sum rounds (twice, which differs from one rounding only in
    ties of the double result, far below the optimizers' tolerance of formats.md 8.0)."""
    return (a.double() * torch.as_tensor(b, dtype=torch.float64) + c.double()).to(torch.float32)
