"""LAMB (python_api.md 5.4): op `lamb`, Adam's update scaled down to max_unorm * ||p||
(32-bit states; the 8-bit op has no clipping). bias_correction, amsgrad and adam_w_mode
are accepted for compatibility and ignored, as upstream does."""

from bitsandbytes.optim.optimizer import Optimizer2State


class LAMB(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        adam_w_mode=True, optim_bits=32, args=None, min_8bit_size=4096, max_unorm=1.0
    ):
        """LAMB with optim_bits-bit states."""
        super().__init__(
            "lamb", params, lr, betas, eps, weight_decay, optim_bits, args, min_8bit_size, max_unorm=max_unorm
        )


class LAMB8bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        adam_w_mode=True, args=None, min_8bit_size=4096, max_unorm=1.0
    ):
        """LAMB with 8-bit states (no update-norm clipping, so max_unorm stays at its default)."""
        if amsgrad:
            raise ValueError("LAMB8bit does not support amsgrad=True")
        if max_unorm != 1.0:
            raise ValueError("LAMB8bit only supports max_unorm=1.0 (default value for compatibility)")
        super().__init__("lamb", params, lr, betas, eps, weight_decay, 8, args, min_8bit_size, max_unorm=max_unorm)


class LAMB32bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        adam_w_mode=True, args=None, min_8bit_size=4096, max_unorm=1.0
    ):
        """LAMB with 32-bit states."""
        super().__init__("lamb", params, lr, betas, eps, weight_decay, 32, args, min_8bit_size, max_unorm=max_unorm)
