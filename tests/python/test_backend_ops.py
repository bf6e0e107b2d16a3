"""Every native op on every available device, against the pure-torch oracle and upstream's golden data.

ggml's test-backend-ops idea: the cases of each op are declared once (CASES below) and
run on every device; an op listed by ``bitsandbytes._C.ops()`` without cases fails
here until it gets some. Devices: cpu always, cuda when torch.cuda.is_available().

What runs:
  * test_native_matches_oracle: the device's native kernel, where
    ``_C.backend_supports(device, op)`` and torch has a kernel for the device's
    dispatch key, against the pure-torch kernels of bitsandbytes.backends.torch called
    directly on the CPU. Bit for bit, except the matrix products (gemm_4bit,
    gemv_4bit), which accumulate in their own order and are compared by relative
    error. Elsewhere it is skipped with the reason (today gemm_4bit/gemv_4bit on the
    CPU, which the pure-torch default kernel serves).
  * test_oracle_matches_oracle_on_cpu: the pure-torch kernels on a device other than
    the CPU give the CPU's bytes (they serve devices without native kernels).
  * test_matches_golden: native kernels and oracle against upstream's CUDA outputs
    (shared/golden, read through its manifest), on every device.
Axes: input dtypes fp32/fp16/bf16, every blocksize of ``_C.blocksizes(op)``, nf4/fp4,
nested statistics, 4-bit storage dtypes, sizes around block and launch boundaries,
special values, rounding boundaries, non-contiguous inputs, the ``.out`` overloads.
"""

import dataclasses
import functools
from typing import Callable, Optional

import pytest
import torch
from conftest import (
    DEVICES,
    GOLDEN_OPTIM_STEPS,
    OPTIM_GOLDEN_CASES,
    assert_bitwise_equal,
    assert_optimizer_matches_golden,
    boundary_input,
    golden_dir,
    golden_manifest,
    random_input,
    special_input,
)

from bitsandbytes import _C
from bitsandbytes import functional as F
from bitsandbytes._formats import BLOCKSIZES, FOURBIT_QUANT_TYPES, FOURBIT_STORAGE_DTYPES, NESTED_BLOCKSIZE, blocks_of
from bitsandbytes.backends.torch import KERNELS as ORACLE_KERNELS
from bitsandbytes.backends.torch.common.cuda_reduction import cuda_mean_float32

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
STORAGE_IDS = {torch.uint8: "u8", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
# Around blocks, the quantizers' per-thread group of 8 and the CUDA dequantizers'
# per-warp span (32 lanes x 4 vectors x 4 or 8 elements).
SIZES = (0, 1, 2, 3, 7, 8, 9, 31, 33, 63, 64, 65, 127, 511, 512, 513, 1023, 1024, 1025, 4097, 4099, 8193, 65553)
STORAGE_SIZES = (1, 2, 3, 5, 7, 9, 64, 66, 70, 1001, 4097)
DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}
# Scales of every magnitude, zero, inf and NaN, at the start of a dequantizer's absmax.
SPECIAL_SCALES = (0.0, float("inf"), float("nan"), 1e-38, 3e38, 1e-45, 65504.0, 1.0)
# ||native - oracle|| / ||oracle|| of the matrix products: each rounds its output to
# A's dtype once and accumulates in float32 in its own order.
MATMUL_TOLERANCE = {torch.float32: 4e-5, torch.float16: 4e-3, torch.bfloat16: 2.4e-2}
# Against upstream's output (bf16 models in the golden data).
GOLDEN_MATMUL_TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 1e-3, torch.float32: 1e-3}


def native(op: str, *args, **kwargs):
    """torch.ops.bitsandbytes.<op>, dispatched by the tensors' device ("name.out" picks the overload)."""
    name, _, overload = op.partition(".")
    return getattr(getattr(torch.ops.bitsandbytes, name), overload or "default")(*args, **kwargs)


