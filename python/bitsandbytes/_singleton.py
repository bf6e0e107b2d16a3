"""The get_instance() of upstream's singletons (GlobalOptimManager, GlobalPageManager,
GlobalOutlierPooler, CUBLAS_Context): ``get_instance = classmethod(singleton_instance)``."""


def singleton_instance(cls):
    """The class's one instance, made on first use (its __init__ refuses) and initialize()d."""
    if cls._instance is None:
        cls._instance = cls.__new__(cls)
        cls._instance.initialize()
    return cls._instance
