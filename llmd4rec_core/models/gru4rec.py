"""GRU4Rec: session-based recommendation with recurrent neural networks (Hidasi et al., ICLR 2016).

This is the sequential-recommendation variant used by S3-Rec/RecBole baselines: item embeddings tied
with the output table, a GRU over the user's history and a dense layer, trained with the losses of
``losses.py`` on every position; not the original session-parallel mini-batches with TOP1/BPR loss.

Same interface as SASRec: left-padded ids [B, L] -> hidden states [B, L, d], scores against the tied item
embedding table. Sequences are packed, so the GRU never steps over padding and a user's result does not
depend on how much padding precedes it (nor on the other rows of its batch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from llmd4rec_core.models.base import SequentialRecommender


@dataclass(frozen=True)
class GRU4RecConfig:
    num_items: int  # catalogue size; ids are 1..num_items, 0 is padding
    hidden_size: int
    max_len: int
    num_layers: int
    dropout: float

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class GRU4Rec(SequentialRecommender):
    def __init__(self, cfg: GRU4RecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_embeddings = nn.Embedding(cfg.num_items + 1, cfg.hidden_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.hidden_size, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True)
        self.out_dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        nn.init.normal_(self.item_embeddings.weight, std=0.02)
        with torch.no_grad():
            self.item_embeddings.weight[0].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids: [B, L] left-padded ids -> hidden states [B, L, d] (zeros at padded positions)."""
        length = input_ids.shape[1]
        lengths = (input_ids != 0).sum(1)  # [B]
        # Move each row's items to the front (right padding) so the GRU can be packed.
        shift = (torch.arange(length, device=input_ids.device) + (length - lengths)[:, None]) % length
        right = torch.gather(input_ids, 1, shift)  # [B, L] right-padded
        x = self.emb_dropout(self.item_embeddings(right))
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.gru(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=length)  # [B, L, d]
        y = self.out(self.out_dropout(y))
        unshift = (torch.arange(length, device=input_ids.device) - (length - lengths)[:, None]) % length
        y = torch.gather(y, 1, unshift[..., None].expand(-1, -1, y.shape[-1]))  # back to left padding
        return y * (input_ids != 0).unsqueeze(-1)
