from ._functions import GlobalOutlierPooler, MatmulLtState, matmul_4bit

__all__ = ["GlobalOutlierPooler", "MatmulLtState", "matmul_4bit"]
