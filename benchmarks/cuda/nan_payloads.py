"""The bit patterns a library writes where its output is NaN or infinite, per op and dtype.

Runs against whichever `bitsandbytes` is importable (ours, or upstream 0.50.2 with
PYTHONPATH=.upstream), on CUDA when present, else on the CPU; prints one line per case:
the case, the output dtype, and the distinct bit patterns of its non-finite outputs
(optimizer cases: the bits of every element whose gradient or parameter is special).
Used to pin the bytes every backend must write (docs/numerics.md).

    python3 benchmarks/cuda/nan_payloads.py [device] [--pure-torch]

--pure-torch routes the device's ops to this package's pure-torch kernels.
"""

import sys
import warnings

import torch

import bitsandbytes as bnb
import bitsandbytes.functional as F

FLOAT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
INT_VIEW = {2: torch.int16, 4: torch.int32}
# A parameter that is NaN already, with a payload other than CUDA's canonical one.
NAN_PARAM_BITS = {torch.float32: 0x7FC00123, torch.bfloat16: 0x7FC3, torch.float16: 0x7E03}


def bits(tensor):
    width = tensor.element_size()
    raw = tensor.detach().contiguous().cpu().view(INT_VIEW[width]).to(torch.int64) & ((1 << (8 * width)) - 1)
    return [f"0x{value:0{2 * width}x}" for value in raw.reshape(-1).tolist()]


def patterns(tensor):
    bad = ~torch.isfinite(tensor.detach().cpu()).reshape(-1)
    return sorted({b for b, is_bad in zip(bits(tensor), bad.tolist()) if is_bad})


LABEL = []


def show(device, case, dtype, result):
    print(LABEL[0] if LABEL else device, case, str(dtype).replace("torch.", ""), result, flush=True)


def dequantizers(device):
    values = torch.tensor([float("nan"), -float("nan"), float("inf"), -float("inf"), 1.0, -2.0, 0.0, 3e38] * 8)
    for dtype in FLOAT_DTYPES:
        A = values.to(device, torch.float32).to(dtype)
        for quant_type in ("nf4", "fp4"):
            packed, state = F.quantize_4bit(A, blocksize=64, quant_type=quant_type)
            show(device, f"quantize+dequantize_4bit {quant_type}", dtype, patterns(F.dequantize_4bit(packed, state)))
        codes, state = F.quantize_blockwise(A, blocksize=64)
        show(device, "quantize+dequantize_blockwise", dtype, patterns(F.dequantize_blockwise(codes, state)))
        # The absmax given directly: NaN, inf (0 * inf at the zero codes) and one that overflows fp16.
        weights = torch.tensor([1.0, 0.0, -1.0, 0.5] * 16, device=device, dtype=dtype)
        for absmax in (float("nan"), float("inf"), 1e30):
            for quant_type in ("nf4", "fp4"):
                packed, state = F.quantize_4bit(weights, blocksize=64, quant_type=quant_type)
                state.absmax = torch.full_like(state.absmax, absmax)
                show(device, f"dequantize_4bit {quant_type} absmax={absmax}", dtype,
                     patterns(F.dequantize_4bit(packed, state)))
            codes, state = F.quantize_blockwise(weights, blocksize=64)
            state.absmax = torch.full_like(state.absmax, absmax)
            show(device, f"dequantize_blockwise absmax={absmax}", dtype, patterns(F.dequantize_blockwise(codes, state)))


def matmuls(device):
    K, N = 256, 64
    generator = torch.Generator().manual_seed(0)
    W = torch.randn(N, K, generator=generator)
    for dtype in FLOAT_DTYPES:
        for quant_type in ("nf4", "fp4"):
            packed, state = F.quantize_4bit(W.to(device, dtype), blocksize=64, quant_type=quant_type)
            for rows in (1, 5):
                A = torch.randn(rows, K, generator=generator)
                A[0, 3] = float("nan")  # a NaN activation: its whole output row is NaN
                A[-1, 7] = float("inf")  # inf times weights of both signs: +-inf, and NaN where two meet
                A[-1, 9] = -float("inf")
                A = A.to(device, dtype)
                out = bnb.matmul_4bit(A, packed.t(), state)
                show(device, f"matmul_4bit {quant_type} rows={rows}", dtype, patterns(out))
            bad = F.QuantState(absmax=torch.full_like(state.absmax, float("nan")), shape=state.shape,
                               code=state.code, blocksize=state.blocksize, quant_type=state.quant_type,
                               dtype=state.dtype)
            A = torch.randn(1, K, generator=generator).to(device, dtype)
            show(device, f"matmul_4bit {quant_type} absmax=nan", dtype, patterns(bnb.matmul_4bit(A, packed.t(), bad)))


