"""Pure-torch optimizer updates (formats.md sections 6 and 7), and the paged-memory fallbacks.

Each kernel follows upstream's CUDA statements in order, in float32, with the fast-math
division (``fast_div``) where the CUDA code divides. Two approximations remain, both
inside the tolerance of formats.md 8.0: ``__powf`` and ``sqrtf`` are torch's correctly
rounded float32 pow/sqrt, not the approximate instructions.

8-bit states (blockwise, 256 elements): dequantize (code value times block absmax),
update in float32, requantize with a new absmax per block. The last block is computed as
a full block whose padding lanes hold gradient 0, state1 code 128 and state2 code 0, as
upstream's threads do, because those lanes take part in the new absmax.
"""

from typing import Optional, Sequence

import torch

from ..._formats import CODE_SIZE, FLOAT_DTYPES, blocks_of
from .blockwise import search_code
from .common.checks import check_same_device, require
from .common.cuda_fast_math import canonical_nan, fast_div, fma_float32, ftz_mul

OPTIMIZER_BLOCKSIZE = 256
# Codes of the padding lanes of a partial last block (see the module docstring).
PADDING_CODE_SIGNED = 128
PADDING_CODE_UNSIGNED = 0

TWO_STATE_NAMES = ("adam", "lamb", "ademamix")
ONE_STATE_NAMES = ("momentum", "lars", "rmsprop", "adagrad", "lion")
SUPPORTED_NAMES = TWO_STATE_NAMES + ONE_STATE_NAMES
# lamb and lars are adam and momentum plus update-norm clipping, which only the
# 32-bit op does; the 8-bit op runs them unclipped, as upstream's CPU backend does.
KERNEL_OF_NAME = {"lamb": "adam", "lars": "momentum"}
# Optimizers whose 32-bit update the update norm can scale (formats.md 7).
CLIPPABLE_NAMES = ("adam", "lamb", "momentum", "lars", "rmsprop")


def _float32(value: float) -> torch.Tensor:
    """A hyper-parameter as the float32 scalar the CUDA kernel receives."""
    return torch.tensor(value, dtype=torch.float32)


def _kernel_name(optimizer_name: str) -> str:
    require(
        optimizer_name in SUPPORTED_NAMES,
        f"Unsupported optimizer name: {optimizer_name}. Supported optimizers: {list(SUPPORTED_NAMES)}",
    )
    return KERNEL_OF_NAME.get(optimizer_name, optimizer_name)


