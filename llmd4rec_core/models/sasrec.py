"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), the CRM of LLMD4Rec.

Paper section 3.2: item embeddings E (Eq. e_t = E[i_t]), a causal self-attention encoder producing h_u,
and dot-product scores y_c = h_u^T E[i] over the whole catalogue, with E tied between input and output.

Choices beyond Kang & McAuley (as in current reimplementations, e.g. RecBole/nanoGPT style): pre-LayerNorm
blocks (LayerNorm before Q, K and V alike), GELU in the feed-forward net, biases on the Q/K/V projection,
embeddings scaled by sqrt(d), a final LayerNorm. The loss is chosen in ``losses.py``.

Inputs are left-padded with 0. Positions are counted from the right end of the window (the most recent
item always has position ``max_len - 1``), so trimming a batch's leading padding never changes a result.
A padded query attends only to itself, which keeps its row finite; real queries never see padding keys.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmd4rec_core.models.base import SequentialRecommender


@dataclass(frozen=True)
class SASRecConfig:
    num_items: int  # catalogue size; ids are 1..num_items, 0 is padding
    hidden_size: int  # d
    max_len: int
    num_layers: int
    num_heads: int
    dropout: float

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class SelfAttentionBlock(nn.Module):
    """Pre-LayerNorm causal multi-head self-attention followed by a position-wise feed-forward net."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.ln_attn = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(d, d))
        self.dropout = nn.Dropout(cfg.dropout)
        self.attn_dropout = cfg.dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        # x: [B, L, d]; attn_mask: [B, 1, L, L] bool, True = may attend
        b, length, d = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(d, dim=-1)
        q, k, v = (t.view(b, length, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v))
        drop = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)  # [B, H, L, d/H]
        y = y.transpose(1, 2).reshape(b, length, d)
        x = x + self.dropout(self.proj(y))
        return x + self.dropout(self.ffn(self.ln_ffn(x)))


class SASRec(SequentialRecommender):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_embeddings = nn.Embedding(cfg.num_items + 1, cfg.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.max_len, cfg.hidden_size)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(SelfAttentionBlock(cfg) for _ in range(cfg.num_layers))
        self.ln_out = nn.LayerNorm(cfg.hidden_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids: [B, L] left-padded item ids (L <= max_len) -> hidden states [B, L, d]."""
        length = input_ids.shape[1]
        is_item = input_ids != 0  # [B, L]
        positions = torch.arange(self.cfg.max_len - length, self.cfg.max_len, device=input_ids.device)
        x = self.item_embeddings(input_ids) * math.sqrt(self.cfg.hidden_size) + self.position_embeddings(
            positions
        )
        x = self.emb_dropout(x) * is_item.unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=input_ids.device)
        attn_mask = (causal & is_item[:, None, :]) | eye  # [B, L, L]: real keys at or before the query
        for block in self.blocks:
            x = block(x, attn_mask.unsqueeze(1))
        return self.ln_out(x)