def oracle(op: str, *args, **kwargs):
    """The pure-torch kernel of the op, called directly (no dispatcher)."""
    return ORACLE_KERNELS[op](*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    # run(call, device) -> the output tensors; call is `native` or `oracle`.
    run: Callable[[Callable, str], list]
    # Bound of the relative error against the oracle; None: bit for bit.
    tolerance: Optional[float] = None
    # Why the native kernel and the oracle are known to disagree here (an open question of the
    # spec): the comparison must fail (xfail) until that is settled, and fails once they agree.
    known_disagreement: Optional[str] = None


def dynamic_code(device, signed: bool = True) -> torch.Tensor:
    return torch.tensor(_C.codebook("dynamic_signed" if signed else "dynamic_unsigned"), device=device)


def fourbit_code(quant_type: str, device) -> torch.Tensor:
    return F.get_4bit_type(quant_type, device=device)


def random_scales(blocks: int, device, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.rand(blocks, generator=generator) * 1000
    special = torch.tensor(SPECIAL_SCALES[:blocks])
    scales[: special.numel()] = special
    return scales.to(device)


def random_bytes(count: int, device, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count,), generator=generator, dtype=torch.uint8).to(device)


def non_contiguous_views(dtype, device) -> list[torch.Tensor]:
    base = random_input(48 * 70, dtype, device).view(48, 70)
    return [base.t(), base[:, ::3], base[::2, 1:]]


def nested(call, absmax: torch.Tensor) -> list[torch.Tensor]:
    """The 8-bit quantization of a 4-bit absmax less its mean (formats.md 3.3)."""
    offset = cuda_mean_float32(absmax.cpu()).to(absmax.device)
    return [offset, *call("quantize_blockwise", absmax - offset, dynamic_code(absmax.device), NESTED_BLOCKSIZE)]


def denested(call, codes, nested_absmax, offset) -> torch.Tensor:
    scales = call("dequantize_blockwise", codes, nested_absmax, dynamic_code(codes.device), NESTED_BLOCKSIZE,
                  torch.float32)
    return scales + offset


# ---- quantize_blockwise -----------------------------------------------------------------------


def quantize_blockwise_cases() -> list[Case]:
    def sizes(dtype, blocksize, call, device):
        code = dynamic_code(device)
        return [t for n in SIZES for t in call("quantize_blockwise", random_input(n, dtype, device, seed=n), code,
                                               blocksize)]

    def special(dtype, signed, blocksize, call, device):
        return list(call("quantize_blockwise", special_input(dtype, device), dynamic_code(device, signed), blocksize))

    def boundaries(signed, call, device):
        code = dynamic_code(device, signed)
        A = boundary_input((code[:-1] + code[1:]) * 0.5, torch.float32, device)
        return list(call("quantize_blockwise", A, code, 4096))

    def non_contiguous(dtype, call, device):
        code = dynamic_code(device)
        return [t for A in non_contiguous_views(dtype, device) for t in call("quantize_blockwise", A, code, 64)]

    cases = [
        Case(f"{d}-bs{b}-sizes", functools.partial(sizes, DTYPES[d], b))
        for d in DTYPES
        for b in BLOCKSIZES["quantize_blockwise"]
    ]
    for signed in (True, False):
        kind = "signed" if signed else "unsigned"
        cases += [Case(f"{d}-bs{b}-special-{kind}", functools.partial(special, DTYPES[d], signed, b))
                  for d in DTYPES for b in (64, 4096)]
        cases.append(Case(f"fp32-bs4096-boundaries-{kind}", functools.partial(boundaries, signed)))
    cases += [Case(f"{d}-bs64-non_contiguous", functools.partial(non_contiguous, DTYPES[d])) for d in DTYPES]
    return cases


# ---- dequantize_blockwise ---------------------------------------------------------------------


def dequantize_blockwise_cases() -> list[Case]:
    def sizes(dtype, blocksize, call, device):
        code = dynamic_code(device)
        outputs = []
        for n in SIZES:
            codes = random_bytes(n, device, seed=n)
            outputs.append(call("dequantize_blockwise", codes, random_scales(blocks_of(n, blocksize), device, n),
                                code, blocksize, dtype))
        return outputs

    def into_out(dtype, call, device):
        codes = random_bytes(4097, device, seed=1)
        out = torch.full((4097,), float("nan"), dtype=dtype, device=device)
        call("dequantize_blockwise.out", codes, random_scales(65, device, 1), dynamic_code(device), 64, dtype, out=out)
        return [out]

    def non_contiguous(call, device):
        codes = random_bytes(64 * 64, device, seed=2).view(64, 64).t()
        return [call("dequantize_blockwise", codes, random_scales(64, device, 2), dynamic_code(device), 64,
                     torch.float32)]

    cases = [
        Case(f"{d}-bs{b}-sizes", functools.partial(sizes, DTYPES[d], b))
        for d in DTYPES
        for b in BLOCKSIZES["dequantize_blockwise"]
    ]
    cases += [Case(f"{d}-bs64-out", functools.partial(into_out, DTYPES[d])) for d in DTYPES]
    cases.append(Case("fp32-bs64-non_contiguous", non_contiguous))
    return cases


# ---- quantize_4bit --------------------------------------------------------------------------------


def quantize_4bit_cases() -> list[Case]:
    def sizes(dtype, blocksize, quant_type, call, device):
        return [t for n in SIZES
                for t in call("quantize_4bit", random_input(n, dtype, device, seed=n), blocksize, quant_type,
                              torch.uint8)]

    def special(dtype, blocksize, quant_type, call, device):
        return list(call("quantize_4bit", special_input(dtype, device), blocksize, quant_type, torch.uint8))

    def boundaries(quant_type, call, device):
        thresholds = torch.tensor(_C.quantize_thresholds(quant_type))
        if quant_type == "fp4":  # the thresholds are magnitudes
            thresholds = torch.cat([thresholds, -thresholds])
        return list(call("quantize_4bit", boundary_input(thresholds, torch.float32, device), 4096, quant_type,
                         torch.uint8))

    def storage(dtype, quant_storage, call, device):
        outputs = []
        for n in STORAGE_SIZES:
            packed, absmax = call("quantize_4bit", random_input(n, dtype, device, seed=n), 64, "nf4", quant_storage)
            assert packed.dtype == quant_storage
            outputs += [packed.view(torch.uint8), absmax]
        return outputs

    def non_contiguous(dtype, quant_type, call, device):
        return [t for A in non_contiguous_views(dtype, device)
                for t in call("quantize_4bit", A, 64, quant_type, torch.uint8)]

    def with_nested_statistics(dtype, blocksize, quant_type, call, device):
        outputs = []
        for n in (4097, 65553):
            packed, absmax = call("quantize_4bit", random_input(n, dtype, device, seed=n), blocksize, quant_type,
                                  torch.uint8)
            outputs += [packed, absmax, *nested(call, absmax)]
        return outputs

    cases = []
    for q in FOURBIT_QUANT_TYPES:
        cases += [Case(f"{q}-{d}-bs{b}-sizes", functools.partial(sizes, DTYPES[d], b, q))
                  for d in DTYPES for b in BLOCKSIZES["quantize_4bit"]]
        cases += [Case(f"{q}-{d}-bs{b}-special", functools.partial(special, DTYPES[d], b, q))
                  for d in DTYPES for b in (32, 64, 4096)]
        cases.append(Case(f"{q}-fp32-bs4096-boundaries", functools.partial(boundaries, q)))
        cases += [Case(f"{q}-{d}-bs64-non_contiguous", functools.partial(non_contiguous, DTYPES[d], q))
                  for d in DTYPES]
        cases += [Case(f"{q}-{d}-bs{b}-nested", functools.partial(with_nested_statistics, DTYPES[d], b, q))
                  for d in DTYPES for b in (64, 4096)]
    cases += [Case(f"nf4-{d}-bs64-storage_{STORAGE_IDS[s]}", functools.partial(storage, DTYPES[d], s))
              for d in ("bf16", "fp16") for s in FOURBIT_STORAGE_DTYPES]
    return cases


# ---- dequantize_4bit ------------------------------------------------------------------------------


def dequantize_4bit_cases() -> list[Case]:
    def sizes(dtype, blocksize, quant_type, call, device):
        outputs = []
        for n in SIZES:
            packed = random_bytes((n + 1) // 2, device, seed=n).view(-1, 1)
            absmax = random_scales(blocks_of(n, blocksize), device, n)
            outputs.append(call("dequantize_4bit", packed, absmax, blocksize, quant_type, [n], dtype))
        return outputs

    def storage(quant_storage, call, device):
        packed = random_bytes(4 * 1001, device, seed=3).view(quant_storage).view(-1, 1)
        return [call("dequantize_4bit", packed, random_scales(63, device, 3), 64, "nf4", [4001], torch.bfloat16)]

    def into_out(dtype, quant_type, call, device):
        out = torch.full((65, 63), float("nan"), dtype=dtype, device=device)
        call("dequantize_4bit.out", random_bytes(2048, device, seed=4).view(-1, 1), random_scales(65, device, 4), 64,
             quant_type, [65, 63], dtype, out=out)
        return [out]

    def with_nested_statistics(dtype, quant_type, call, device):
        n, blocksize = 65553, 64
        packed = random_bytes((n + 1) // 2, device, seed=5).view(-1, 1)
        blocks = blocks_of(n, blocksize)
        generator = torch.Generator().manual_seed(5)
        nested_absmax = (torch.rand(blocks_of(blocks, NESTED_BLOCKSIZE), generator=generator) + 0.5).to(device)
        offset = torch.tensor(0.75, device=device)
        absmax = denested(call, random_bytes(blocks, device, seed=6), nested_absmax, offset)
        return [absmax, call("dequantize_4bit", packed, absmax, blocksize, quant_type, [n], dtype)]

    cases = []
    for q in FOURBIT_QUANT_TYPES:
        cases += [Case(f"{q}-{d}-bs{b}-sizes", functools.partial(sizes, DTYPES[d], b, q))
                  for d in DTYPES for b in BLOCKSIZES["dequantize_4bit"]]
        cases += [Case(f"{q}-{d}-bs64-out", functools.partial(into_out, DTYPES[d], q)) for d in DTYPES]
        cases += [Case(f"{q}-{d}-bs64-nested", functools.partial(with_nested_statistics, DTYPES[d], q))
                  for d in DTYPES]
    cases += [Case(f"nf4-bf16-bs64-storage_{STORAGE_IDS[s]}", functools.partial(storage, s))
              for s in FOURBIT_STORAGE_DTYPES]
    return cases


# ---- gemm_4bit, gemv_4bit -------------------------------------------------------------------------

N, K = 96, 320


def packed_weight(blocksize, quant_type, device):
    """A packed [N, K] weight and its float32 absmax, quantized by the oracle on the CPU."""
    W = random_input(N * K, torch.float32, "cpu", seed=blocksize).view(N, K) * 0.05
    packed, absmax = oracle("quantize_4bit", W, blocksize, quant_type, torch.uint8)
    return packed.to(device), absmax.to(device)


def gemm_4bit_cases() -> list[Case]:
    def products(dtype, blocksize, quant_type, with_nesting, call, device):
        packed, absmax = packed_weight(blocksize, quant_type, device)
        statistics = (absmax,)
        if with_nesting:
            offset, codes, nested_absmax = nested(oracle, absmax)
            statistics = (nested_absmax, codes, dynamic_code(device), offset)
        bias = random_input(N, dtype, device, seed=1)
        outputs = []
        for rows in (1, 3, 16):
            A = random_input(rows * K, dtype, device, seed=rows).view(rows, K)
            arguments = (A, packed, [N, K], statistics[0], blocksize, quant_type, bias, *statistics[1:])
            outputs.append(call("gemm_4bit", *arguments))
        return outputs

    return [
        Case(f"{q}-{d}-bs{b}-{'nested' if n else 'plain'}", functools.partial(products, DTYPES[d], b, q, n),
             tolerance=MATMUL_TOLERANCE[DTYPES[d]])
        for q in FOURBIT_QUANT_TYPES
        for d in DTYPES
        for b in BLOCKSIZES["gemm_4bit"]
        for n in (False, True)
    ]


def gemv_4bit_cases() -> list[Case]:
    def products(dtype, blocksize, quant_type, call, device):
        packed, absmax = packed_weight(blocksize, quant_type, device)
        code = fourbit_code(quant_type, device)
        outputs = []
        for shape in ((1, K), (1, 1, K)):
            A = random_input(K, dtype, device, seed=len(shape)).view(shape)
            outputs.append(call("gemv_4bit", A, packed, [N, K], absmax, code, blocksize))
        out = torch.full((1, N), float("nan"), dtype=dtype, device=device)
        call("gemv_4bit.out", random_input(K, dtype, device, seed=9).view(1, K), packed, [N, K], absmax, code,
             blocksize, out=out)
        return [*outputs, out]

    return [
        Case(f"{q}-{d}-bs{b}", functools.partial(products, DTYPES[d], b, q), tolerance=MATMUL_TOLERANCE[DTYPES[d]])
        for q in FOURBIT_QUANT_TYPES
        for d in DTYPES
        for b in BLOCKSIZES["gemv_4bit"]
    ]


# ---- LLM.int8() ------------------------------------------------------------------------------------

INT8_SHAPES = ((1, 1), (1, 7), (3, 5), (2, 3, 17), (64, 256), (33, 1031), (0, 5), (5, 0))
INT8_THRESHOLDS = (0.0, 6.0)


def int8_activations(shape, dtype, device, seed) -> torch.Tensor:
    """Normal values with a few columns of LLM.int8() outliers (|x| >= 6)."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator) * 2
    if values.numel() > 0 and values.shape[-1] > 2:
        values[..., 1] *= 8
        values[..., -1] = 6.0
    return values.to(dtype=dtype, device=device)


def int8_special_rows(dtype, device) -> torch.Tensor:
    """Rows of awkward finite values: zeros, float16 extremes and subnormals, the threshold and its neighbours."""
    cols = 40
    rows = torch.randn(8, cols, generator=torch.Generator().manual_seed(5))
    rows[0] = 0.0
    rows[1, :] = -0.0
    rows[1, 3] = 1.0
    rows[2, 0], rows[2, 1] = 65504.0, -65504.0
    rows[3] = 6e-8 * torch.arange(cols)  # float16 subnormals
    rows[4] = 6.0  # every element an outlier at threshold 6
    below = torch.nextafter(torch.tensor(6.0, dtype=dtype), torch.tensor(0.0, dtype=dtype)).float()
    rows[5, ::2] = below
    rows[5, 1::2] = -6.0
    rows[6] = torch.linspace(-127, 127, cols)
    rows[7, 7] = 1e4
    return rows.to(dtype=dtype, device=device)


def random_int8(shape, device, seed, low=-128, high=128) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, generator=generator, dtype=torch.int8).to(device)


def int8_row_stats(rows, device, seed) -> torch.Tensor:
    """Positive float16-representable statistics, as int8_vectorwise_quant of float16 data gives them."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(rows, generator=generator) * 20 + 1e-3).half().float().to(device)


def int8_vectorwise_quant_cases() -> list[Case]:
    def shapes(dtype, threshold, call, device):
        outputs = []
        for seed, shape in enumerate(INT8_SHAPES):
            q, stats, cols = call("int8_vectorwise_quant", int8_activations(shape, dtype, device, seed), threshold)
            outputs += [q, stats] + ([] if cols is None else [cols])
        return outputs

    def special(dtype, threshold, call, device):
        q, stats, cols = call("int8_vectorwise_quant", int8_special_rows(dtype, device), threshold)
        return [q, stats] + ([] if cols is None else [cols])

    def non_contiguous(dtype, call, device):
        base = int8_activations((48, 70), dtype, device, 9)
        return [t for A in (base.t(), base[:, ::3]) for t in call("int8_vectorwise_quant", A, 6.0)]

    cases = [Case(f"{d}-thr{t:g}-shapes", functools.partial(shapes, DTYPES[d], t))
             for d in DTYPES for t in INT8_THRESHOLDS]
    cases += [Case(f"{d}-thr{t:g}-special", functools.partial(special, DTYPES[d], t))
              for d in DTYPES for t in INT8_THRESHOLDS]
    cases += [Case(f"{d}-non_contiguous", functools.partial(non_contiguous, DTYPES[d])) for d in DTYPES]
    return cases


def int8_double_quant_cases() -> list[Case]:
    def shapes(dtype, threshold, call, device):
        outputs = []
        for seed, shape in enumerate(INT8_SHAPES):
            result = call("int8_double_quant", int8_activations(shape, dtype, device, seed), threshold)
            outputs += [t for t in result if t is not None]
        return outputs

    def special(dtype, threshold, call, device):
        # Without the all-zero rows: a zero column's quantization is implementation-defined (formats.md 5.2).
        A = int8_special_rows(dtype, device)[2:]
        return [t for t in call("int8_double_quant", A, threshold) if t is not None]

    return ([Case(f"{d}-thr{t:g}-shapes", functools.partial(shapes, DTYPES[d], t))
             for d in DTYPES for t in INT8_THRESHOLDS]
            + [Case(f"{d}-thr{t:g}-special", functools.partial(special, DTYPES[d], t))
               for d in DTYPES for t in INT8_THRESHOLDS])


def int8_vectorwise_dequant_cases() -> list[Case]:
    def shapes(call, device):
        outputs = []
        for seed, shape in enumerate(INT8_SHAPES):
            rows = 1 if len(shape) == 0 else int(torch.tensor(shape[:-1]).prod())
            outputs.append(call("int8_vectorwise_dequant", random_int8(shape, device, seed),
                                random_scales(rows, device, seed)))
        return outputs

    return [Case("fp32-shapes", shapes)]


def int8_linear_matmul_cases() -> list[Case]:
    shapes = ((1, 1, 1), (3, 5, 7), (17, 33, 65), (64, 256, 128), (5, 3000, 9), (2, 0, 3), (0, 4, 3))

    def random(call, device):
        return [call("int8_linear_matmul", random_int8((m, k), device, m + k), random_int8((n, k), device, n))
                for m, k, n in shapes]

    def extreme(call, device):
        # Sums far beyond 2^24 (exact only in integer arithmetic), zeros, one outlier per row.
        k = 4099
        full = torch.full((4, k), -128, dtype=torch.int8, device=device)
        signs = torch.where(torch.arange(k) % 3 == 0, 127, -127).to(torch.int8).repeat(3, 1).to(device)
        one_per_row = torch.zeros((5, k), dtype=torch.int8, device=device)
        one_per_row[torch.arange(5), torch.arange(5) * 7] = 127
        zeros = torch.zeros((2, k), dtype=torch.int8, device=device)
        plus = torch.full((3, k), 127, dtype=torch.int8, device=device)
        return [call("int8_linear_matmul", a, b) for a, b in
                ((full, full), (plus, plus), (signs, plus), (one_per_row, full), (zeros, signs))]

    def batched_and_out(call, device):
        A = random_int8((2, 3, 40), device, 1)
        B = random_int8((6, 40), device, 2)
        out = torch.full((2, 3, 6), -1, dtype=torch.int32, device=device)
        call("int8_linear_matmul.out", A, B, out=out)
        return [call("int8_linear_matmul", A, B), out, call("int8_linear_matmul", A[:, :, ::2], B[:, ::2])]

    return [Case("random", random), Case("extreme", extreme), Case("batched_and_out", batched_and_out)]


def int32_products(rows, cols, device, seed) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randint(-(2 ** 22), 2 ** 22, (rows, cols), generator=generator, dtype=torch.int32)
    values[0, :3] = torch.tensor([2 ** 31 - 1, -(2 ** 31), 0], dtype=torch.int32)[: min(cols, 3)]
    return values.to(device)


BIAS_DTYPES = {"nobias": None, "bias_fp16": torch.float16, "bias_bf16": torch.bfloat16, "bias_fp32": torch.float32}


def int8_mm_dequant_cases() -> list[Case]:
    def rescale(dtype, bias_dtype, call, device):
        outputs = []
        for seed, (rows, cols) in enumerate(((1, 1), (7, 13), (64, 128), (3, 0))):
            A = int32_products(rows, cols, device, seed) if rows * cols else torch.zeros(
                (rows, cols), dtype=torch.int32, device=device)
            bias = None if bias_dtype is None else random_input(cols, bias_dtype, device, seed)
            outputs.append(call("int8_mm_dequant", A, int8_row_stats(rows, device, seed),
                                int8_row_stats(cols, device, seed + 1), dtype, bias))
        return outputs

    return [Case(f"{d}-{b}", functools.partial(rescale, DTYPES[d], BIAS_DTYPES[b]))
            for d in DTYPES for b in BIAS_DTYPES]


def int8_linear_operands(rows, K, N, dtype, device, seed):
    """Activations with outlier columns, their row quantization at threshold 6, and a quantized weight."""
    A = int8_activations((rows, K), dtype, device, seed)
    W = random_input(N * K, torch.float16, "cpu", seed=seed + 100).view(N, K)
    CB, SCB, _ = oracle("int8_vectorwise_quant", W, 0.0)
    return A, CB.to(device), SCB.to(device)


def int8_scaled_mm_cases() -> list[Case]:
    # One C ABI op serves both torch ops: int8_mixed_scaled_mm is int8_scaled_mm with its outlier correction.
    def scaled(dtype, bias_dtype, call, device):
        outputs = []
        for seed, (rows, K, N) in enumerate(((1, 64, 32), (17, 160, 48), (2, 3, 2))):
            A, CB, SCB = int8_linear_operands(rows, K, N, dtype, device, seed)
            CA, SCA, _ = call("int8_vectorwise_quant", A, 0.0)
            bias = None if bias_dtype is None else random_input(N, bias_dtype, device, seed)
            outputs.append(call("int8_scaled_mm", CA, CB, SCA, SCB, bias, dtype))
        return outputs

    def mixed(dtype, with_bias, call, device):
        outputs = []
        for seed, (rows, K, N) in enumerate(((1, 64, 32), (17, 160, 48), (8, 96, 40))):
            A, CB, SCB = int8_linear_operands(rows, K, N, dtype, device, seed)
            CA, SCA, outlier_cols = call("int8_vectorwise_quant", A, 6.0)
            assert outlier_cols.numel() > 0
            bias = random_input(N, dtype, device, seed) if with_bias else None
            out, subA = call("int8_mixed_scaled_mm", A, CA, CB, SCA, SCB, outlier_cols, bias)
            no_outliers, empty = call("int8_mixed_scaled_mm", A, CA, CB, SCA, SCB, None, bias)
            assert empty.numel() == 0
            outputs += [out, subA, no_outliers]
        return outputs

    cases = [Case(f"{d}-{b}", functools.partial(scaled, DTYPES[d], BIAS_DTYPES[b]))
             for d in DTYPES for b in BIAS_DTYPES]
    cases += [Case(f"mixed-{d}-{'bias' if b else 'nobias'}", functools.partial(mixed, DTYPES[d], b),
                   tolerance=MATMUL_TOLERANCE[DTYPES[d]])
              for d in DTYPES for b in (False, True)]
    return cases



# ---- optimizer updates ----------------------------------------------------------------------------

OPTIMIZER_NAMES = ("adam", "lamb", "ademamix", "momentum", "lars", "rmsprop", "adagrad", "lion")
TWO_STATE_OPTIMIZERS = ("adam", "lamb", "ademamix")
# Around the 256-element blocks of the 8-bit states, plus one large odd size.
OPTIMIZER_SIZES = (1, 3, 255, 256, 257, 1000, 4097)
OPTIMIZER_STEPS = 3
# name -> (beta1, beta2, beta3, alpha, eps), as the optimizer classes pass them (formats.md 8.2).
OPTIMIZER_HYPERPARAMETERS = {
    "adam": (0.9, 0.999, 0.0, 0.0, 1e-8), "lamb": (0.9, 0.999, 0.0, 0.0, 1e-8),
    "ademamix": (0.9, 0.999, 0.9999, 5.0, 1e-8), "momentum": (0.9, 0.0, 0.0, 0.0, 0.0),
    "lars": (0.9, 0.0, 0.0, 0.0, 0.0), "rmsprop": (0.99, 0.0, 0.0, 0.0, 1e-8), "adagrad": (0.0, 0.0, 0.0, 0.0, 1e-10),
    "lion": (0.9, 0.99, 0.0, 0.0, 0.0),
}
MAX_UNORM = {"lamb": 1.0, "lars": 0.02}


def optimizer_gradients(n, dtype, device, seed, special=False, zeros=False):
    g = random_input(n, dtype, device, seed=seed) * 0.01
    if zeros:
        g[::3] = 0  # skip_zeros leaves these elements alone
    if special and n >= 4:
        g[:4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0], dtype=dtype)
    if n > 256:
        g[256:] *= 1e-30  # a block of ~0 values, where the padding lanes decide the absmax
    return g


# The native kernels and the oracle both follow formats.md 6-7 and match upstream's golden
# trajectories within formats.md 8.0's tolerance, but not bit for bit: CUDA's __powf is
# reproduced by neither, and an 8-bit code at a rounding boundary may move by one. Bound on
# the relative error of each whole output over the steps.
OPTIMIZER_TOLERANCE = 1e-3


def optimizer_32bit_cases() -> list[Case]:
    def run(name, dtype, weight_decay, skip_zeros, call, device):
        beta1, beta2, beta3, alpha, eps = OPTIMIZER_HYPERPARAMETERS[name]
        outputs = []
        for n in OPTIMIZER_SIZES:
            p = random_input(n, dtype, device, seed=n + 7)
            state1 = torch.zeros(2 * n if name == "ademamix" else n, device=device)
            state2 = torch.zeros(n, device=device) if name in TWO_STATE_OPTIMIZERS else None
            unorm_vec = torch.zeros(1, device=device) if name in MAX_UNORM else None
            for step in range(1, OPTIMIZER_STEPS + 1):
                g = optimizer_gradients(n, dtype, device, seed=n + step, zeros=skip_zeros)
                param_norm = p.float().norm().item() if name in MAX_UNORM else 0.0
                call("optimizer_update_32bit", name, g, p, state1, state2, unorm_vec, MAX_UNORM.get(name, 0.0),
                     param_norm, beta1, beta2, beta3, alpha, eps, weight_decay, step, 1e-3, 1.0, skip_zeros)
            outputs += [t for t in (p, state1, state2, unorm_vec) if t is not None]
        return outputs

    cases = [Case(f"{name}-{d}-wd{wd}", functools.partial(run, name, DTYPES[d], wd, False), OPTIMIZER_TOLERANCE)
             for name in OPTIMIZER_NAMES for d in DTYPES for wd in (0.0, 0.01)]
    cases += [Case(f"{name}-fp32-skip_zeros", functools.partial(run, name, torch.float32, 0.0, True), OPTIMIZER_TOLERANCE)
              for name in OPTIMIZER_NAMES if name != "ademamix"]
    return cases


def optimizer_8bit_states(name, n, device, seed, random_start):
    """state1/state2 codes and absmax: zeros as an optimizer creates them, or random ones."""
    stacked = 2 if name == "ademamix" else 1
    blocks = blocks_of(n, 256)
    if random_start:
        state1 = random_bytes(stacked * n, device, seed)
        if name in ("rmsprop", "adagrad"):
            state1 |= 128  # their state is a sum of squares: the positive half of the signed map
        absmax1 = torch.rand(stacked * blocks, generator=torch.Generator().manual_seed(seed)).to(device) * 0.01
    else:
        state1 = torch.zeros(stacked * n, dtype=torch.uint8, device=device)
        absmax1 = torch.zeros(stacked * blocks, device=device)
    if name not in TWO_STATE_OPTIMIZERS:
        return state1, absmax1, None, None
    state2 = random_bytes(n, device, seed + 1) if random_start else torch.zeros(n, dtype=torch.uint8, device=device)
    absmax2 = (torch.rand(blocks, generator=torch.Generator().manual_seed(seed + 1)).to(device) * 1e-4
               if random_start else torch.zeros(blocks, device=device))
    return state1, absmax1, state2, absmax2


def optimizer_8bit_cases() -> list[Case]:
    def run(name, dtype, weight_decay, skip_zeros, random_start, special, call, device):
        beta1, beta2, beta3, alpha, eps = OPTIMIZER_HYPERPARAMETERS[name]
        qmap1, qmap2 = dynamic_code(device), dynamic_code(device, signed=False)
        outputs = []
        for n in OPTIMIZER_SIZES:
            p = random_input(n, dtype, device, seed=n + 7)
            state1, absmax1, state2, absmax2 = optimizer_8bit_states(name, n, device, n, random_start)
            for step in range(1, OPTIMIZER_STEPS + 1):
                g = optimizer_gradients(n, dtype, device, seed=n + step, special=special, zeros=skip_zeros)
                call("optimizer_update_8bit_blockwise", name, g, p, state1, state2, beta1, beta2, beta3, alpha, eps,
                     step, 1e-3, qmap1, qmap2 if state2 is not None else None, absmax1, absmax2, weight_decay, 1.0,
                     skip_zeros)
            outputs += [t for t in (p, state1, absmax1, state2, absmax2) if t is not None]
        return outputs

    cases = [Case(f"{name}-{d}-wd{wd}", functools.partial(run, name, DTYPES[d], wd, False, False, False), OPTIMIZER_TOLERANCE)
             for name in OPTIMIZER_NAMES for d in DTYPES for wd in (0.0, 0.01)]
    cases += [Case(f"{name}-fp32-random_states", functools.partial(run, name, torch.float32, 0.0, False, True, False), OPTIMIZER_TOLERANCE)
              for name in OPTIMIZER_NAMES]
    cases += [Case(f"{name}-fp32-non_finite_grad", functools.partial(run, name, torch.float32, 0.0, False, False,
                                                                     True), OPTIMIZER_TOLERANCE)
              for name in TWO_STATE_OPTIMIZERS]
    cases += [Case(f"{name}-fp32-skip_zeros", functools.partial(run, name, torch.float32, 0.0, True, False, False), OPTIMIZER_TOLERANCE)
              for name in OPTIMIZER_NAMES if name not in TWO_STATE_OPTIMIZERS]
    return cases


# Open between the CPU kernels and the oracle (issue 11): formats.md leaves these underdetermined.
SKIP_ZEROS_DISAGREEMENT = ("skip_zeros: which gradient decides the skip (before or after coupled weight decay) "
                           "and what a skipped element's 8-bit state becomes")
LARS_NORM_DISAGREEMENT = "lars' update norm (unorm_vec) with coupled weight decay"
# Case name -> why, per op.
OPTIMIZER_DISAGREEMENTS = {
    "optimizer_update_32bit": {
        **{f"{name}-fp32-skip_zeros": SKIP_ZEROS_DISAGREEMENT
           for name in ("adam", "lamb", "momentum", "lars", "rmsprop", "adagrad", "lion")},
        **{f"lars-{d}-wd0.01": LARS_NORM_DISAGREEMENT for d in ("fp32", "fp16", "bf16")},
    },
    "optimizer_update_8bit_blockwise": {
        **{f"{name}-fp32-skip_zeros": SKIP_ZEROS_DISAGREEMENT
           for name in ("momentum", "lars", "rmsprop", "adagrad", "lion")},
        **{f"{name}-fp32-random_states": "8-bit states from random codes: the first requantization differs"
           for name in ("adam", "lamb", "lion")},
    },
}


def with_known_disagreements(op: str, cases: list[Case]) -> list[Case]:
    reasons = OPTIMIZER_DISAGREEMENTS[op]
    return [dataclasses.replace(c, known_disagreement=reasons[c.name]) if c.name in reasons else c for c in cases]


CASES: dict[str, list[Case]] = {
    "quantize_blockwise": quantize_blockwise_cases(),
    "dequantize_blockwise": dequantize_blockwise_cases(),
    "quantize_4bit": quantize_4bit_cases(),
    "dequantize_4bit": dequantize_4bit_cases(),
    "gemm_4bit": gemm_4bit_cases(),
    "gemv_4bit": gemv_4bit_cases(),
    "int8_vectorwise_quant": int8_vectorwise_quant_cases(),
    "int8_double_quant": int8_double_quant_cases(),
    "int8_vectorwise_dequant": int8_vectorwise_dequant_cases(),
    "int8_linear_matmul": int8_linear_matmul_cases(),
    "int8_mm_dequant": int8_mm_dequant_cases(),
    "int8_scaled_mm": int8_scaled_mm_cases(),
    "optimizer_update_32bit": with_known_disagreements("optimizer_update_32bit", optimizer_32bit_cases()),
    "optimizer_update_8bit_blockwise": with_known_disagreements("optimizer_update_8bit_blockwise",
                                                                optimizer_8bit_cases()),
}


def case_params():
    for op in _C.ops():
        if not CASES.get(op):
            yield pytest.param(op, None, id=f"{op}-no-cases")
        for case in CASES.get(op, []):
            yield pytest.param(op, case, id=f"{op}-{case.name}")


def require_cases(op: str, case: Optional[Case]) -> Case:
    if case is None:
        pytest.fail(f"the native op {op} has no cases: add them to CASES in tests/python/test_backend_ops.py")
    return case


def native_kernel_missing(device: str, op: str) -> Optional[str]:
    """Why the device has no native kernel of the op to test, or None when it has one."""
    if not _C.backend_supports(device, op):
        return f"the native {device} backend does not implement {op} (the pure-torch default kernel serves it)"
    if not torch._C._dispatch_has_kernel_for_dispatch_key(f"bitsandbytes::{op}", DISPATCH_KEYS[device]):
        return f"no native kernel of {op} is registered for {DISPATCH_KEYS[device]}"
    return None


def assert_outputs_agree(actual: list, expected: list, tolerance: Optional[float]) -> None:
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected)):
        a, e = a.detach().cpu(), e.detach().cpu()
        if tolerance is None:
            assert_bitwise_equal(a, e)
            continue
        assert a.dtype == e.dtype and a.shape == e.shape, (index, a.dtype, e.dtype, a.shape, e.shape)
        assert torch.isfinite(a).all(), f"output {index}: non-finite values"
        error = ((a.double() - e.double()).norm() / e.double().norm()).item()
        assert error < tolerance, f"output {index}: relative error {error:.2e} above {tolerance:.0e}"


