"""Kernels that bitsandbytes registers from Python.

Native kernels (CPU, CUDA) are registered by the extension ``bitsandbytes._C``;
``torch_ops`` holds the pure-torch implementation that serves every other device
and doubles as the readable reference the tests compare against.
"""
