"""Kernels that bitsandbytes registers from Python.

Native kernels (CPU, CUDA) are registered by the extension ``bitsandbytes._C``;
``backends.torch`` holds the pure-torch implementation, one module per op family,
that serves every other device and doubles as the readable reference the tests
compare against.
"""