@pytest.mark.parametrize("op, case", list(case_params()))
def test_native_matches_oracle(op, case, device):
    case = require_cases(op, case)
    reason = native_kernel_missing(device, op)
    if reason:
        pytest.skip(reason)
    if case.known_disagreement is None:
        assert_outputs_agree(case.run(native, device), case.run(oracle, "cpu"), case.tolerance)
        return
    try:
        assert_outputs_agree(case.run(native, device), case.run(oracle, "cpu"), case.tolerance)
    except AssertionError:
        pytest.xfail(case.known_disagreement)
    pytest.fail(f"native and oracle now agree: drop known_disagreement ({case.known_disagreement})")


@pytest.mark.parametrize("op, case", list(case_params()))
@pytest.mark.parametrize("device", [d for d in DEVICES if d.values[0] != "cpu"])
def test_oracle_matches_oracle_on_cpu(op, case, device):
    case = require_cases(op, case)
    assert_outputs_agree(case.run(oracle, device), case.run(oracle, "cpu"), case.tolerance)


# ---- golden data ----------------------------------------------------------------------------------


def check_quantize_blockwise(call, tensors, args, device):
    q, absmax = call("quantize_blockwise", tensors["A"].to(device), tensors["code"].to(device), args["blocksize"])
    assert_bitwise_equal(q, tensors["q"])
    assert_bitwise_equal(absmax, tensors["absmax"])


