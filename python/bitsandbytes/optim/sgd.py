"""SGD with momentum (python_api.md 5.4): op `momentum`; betas = (momentum, dampening), and
dampening and nesterov are not applied (formats.md 6.3)."""

from bitsandbytes.optim.optimizer import Optimizer1State


def _require_momentum(momentum) -> None:
    if momentum == 0:
        raise NotImplementedError("SGD without momentum is not supported!")


class SGD(Optimizer1State):
    def __init__(
        self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, optim_bits=32, args=None,
        min_8bit_size=4096
    ):
        """Momentum SGD with optim_bits-bit states."""
        _require_momentum(momentum)
        super().__init__(
            "momentum", params, lr, (momentum, dampening), 0.0, weight_decay, optim_bits, args, min_8bit_size
        )


class SGD8bit(Optimizer1State):
    def __init__(
        self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, args=None, min_8bit_size=4096
    ):
        """Momentum SGD with 8-bit states."""
        _require_momentum(momentum)
        super().__init__("momentum", params, lr, (momentum, dampening), 0.0, weight_decay, 8, args, min_8bit_size)


class SGD32bit(Optimizer1State):
    def __init__(
        self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, args=None, min_8bit_size=4096
    ):
        """Momentum SGD with 32-bit states."""
        _require_momentum(momentum)
        super().__init__("momentum", params, lr, (momentum, dampening), 0.0, weight_decay, 32, args, min_8bit_size)
