"""Adam (python_api.md 5.4): op `adam`, decoupled weight decay after the update
(formats.md 6.1), so Adam and AdamW differ only in the default weight_decay.
"""

from bitsandbytes.optim.optimizer import Optimizer2State, check_adam_8bit_options


class Adam(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """Adam with optim_bits-bit states; amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, optim_bits, args, min_8bit_size, is_paged=is_paged
        )


class Adam8bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """Adam with 8-bit states; amsgrad is ignored."""
        check_adam_8bit_options("Adam8bit", amsgrad, optim_bits)
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 8, args, min_8bit_size, is_paged=is_paged
        )


class Adam32bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """Adam with 32-bit states; amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 32, args, min_8bit_size, is_paged=is_paged
        )


class PagedAdam(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """Adam with optim_bits-bit states, paged (is_paged is accepted and ignored); amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, optim_bits, args, min_8bit_size, is_paged=True
        )


class PagedAdam8bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """Adam with 8-bit states, paged (is_paged is accepted and ignored); amsgrad is ignored."""
        check_adam_8bit_options("PagedAdam8bit", amsgrad, optim_bits)
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 8, args, min_8bit_size, is_paged=True
        )


class PagedAdam32bit(Optimizer2State):
    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        optim_bits=32, args=None, min_8bit_size=4096, is_paged=False
    ):
        """Adam with 32-bit states, paged (is_paged is accepted and ignored); amsgrad is ignored."""
        super().__init__(
            "adam", params, lr, betas, eps, weight_decay, 32, args, min_8bit_size, is_paged=True
        )
