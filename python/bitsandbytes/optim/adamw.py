"""AdamW (python_api.md 5.4): op `adam` with weight_decay 1e-2 by default.
"""

from bitsandbytes.optim.optimizer import Optimizer2State, check_adam_8bit_options


class AdamW(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """AdamW with optim_bits-bit states; amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, optim_bits, args, min_8bit_size, is_paged=is_paged
        )


class AdamW8bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """AdamW with 8-bit states; amsgrad is ignored."""
        check_adam_8bit_options("AdamW8bit", amsgrad, optim_bits)
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 8, args, min_8bit_size, is_paged=is_paged
        )


class AdamW32bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """AdamW with 32-bit states; amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 32, args, min_8bit_size, is_paged=is_paged
        )


class PagedAdamW(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096
    ):
        """AdamW with optim_bits-bit states, paged; amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, optim_bits, args, min_8bit_size, is_paged=True
        )


class PagedAdamW8bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096
    ):
        """AdamW with 8-bit states, paged; amsgrad is ignored."""
        check_adam_8bit_options("PagedAdamW8bit", amsgrad, optim_bits)
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 8, args, min_8bit_size, is_paged=True
        )


class PagedAdamW32bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096
    ):
        """AdamW with 32-bit states, paged; amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 32, args, min_8bit_size, is_paged=True
        )