def check_dequantize_blockwise(call, tensors, args, device):
    dequant = call("dequantize_blockwise", tensors["q"].to(device), tensors["absmax"].to(device),
                   tensors["code"].to(device), args["blocksize"], DTYPES[args["dtype"]])
    assert_bitwise_equal(dequant, tensors["dequant"])


def check_quantize_4bit(call, tensors, args, device):
    storage = DTYPES.get(args.get("quant_storage"), torch.uint8)
    packed, absmax = call("quantize_4bit", tensors["A"].to(device), args["blocksize"], args["quant_type"], storage)
    assert_bitwise_equal(packed, tensors["packed"])
    if not args.get("compress_statistics"):
        assert_bitwise_equal(absmax, tensors["absmax"])
        return
    # The mean is the functional layer's (test_golden.py); the ops quantize what is left.
    offset = tensors["offset"].reshape(()).to(device)
    codes, nested_absmax = call("quantize_blockwise", absmax - offset, tensors["nested_code"].to(device),
                                NESTED_BLOCKSIZE)
    assert_bitwise_equal(codes, tensors["absmax"])
    assert_bitwise_equal(nested_absmax, tensors["nested_absmax"])


def check_dequantize_4bit(call, tensors, args, device):
    absmax = tensors["absmax"].to(device)
    if args.get("compress_statistics"):
        absmax = denested(call, absmax, tensors["nested_absmax"].to(device), tensors["offset"].reshape(()).to(device))
    dequant = call("dequantize_4bit", tensors["packed"].to(device), absmax, args["blocksize"], args["quant_type"],
                   list(tensors["A"].shape), tensors["A"].dtype)
    assert_bitwise_equal(dequant, tensors["dequant"])


