"""Full-ranking metrics (DESIGN.md section 2): pessimistic target ranks, HR@K, NDCG@K, MRR.

rank = 1 + number of *other* catalogue items scored >= the target (ties count against the model).
Masked items carry -inf; a masked target therefore gets the worst rank, num_items.
"""

from __future__ import annotations

import numpy as np
import torch


def mask_history_(scores: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """Set the scores of each row's history items to -inf, in place.

    scores: [B, num_items + 1] (column 0 = padding); history: [B, L] item ids, 0 = padding.
    """
    scores.scatter_(1, history, float("-inf"))
    return scores


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pessimistic 1-based rank of each target among items 1..num_items.

    scores: [B, num_items + 1] with column 0 = padding (ignored); targets: [B] ids in 1..num_items.
    Returns [B] int64.
    """
    target_scores = scores.gather(1, targets[:, None])  # [B, 1]
    items = scores[:, 1:]
    # NaN compares false with everything; count it against the model too (a NaN target ranks last),
    # otherwise a diverged model gets rank 0 and an infinite NDCG that model selection would pick.
    beats = (items >= target_scores) | items.isnan() | target_scores.isnan()
    return beats.sum(dim=1)  # counts the target itself once -> 1 + others


def ranking_metrics(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
    """HR@K = mean[rank <= K]; NDCG@K = mean[rank <= K] / log2(rank + 1); MRR = mean 1 / rank."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no ranks to average")
    if not np.all(ranks >= 1):
        raise ValueError(f"ranks are 1-based, got minimum {ranks.min()}")
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float((hit / np.log2(ranks + 1.0)).mean())
    out["mrr"] = float((1.0 / ranks).mean())
    return out
