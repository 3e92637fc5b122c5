"""Shared interface of the conventional recommenders (CRMs)."""

from __future__ import annotations

import torch
from torch import nn


class SequentialRecommender(nn.Module):
    """Maps left-padded ids [B, L] to hidden states [B, L, d]; scores items with the tied embedding table."""

    item_embeddings: nn.Embedding

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def user_representation(self, input_ids: torch.Tensor) -> torch.Tensor:
        """h_u (paper section 3.2): the hidden state at the most recent item. [B, L] -> [B, d]."""
        return self.forward(input_ids)[:, -1, :]

    def score_items(self, input_ids: torch.Tensor) -> torch.Tensor:
        """y_c = h_u^T E[i] for every item i (column 0 = padding). [B, L] -> [B, num_items + 1]."""
        return self.user_representation(input_ids) @ self.item_embeddings.weight.T