def matmul_4bit_operands(tensors, device):
    """The golden weight quantized as upstream's matmul_4bit cases did (nf4, blocksize 64, nested)."""
    packed, state = F.quantize_4bit(tensors["W"].to(device), blocksize=64, quant_type="nf4", compress_statistics=True)
    assert_bitwise_equal(packed, tensors["packed"])
    return packed, state, tensors["x"].to(device), tensors["y"]


def assert_close_to_golden(y, expected):
    error = ((y.detach().cpu().double() - expected.double()).norm() / expected.double().norm()).item()
    assert error < GOLDEN_MATMUL_TOLERANCE[expected.dtype], f"relative error {error:.2e}"


def check_gemm_4bit(call, tensors, args, device):
    packed, state, x, expected = matmul_4bit_operands(tensors, device)
    y = call("gemm_4bit", x, packed, list(state.shape), state.state2.absmax, state.blocksize, state.quant_type, None,
             state.absmax, state.state2.code, state.offset)
    assert_close_to_golden(y, expected)


def check_gemv_4bit(call, tensors, args, device):
    packed, state, x, expected = matmul_4bit_operands(tensors, device)
    y = call("gemv_4bit", x, packed, list(state.shape), F._denested_absmax(state), state.code, state.blocksize)
    assert_close_to_golden(y, expected)


