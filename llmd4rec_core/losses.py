"""Next-item recommendation losses L_rec of the CRMs (paper section 3.2), computed only at real targets.

All take hidden states at real (non-padding) positions, h: [N, d], the target ids [N] in 1..num_items,
and the tied item table E: [num_items + 1, d] (row 0 = padding, never a candidate).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossKind = Literal["ce", "sampled", "bce"]


def full_softmax_ce(h: torch.Tensor, targets: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the whole catalogue: -log softmax(h E[1:]^T)[target]."""
    logits = h @ table[1:].T  # [N, num_items]
    return F.cross_entropy(logits, targets - 1)


def sampled_softmax_ce(
    h: torch.Tensor,
    targets: torch.Tensor,
    table: torch.Tensor,
    num_negatives: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Softmax over the target and ``num_negatives`` uniform negatives shared by the batch.

    Negatives equal to a row's target (accidental hits) are masked out. With a uniform proposal the
    log-Q correction is a constant and cancels.
    """
    num_items = table.shape[0] - 1
    negatives = torch.randint(1, num_items + 1, (num_negatives,), generator=generator).to(h.device)  # [S]
    pos = (h * table[targets]).sum(-1, keepdim=True)  # [N, 1]
    neg = h @ table[negatives].T  # [N, S]
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos, neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def bce_one_negative(
    h: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The original SASRec loss: -log σ(s_pos) - log(1 - σ(s_neg)), one uniform negative per target.

    Unlike the original, negatives are drawn from the whole catalogue (a draw equal to the target,
    chance 1/num_items, is kept).
    """
    num_items = table.shape[0] - 1
    negatives = torch.randint(1, num_items + 1, targets.shape, generator=generator).to(h.device)  # [N]
    pos = (h * table[targets]).sum(-1)
    neg = (h * table[negatives]).sum(-1)
    return -(F.logsigmoid(pos) + F.logsigmoid(-neg)).mean()


def recommendation_loss(
    kind: LossKind,
    h: torch.Tensor,
    targets: torch.Tensor,
    table: torch.Tensor,
    num_negatives: int,
    generator: torch.Generator,
) -> torch.Tensor:
    if kind == "ce":
        return full_softmax_ce(h, targets, table)
    if kind == "sampled":
        return sampled_softmax_ce(h, targets, table, num_negatives, generator)
    if kind == "bce":
        return bce_one_negative(h, targets, table, generator)
    raise ValueError(f"unknown loss {kind!r}")