def _bias_corrections(beta1: float, beta2: float, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """correction1 = 1 - beta1^step, correction2 = sqrt(1 - beta2^step), in float32."""
    one = _float32(1.0)
    correction1 = one - torch.pow(_float32(beta1), step)
    correction2 = torch.sqrt(one - torch.pow(_float32(beta2), step))
    return correction1, correction2


def _check_gradient_and_parameter(g: torch.Tensor, p: torch.Tensor) -> None:
    require(g.numel() == p.numel(), f"g and p must have the same number of elements, got {g.numel()} and {p.numel()}")
    require(g.dtype in FLOAT_DTYPES, f"g must be bfloat16, float16, or float32, got {g.dtype}")
    require(
        g.dtype == p.dtype, f"Expected all tensors to have the same dtype, got g.dtype={g.dtype}, p.dtype={p.dtype}"
    )
    check_same_device(g, "g", p.device)


def _check_state(state: Optional[torch.Tensor], name: str, dtype: torch.dtype, numel: int, p: torch.Tensor) -> None:
    require(state is not None, f"{name} is required by this optimizer")
    require(state.dtype == dtype, f"{name} must be {dtype}, got {state.dtype}")
    require(state.numel() == numel, f"{name} must have {numel} elements, got {state.numel()}")
    if not getattr(state, "is_paged", False):
        check_same_device(state, name, p.device)


def _state_numels(kernel: str, n: int) -> tuple[int, int]:
    """Elements of state1 and state2 (0: none) of an optimizer for a parameter of n elements."""
    if kernel == "ademamix":
        return 2 * n, n
    return n, (n if kernel in TWO_STATE_NAMES else 0)


def _store(target: torch.Tensor, values: torch.Tensor) -> None:
    target.copy_(values.reshape(target.shape))


def _store_param(p: torch.Tensor, new_param: torch.Tensor, kept: Optional[torch.Tensor] = None) -> None:
    """p's new values (flat float32, possibly padded): computed ones as CUDA writes them,
    the `kept` elements with their bits unchanged (upstream's kernels leave them alone)."""
    n = p.numel()
    values = canonical_nan(new_param.reshape(-1)[:n].to(p.dtype))
    if kept is not None:
        values = torch.where(kept.reshape(-1)[:n], p.reshape(-1), values)
    _store(p, values)


def _as_param(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A parameter statement's result, rounded to the parameter dtype and widened back."""
    return values.to(dtype).to(torch.float32)


# ---- 32-bit states -------------------------------------------------------------------------------


def _update_norm_scale(
    kernel: str, update: torch.Tensor, unorm_vec: torch.Tensor, max_unorm: float, param_norm: float, eps: float
) -> torch.Tensor:
    """Writes sum(update^2) to unorm_vec and returns the scale of the update (formats.md 7)."""
    unorm_vec.copy_(update.square().sum().reshape(unorm_vec.shape))
    update_norm = torch.sqrt(unorm_vec.reshape(()).to(update.device))
    limit = _float32(max_unorm) * _float32(param_norm)
    if kernel not in TWO_STATE_NAMES:
        limit = limit + _float32(eps)
    limit = limit.to(update.device)
    return torch.where(update_norm > limit, limit / update_norm, torch.ones_like(update_norm))


def optimizer_update_32bit(
    optimizer_name: str,
    g: torch.Tensor,
    p: torch.Tensor,
    state1: torch.Tensor,
    state2: Optional[torch.Tensor],
    unorm_vec: Optional[torch.Tensor],
    max_unorm: float,
    param_norm: float,
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    step: int,
    lr: float,
    gnorm_scale: float,
    skip_zeros: bool = False,
) -> None:
    kernel = _kernel_name(optimizer_name)
    _check_gradient_and_parameter(g, p)
    n = p.numel()
    state1_numel, state2_numel = _state_numels(kernel, n)
    _check_state(state1, "state1", torch.float32, state1_numel, p)
    if state2_numel:
        _check_state(state2, "state2", torch.float32, state2_numel, p)
    clipping = max_unorm > 0.0 and optimizer_name in CLIPPABLE_NAMES
    if clipping:
        require(unorm_vec is not None, "unorm_vec is required when max_unorm > 0")
    if n == 0:
        return

    device = p.device
    f32 = lambda value: _float32(value).to(device)  # noqa: E731
    one = f32(1.0)
    b1, b2, b3, a, e, wd, rate = map(f32, (beta1, beta2, beta3, alpha, eps, weight_decay, lr))
    # g = gnorm_scale * grad, stored in the gradient dtype.
    grad = (g.reshape(-1).to(torch.float32) * f32(gnorm_scale)).to(g.dtype).to(torch.float32)
    param = p.reshape(-1).to(torch.float32)
    s1 = state1.reshape(-1).to(device)
    s2 = state2.reshape(-1).to(device) if state2_numel else None
    correction1, correction2 = (c.to(device) for c in _bias_corrections(beta1, beta2, step))
    keep = (grad == 0) if skip_zeros and kernel != "ademamix" else None

    if kernel == "adam":
        new_s1 = s1 * b1 + (one - b1) * grad
        new_s2 = s2 * b2 + (one - b2) * (grad * grad)
        scale = one
        if clipping:
            c2 = one - torch.pow(b2, step)
            update = fast_div(new_s1 / correction1, torch.sqrt(new_s2 / c2) + e)
            scale = _update_norm_scale(kernel, update, unorm_vec, max_unorm, param_norm, eps)
        step_size = fast_div(-rate * correction2, correction1)
        new_param = _as_param(param + (scale * step_size) * fast_div(new_s1, torch.sqrt(new_s2) + e * correction2),
                              p.dtype)
        if weight_decay > 0.0:
            new_param = _as_param(new_param * (one - rate * wd), p.dtype)
    elif kernel == "ademamix":
        m1, m2 = s1[:n], s1[n:]
        new_m1 = m1 * b1 + (one - b1) * grad
        new_m2 = m2 * b3 + (one - b3) * grad
        new_s2 = s2 * b2 + (one - b2) * (grad * grad)
        new_s1 = torch.cat([new_m1, new_m2])
        numerator = fast_div(new_m1, correction1) + a * new_m2
        denominator = fast_div(torch.sqrt(new_s2), correction2) + e
        new_param = _as_param(param - rate * fast_div(numerator, denominator), p.dtype)
        if weight_decay > 0.0:
            new_param = _as_param(new_param * (one - rate * wd), p.dtype)
    else:
        new_s2 = None
        if kernel != "lion" and weight_decay > 0.0:
            # Coupled (L2) decay, stored in the gradient dtype.
            grad = (grad + param * wd).to(g.dtype).to(torch.float32)
        if kernel == "momentum":
            new_s1 = grad if step == 1 else fma_float32(s1, b1, grad)
            scale = _update_norm_scale(kernel, new_s1, unorm_vec, max_unorm, param_norm, eps) if clipping else one
            new_param = _as_param(param + scale * (-rate * new_s1), p.dtype)
        elif kernel == "lion":
            if weight_decay > 0.0:
                param = _as_param(param * (one - rate * wd), p.dtype)
            direction = torch.sign(s1 * b1 + (one - b1) * grad)
            new_param = _as_param(param - rate * direction, p.dtype)
            new_s1 = s1 * b2 + (one - b2) * grad
        else:
            new_s1 = s1 * b1 + (one - b1) * (grad * grad) if kernel == "rmsprop" else s1 + grad * grad
            update = fast_div(grad, torch.sqrt(new_s1) + e)
            scale = one
            if clipping:
                scale = _update_norm_scale(kernel, update, unorm_vec, max_unorm, param_norm, eps)
            new_param = _as_param(param - scale * (rate * update), p.dtype)

    new_s1 = canonical_nan(new_s1)
    new_s2 = canonical_nan(new_s2) if new_s2 is not None else None
    if keep is not None:
        new_s1 = torch.where(keep, s1, new_s1)
        if new_s2 is not None:
            new_s2 = torch.where(keep, s2, new_s2)
    _store_param(p, new_param, keep)
    _store(state1, new_s1)
    if new_s2 is not None:
        _store(state2, new_s2)


# ---- 8-bit blockwise states ----------------------------------------------------------------------


def _padded(values: torch.Tensor, blocks: int, fill) -> torch.Tensor:
    """Flat values padded to whole blocks of 256, as a [blocks, 256] view."""
    flat = values.reshape(-1)
    padding = blocks * OPTIMIZER_BLOCKSIZE - flat.numel()
    return torch.cat([flat, flat.new_full((padding,), fill)]).view(blocks, OPTIMIZER_BLOCKSIZE)


def _dequantized(codes: torch.Tensor, qmap: torch.Tensor, absmax: torch.Tensor, blocks: int, padding_code: int):
    """qmap[code] * absmax[block] over whole blocks (padding lanes hold padding_code)."""
    # Paged codes live in host-addressed memory whatever the parameter's device.
    values = qmap.reshape(-1)[_padded(codes, blocks, padding_code).to(qmap.device).long()]
    return ftz_mul(values, absmax.reshape(blocks, 1).to(torch.float32))


def _requantized(values: torch.Tensor, qmap: torch.Tensor, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """New codes and block absmax of the [blocks, 256] float32 state values (formats.md 6.0)."""
    # A NaN state is CUDA's positive NaN: the sign fix below reads its sign bit.
    values = canonical_nan(values)
    magnitudes = values.abs()
    absmax = torch.where(torch.isnan(magnitudes), 0.0, magnitudes).amax(dim=1)  # fmaxf ignores NaN
    scaled = fast_div(values, absmax.unsqueeze(1))
    code = qmap.reshape(-1)
    codes = search_code(code, scaled, lower_start=-1.0 if signed else 0.0, substitute_ends=False)
    if signed:
        # The code keeps the sign of the value: one step towards it when the nearest
        # code has the other sign (uint8 arithmetic, so 0 - 1 wraps to 255).
        flipped = torch.signbit(code[codes]) != torch.signbit(values)
        codes = torch.where(flipped, torch.where(values > 0, codes + 1, codes - 1), codes)
        codes = torch.remainder(codes, CODE_SIZE)
    return codes.to(torch.uint8), absmax


def _store_codes(state: torch.Tensor, absmax: torch.Tensor, values: torch.Tensor, qmap: torch.Tensor, n: int,
                 signed: bool) -> None:
    codes, new_absmax = _requantized(values, qmap, signed)
    _store(state, codes.reshape(-1)[:n])
    _store(absmax, new_absmax)


def _check_8bit_state(state, qmap, absmax, name: str, suffix: str, numel: int, blocks: int, p: torch.Tensor):
    _check_state(state, name, torch.uint8, numel, p)
    require(qmap is not None and absmax is not None, f"qmap{suffix} and absmax{suffix} are required with {name}")
    require(
        qmap.dtype == absmax.dtype == torch.float32,
        f"Expected qmap{suffix} and absmax{suffix} to be float32, got qmap{suffix}.dtype={qmap.dtype}, "
        f"absmax{suffix}.dtype={absmax.dtype}",
    )
    require(qmap.numel() == CODE_SIZE, f"qmap{suffix} must have {CODE_SIZE} entries, got {qmap.numel()}")
    require(absmax.numel() == blocks, f"absmax{suffix} must have {blocks} entries, got {absmax.numel()}")
    check_same_device(qmap, f"qmap{suffix}", p.device)
    check_same_device(absmax, f"absmax{suffix}", p.device)


def optimizer_update_8bit_blockwise(
    optimizer_name: str,
    g: torch.Tensor,
    p: torch.Tensor,
    state1: torch.Tensor,
    state2: Optional[torch.Tensor],
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    step: int,
    lr: float,
    qmap1: torch.Tensor,
    qmap2: Optional[torch.Tensor],
    absmax1: torch.Tensor,
    absmax2: Optional[torch.Tensor],
    weight_decay: float,
    gnorm_scale: float,
    skip_zeros: bool = False,
) -> None:
    kernel = _kernel_name(optimizer_name)
    _check_gradient_and_parameter(g, p)
    n = p.numel()
    blocks = blocks_of(n, OPTIMIZER_BLOCKSIZE)
    state1_numel, state2_numel = _state_numels(kernel, n)
    stacked_states = 2 if kernel == "ademamix" else 1  # m1 and m2 share state1, one absmax1 row each
    _check_8bit_state(state1, qmap1, absmax1, "state1", "1", state1_numel, stacked_states * blocks, p)
    if state2_numel:
        _check_8bit_state(state2, qmap2, absmax2, "state2", "2", state2_numel, blocks, p)
    if n == 0:
        return

    device = p.device
    f32 = lambda value: _float32(value).to(device)  # noqa: E731
    one = f32(1.0)
    b1, b2, b3, a, e, wd, rate = map(f32, (beta1, beta2, beta3, alpha, eps, weight_decay, lr))
    raw_grad = _padded(g.to(torch.float32), blocks, 0.0)
    grad = raw_grad * f32(gnorm_scale)
    param = _padded(p.to(torch.float32), blocks, 0.0)
    state1_codes = state1.reshape(-1)
    s1 = _dequantized(state1_codes[:n], qmap1, absmax1.reshape(-1)[:blocks], blocks, PADDING_CODE_SIGNED)

    if kernel in TWO_STATE_NAMES:
        s2 = _dequantized(state2, qmap2, absmax2, blocks, PADDING_CODE_UNSIGNED)
        correction1, correction2 = (c.to(device) for c in _bias_corrections(beta1, beta2, step))
        new_s2 = s2 * b2 + (one - b2) * (grad * grad)
        new_s1 = s1 * b1 + (one - b1) * grad
        if kernel == "adam":
            step_size = fast_div(-rate * correction2, correction1)
            new_param = _as_param(param + step_size * fast_div(new_s1, torch.sqrt(new_s2) + correction2 * e), p.dtype)
        else:
            # m2 lives in the second half of state1, with its own row of absmax1.
            m2 = _dequantized(state1_codes[n:], qmap1, absmax1.reshape(-1)[blocks:], blocks, PADDING_CODE_SIGNED)
            new_m2 = m2 * b3 + (one - b3) * grad
            numerator = fast_div(new_s1, correction1) + a * new_m2
            denominator = fast_div(torch.sqrt(new_s2), correction2) + e
            new_param = _as_param(param - rate * fast_div(numerator, denominator), p.dtype)
        if weight_decay > 0.0:
            new_param = _as_param(new_param * (one - rate * wd), p.dtype)
        # A non-finite gradient resets the element's state and leaves its parameter alone.
        finite = torch.isfinite(grad)
        new_s1 = torch.where(finite, new_s1, 0.0)
        new_s2 = torch.where(finite, new_s2, 0.0)
        _store_codes(state2, absmax2, new_s2, qmap2, n, signed=False)
        if kernel == "ademamix":
            new_m2 = torch.where(finite, new_m2, 0.0)
            m1_codes, m1_absmax = _requantized(new_s1, qmap1, signed=True)
            m2_codes, m2_absmax = _requantized(new_m2, qmap1, signed=True)
            _store(state1, torch.cat([m1_codes.reshape(-1)[:n], m2_codes.reshape(-1)[:n]]))
            _store(absmax1, torch.cat([m1_absmax, m2_absmax]))
        else:
            _store_codes(state1, absmax1, new_s1, qmap1, n, signed=True)
        _store_param(p, new_param, ~finite)
        return

    if kernel != "lion" and weight_decay > 0.0:
        grad = grad + param * wd
    if kernel == "momentum":
        new_s1 = grad if step == 1 else s1 * b1 + grad
        new_param = _as_param(fma_float32(-rate, new_s1, param), p.dtype)
    elif kernel == "lion":
        if weight_decay > 0.0:
            param = _as_param(param * (one - rate * wd), p.dtype)
        update = _as_param(rate * torch.sign(s1 * b1 + (one - b1) * grad), p.dtype)
        new_s1 = s1 * b2 + (one - b2) * grad
        new_param = _as_param(param - update, p.dtype)
    else:
        new_s1 = s1 * b1 + (one - b1) * (grad * grad) if kernel == "rmsprop" else s1 + grad * grad
        # Upstream's 8-bit kernels divide the raw gradient (no gnorm_scale, no decay).
        new_param = _as_param(param - rate * fast_div(raw_grad, torch.sqrt(new_s1) + e), p.dtype)
    untouched = None
    if skip_zeros:
        untouched = raw_grad == 0
        new_s1 = torch.where(untouched, s1, new_s1)
    _store_codes(state1, absmax1, new_s1, qmap1, n, signed=True)
    _store_param(p, new_param, untouched)


# ---- several tensors in one call (this package's extension) --------------------------------------


def optimizer_update_multi_tensor(
    optimizer_name: str,
    g: Sequence[torch.Tensor],
    p: Sequence[torch.Tensor],
    state1: Sequence[torch.Tensor],
    state2: Sequence[torch.Tensor],
    absmax1: Sequence[torch.Tensor],
    absmax2: Sequence[torch.Tensor],
    qmap1: Optional[torch.Tensor],
    qmap2: Optional[torch.Tensor],
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    step: int,
    lr: float,
    gnorm_scale: float,
    skip_zeros: bool = False,
) -> None:
    """The single-tensor update of each (g[i], p[i], state...[i]); 8-bit when state1 is uint8."""
    count = len(p)
    require(len(g) == count, f"g and p must be lists of the same length, got {len(g)} and {count}")
    require(len(state1) == count, f"state1 must have one tensor per parameter ({count}), got {len(state1)}")
    for name, tensors in (("state2", state2), ("absmax1", absmax1), ("absmax2", absmax2)):
        require(len(tensors) in (0, count), f"{name} must be empty or have {count} tensors, got {len(tensors)}")
    if count == 0:
        return
    dtypes = {t.dtype for t in (*g, *p)}
    require(len(dtypes) == 1, f"all g and p tensors must have one dtype, got {sorted(map(str, dtypes))}")
    eight_bit = state1[0].dtype == torch.uint8
    if eight_bit:
        require(len(absmax1) == count, f"absmax1 must have {count} tensors for 8-bit states, got {len(absmax1)}")
        require(qmap1 is not None, "qmap1 is required for 8-bit states")
    else:
        require(not absmax1 and not absmax2, "absmax1 and absmax2 must be empty for 32-bit states")
    for index in range(count):
        second = state2[index] if state2 else None
        if eight_bit:
            optimizer_update_8bit_blockwise(
                optimizer_name, g[index], p[index], state1[index], second, beta1, beta2, beta3, alpha, eps, step, lr,
                qmap1, qmap2 if second is not None else None, absmax1[index],
                absmax2[index] if absmax2 else None, weight_decay, gnorm_scale, skip_zeros,
            )
        else:
            optimizer_update_32bit(
                optimizer_name, g[index], p[index], state1[index], second, None, 0.0, 0.0, beta1, beta2, beta3,
                alpha, eps, weight_decay, step, lr, gnorm_scale, skip_zeros,
            )


# ---- paged memory --------------------------------------------------------------------------------


# paged_empty has no tensor argument to dispatch on: the glue's one kernel serves every device
# (python/csrc/ops/optimizer.cpp; host memory unless the device's backend has managed memory).


def paged_prefetch(t: torch.Tensor, device: torch.device, to_device: bool) -> None:
    """Ordinary memory has nothing to migrate."""


KERNELS = {
    "optimizer_update_32bit": optimizer_update_32bit,
    "optimizer_update_8bit_blockwise": optimizer_update_8bit_blockwise,
    "optimizer_update_multi_tensor": optimizer_update_multi_tensor,
    "paged_prefetch": paged_prefetch,
}
