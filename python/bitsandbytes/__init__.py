from . import _C

__version__ = _C.version()