def int8(device):
    rows, cols = 4, 64
    codes = torch.randint(-127, 128, (rows, cols), dtype=torch.int8, generator=torch.Generator().manual_seed(1))
    stats = torch.tensor([float("nan"), float("inf"), 1e30, 2.0])
    show(device, "int8_vectorwise_dequant stats=[nan,inf,1e30,2]", torch.float32,
         patterns(F.int8_vectorwise_dequant(codes.to(device), stats.to(device))))
    products = (codes.to(torch.int32) * 1000).to(device)
    col_stats = torch.full((cols,), 3.0, device=device)
    for bias in (None, torch.ones(cols, device=device, dtype=torch.float16)):
        show(device, f"int8_mm_dequant bias={bias is not None}", torch.float16,
             patterns(F.int8_mm_dequant(products, stats.to(device), col_stats, bias=bias)))
    B = torch.randint(-127, 128, (cols, cols), dtype=torch.int8, generator=torch.Generator().manual_seed(2))
    for dtype in FLOAT_DTYPES:
        out = torch.ops.bitsandbytes.int8_scaled_mm(codes.to(device), B.to(device), stats.to(device), col_stats,
                                                    dtype=dtype)
        show(device, "int8_scaled_mm row_stats=[nan,inf,1e30,2]", dtype, patterns(out))


def optimizer_step(device, name, bits_, dtype, skip_zeros=False):
    """Bits of p and the states at the special elements after one step."""
    n = 4096
    special = [float("nan"), float("inf"), -float("inf"), 0.0]
    g = torch.full((n,), 0.5)
    g[:4] = torch.tensor(special)
    g[4] = 1.0  # element 4: a finite gradient on a NaN parameter
    p = torch.linspace(-1, 1, n)
    g, p = g.to(device, dtype), p.to(device, dtype)
    p.view(INT_VIEW[p.element_size()])[4:6] = NAN_PARAM_BITS[dtype]
    g[5] = float("nan")  # element 5: NaN gradient on a NaN parameter
    two_state = name in ("adam", "ademamix")
    if bits_ == 32:
        state1 = torch.zeros(n, device=device)
        state2 = torch.zeros(n, device=device) if two_state else None
        F.optimizer_update_32bit(name, g, p, state1, 0.9, 1e-8, 1, 1e-3, state2, beta2=0.999, skip_zeros=skip_zeros)
        states = [state1] + ([state2] if two_state else [])
    else:
        state1 = torch.zeros(n, device=device, dtype=torch.uint8)
        state2 = torch.zeros(n, device=device, dtype=torch.uint8) if two_state else None
        absmax1 = torch.zeros(n // 256, device=device)
        absmax2 = torch.zeros(n // 256, device=device) if two_state else None
        qmap1 = F.create_dynamic_map(signed=True).to(device)
        qmap2 = F.create_dynamic_map(signed=False).to(device) if two_state else None
        F.optimizer_update_8bit_blockwise(name, g, p, state1, state2, 0.9, 0.999, 0.0, 0.0, 1e-8, 1, 1e-3, qmap1,
                                          qmap2, absmax1, absmax2, skip_zeros=skip_zeros)
        states = [state1, absmax1[:1]] + ([state2, absmax2[:1]] if two_state else [])
    return {"p": bits(p[:6])} | {f"state{i}": bits(s[:6]) if s.dtype != torch.uint8 else s[:6].tolist()
                                 for i, s in enumerate(states)}


def optimizers(device):
    for bits_ in (32, 8):
        for name in ("adam", "momentum", "lion", "rmsprop", "adagrad"):
            for dtype in FLOAT_DTYPES:
                if device != "cpu" and dtype == torch.bfloat16 and name in ("momentum", "rmsprop", "adagrad") \
                        and bits_ == 32:
                    continue  # CUDA: bf16 gradients only for adam/lamb/lion/ademamix (formats.md 7)
                try:
                    result = optimizer_step(device, name, bits_, dtype)
                except Exception as error:  # noqa: BLE001 (a measurement: print what failed)
                    result = f"{type(error).__name__}: {error}"[:120]
                show(device, f"optimizer {bits_}-bit {name} g=[nan,inf,-inf,0,1@nanp,nan@nanp]", dtype, result)


def route_to_pure_torch(device):
    from bitsandbytes.backends.torch import KERNELS

    library = torch.library.Library("bitsandbytes", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Overriding a previously registered kernel.*")
        for name, kernel in KERNELS.items():
            library.impl(name, kernel, {"cpu": "CPU", "cuda": "CUDA"}[device])
    return library


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    device = args[0] if args else ("cuda" if torch.cuda.is_available() else "cpu")
    if "--pure-torch" in sys.argv:
        keep = route_to_pure_torch(device)  # noqa: F841 (the registrations live as long as the library object)
        LABEL.append(device + "/pure-torch")
    for group in (dequantizers, matmuls, int8, optimizers):
        try:
            group(device)
        except Exception as error:  # noqa: BLE001
            print(LABEL[0] if LABEL else device, group.__name__, "failed:", f"{type(error).__name__}: {error}"[:200], flush=True)


if __name__ == "__main__":
    main()