def int8_quant_cases():
    return [c for c in golden_manifest()["groups"]["int8"] if c["case"].startswith("vectorwise_quant")]


def int8_matmul_cases():
    return [c for c in golden_manifest()["groups"]["int8"] if c["case"] == "linear_matmul"]


def check_int8_vectorwise_quant(call, tensors, args, device):
    q, stats, outlier_cols = call("int8_vectorwise_quant", tensors["A"].to(device), args["threshold"])
    assert_bitwise_equal(q, tensors["CB"])
    assert_bitwise_equal(stats, tensors["SCB"])
    if "outlier_cols" in tensors:
        assert_bitwise_equal(outlier_cols, tensors["outlier_cols"])
    else:
        assert outlier_cols is None


def check_int8_double_quant(call, tensors, args, device):
    # Its row part is int8_vectorwise_quant's (ops.md 1.7).
    out_row, _, row_stats, _, outlier_cols = call("int8_double_quant", tensors["A"].to(device), args["threshold"])
    assert_bitwise_equal(out_row, tensors["CB"])
    assert_bitwise_equal(row_stats, tensors["SCB"])
    if "outlier_cols" in tensors:
        assert_bitwise_equal(outlier_cols, tensors["outlier_cols"])


def check_int8_vectorwise_dequant(call, tensors, args, device):
    dequant = call("int8_vectorwise_dequant", tensors["CB"].to(device), tensors["SCB"].to(device))
    # Upstream's (pure-torch) arithmetic: two float32 multiplies by the stats and float32(1/127).
    assert_bitwise_equal(dequant, (tensors["CB"].float() * tensors["SCB"][:, None]) * 7.874015718698502e-3)


