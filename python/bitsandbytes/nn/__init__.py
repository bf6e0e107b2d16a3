from . import parametrize
from .embedding import Embedding, StableEmbedding
from .int8 import Embedding8bit, Int8Params, Linear8bitLt, OutlierAwareLinear
from .modules import (
    Embedding4bit,
    EmbeddingFP4,
    EmbeddingNF4,
    Linear4bit,
    LinearFP4,
    LinearNF4,
    Params4bit,
)

__all__ = [
    "Embedding",
    "Embedding4bit",
    "Embedding8bit",
    "EmbeddingFP4",
    "EmbeddingNF4",
    "Int8Params",
    "Linear4bit",
    "Linear8bitLt",
    "LinearFP4",
    "LinearNF4",
    "OutlierAwareLinear",
    "Params4bit",
    "StableEmbedding",
]
