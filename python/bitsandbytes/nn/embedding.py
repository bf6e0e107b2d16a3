"""Embeddings that keep 32-bit optimizer states (python_api.md 3.5).

Rare tokens get rare, large gradient updates that 8-bit states quantize badly, so these
modules register a GlobalOptimManager override that gives their weight 32-bit states in
any bitsandbytes optimizer.
"""

from typing import Optional

import torch
import torch.nn.functional as torch_F
from torch import Tensor

from bitsandbytes.optim import GlobalOptimManager


class _Float32StatesEmbedding(torch.nn.Embedding):
    """Xavier-uniform initialisation (padding row zeroed) and the 32-bit state override."""

    def _register_32bit_states(self) -> None:
        GlobalOptimManager.get_instance().register_module_override(self, "weight", {"optim_bits": 32})

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.weight)
        self._fill_padding_idx_with_zero()

    def _embedding(self, input: Tensor) -> Tensor:
        return torch_F.embedding(
            input, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse
        )


class StableEmbedding(_Float32StatesEmbedding):
    """An embedding followed by a LayerNorm, for stable training with 8-bit optimizers."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Optional[Tensor] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            num_embeddings, embedding_dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight,
            device, dtype,
        )
        self.norm = torch.nn.LayerNorm(embedding_dim, device=device)
        self._register_32bit_states()

    def forward(self, input: Tensor) -> Tensor:
        # The LayerNorm runs in the default dtype, whatever the weight dtype.
        emb = self._embedding(input).to(torch.get_default_dtype())
        return self.norm(emb).to(self.weight.dtype)


class Embedding(_Float32StatesEmbedding):
    """A plain embedding whose weight keeps 32-bit optimizer states."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Optional[Tensor] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__(
            num_embeddings, embedding_dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight,
            device=device,
        )
        self._register_32bit_states()

    def forward(self, input: Tensor) -> Tensor:
        return self._embedding(input)