def check_int8_linear_matmul(call, tensors, args, device):
    acc = call("int8_linear_matmul", tensors["CA"].to(device), tensors["CB"].to(device))
    assert_bitwise_equal(acc, tensors["acc_int32"])


def check_int8_mm_dequant(call, tensors, args, device):
    out = call("int8_mm_dequant", tensors["acc_int32"].to(device), tensors["SA"].to(device), tensors["SB"].to(device))
    assert_bitwise_equal(out, tensors["out"])


def check_int8_scaled_mm(call, tensors, args, device):
    out = call("int8_scaled_mm", tensors["CA"].to(device), tensors["CB"].to(device), tensors["SA"].to(device),
               tensors["SB"].to(device))
    assert_bitwise_equal(out, tensors["out"])


def quant_cases():
    return [c for c in golden_manifest()["groups"]["quant"] if "q" in c["tensors"]]


def matmul_cases(rows=None):
    cases = [c for c in golden_manifest()["groups"]["modules"] if c["case"].startswith("matmul_4bit")]
    return [c for c in cases if rows is None or c["args"]["m"] == rows]



def optim_cases(eight_bit: bool):
    return [c for c in golden_manifest()["groups"]["optim"] if ("absmax1" in str(c["tensors"])) == eight_bit]


def check_optimizer_update(call, tensors, args, device):
    """Three steps of the op from fresh states reproduce upstream's trajectory."""
    _, _, arguments = OPTIM_GOLDEN_CASES[args["case"]]
    name = arguments["optimizer_name"]
    p = tensors["param0"].clone().to(device)
    eight_bit = "state1.absmax1" in tensors
    state = {role.split(".", 1)[1]: torch.zeros_like(tensors[role]).to(device)
             for role in tensors if role.startswith("state1.")}
    for role in ("qmap1", "qmap2"):
        if role in state:
            state[role] = tensors[f"state1.{role}"].to(device)  # the dynamic maps never change
    hyper = [arguments[k] for k in ("beta1", "beta2")] + [arguments.get("beta3", 0.0), arguments.get("alpha", 0.0)]
    for step in range(1, GOLDEN_OPTIM_STEPS + 1):
        g = tensors[f"grad{step - 1}"].to(device)
        if eight_bit:
            call("optimizer_update_8bit_blockwise", name, g, p, state["state1"], state.get("state2"), *hyper,
                 arguments["eps"], step, arguments["lr"], state["qmap1"], state.get("qmap2"), state["absmax1"],
                 state.get("absmax2"), arguments["weight_decay"], 1.0, False)
        else:
            call("optimizer_update_32bit", name, g, p, state["state1"], state.get("state2"), None, 0.0, 0.0, *hyper,
                 arguments["eps"], arguments["weight_decay"], step, arguments["lr"], 1.0, False)
        assert_optimizer_matches_golden(tensors, step, p, state)


# op -> (golden group, its cases, the check)
GOLDEN_CHECKS = {
    "quantize_blockwise": ("quant", quant_cases, check_quantize_blockwise),
    "dequantize_blockwise": ("quant", quant_cases, check_dequantize_blockwise),
    "quantize_4bit": ("fourbit", lambda: golden_manifest()["groups"]["fourbit"], check_quantize_4bit),
    "dequantize_4bit": ("fourbit", lambda: golden_manifest()["groups"]["fourbit"], check_dequantize_4bit),
    "gemm_4bit": ("modules", matmul_cases, check_gemm_4bit),
    # Upstream's matmul_4bit takes gemv_4bit for a single row.
    "gemv_4bit": ("modules", lambda: matmul_cases(rows=1), check_gemv_4bit),
    "int8_vectorwise_quant": ("int8", int8_quant_cases, check_int8_vectorwise_quant),
    "int8_double_quant": ("int8", int8_quant_cases, check_int8_double_quant),
    "int8_vectorwise_dequant": ("int8", int8_quant_cases, check_int8_vectorwise_dequant),
    "int8_linear_matmul": ("int8", int8_matmul_cases, check_int8_linear_matmul),
    "int8_mm_dequant": ("int8", int8_matmul_cases, check_int8_mm_dequant),
    "int8_scaled_mm": ("int8", int8_matmul_cases, check_int8_scaled_mm),
    "optimizer_update_32bit": ("optim", lambda: optim_cases(eight_bit=False), check_optimizer_update),
    "optimizer_update_8bit_blockwise": ("optim", lambda: optim_cases(eight_bit=True), check_optimizer_update),
}


def golden_params():
    if golden_manifest() is None:
        reason = f"golden vectors not found in {golden_dir()} (set BNB_GOLDEN_DIR)"
        yield pytest.param(None, None, id="no-golden", marks=pytest.mark.skip(reason=reason))
        return
    for op in _C.ops():
        if op not in GOLDEN_CHECKS:
            yield pytest.param(op, None, id=f"{op}-no-golden-check")
            continue
        _, cases, _ = GOLDEN_CHECKS[op]
        for case in cases():
            yield pytest.param(op, case, id=f"{op}-{case['case']}")


@pytest.mark.parametrize("implementation", ["native", "oracle"])
@pytest.mark.parametrize("op, case", list(golden_params()))
def test_matches_golden(golden, op, case, device, implementation):
    if case is None:
        pytest.fail(f"the native op {op} has no golden check: add one to GOLDEN_CHECKS in {__file__}")
    if implementation == "native":
        reason = native_kernel_missing(device, op)
        if reason:
            pytest.skip(reason)
    group, _, check = GOLDEN_CHECKS[op]
    call = native if implementation == "native" else oracle
    with torch.no_grad():
        check(call, golden.case_tensors(group, case), {**case["args"], "case": case["case"]}, device)
