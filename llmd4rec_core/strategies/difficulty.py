"""Instance difficulty for ALKDRec's selection, from the teacher CRM (``strategies/alkdrec.py``); a larger
value is a harder instance and only the order matters (``alkdrec.difficulty_rank``). Two definitions
(``distill.alkdrec.difficulty``):

- ``consistency``, the paper's: df_s = minus the mean sigmoid agreement of the session representation with
  the session's own items (:func:`consistency_difficulties`);
- ``target_rank``, not in the paper: the teacher CRM's pessimistic 1-based rank of the instance's target
  among the items outside its history, the evaluation's protocol (:func:`target_ranks`).
"""

from __future__ import annotations

import numpy as np
import torch

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.instances import Instances
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.scoring import ItemScorer, masked_ranks, scores_by_length
from llmd4rec_core.strategies.alkdrec import consistency_difficulty


@torch.no_grad()
def target_ranks(
    scorer: ItemScorer, instances: Instances, max_len: int, batch_size: int, device: torch.device
) -> np.ndarray:
    """[N] int64: the scorer's masked pessimistic rank of each instance's target (1 = best)."""
    ranks = np.empty(len(instances), dtype=np.int64)
    for idx, scores in scores_by_length(
        scorer, instances.histories, max_len, batch_size, device, "difficulty"
    ):
        targets = torch.as_tensor(instances.targets[idx], device=scores.device)
        ranks[idx] = masked_ranks(scores, [instances.histories[i] for i in idx], targets).cpu().numpy()
    return ranks


@torch.no_grad()
def consistency_difficulties(
    model: SequentialRecommender, instances: Instances, max_len: int, batch_size: int, device: torch.device
) -> np.ndarray:
    """[N] float64: the paper's df_s = -(1/|s|) sum_{v in s} sigmoid(Encode(s)^T e_v) of each instance,
    with Encode(s) the CRM's user representation and s the (at most ``max_len``) history items it reads
    (:func:`alkdrec.consistency_difficulty`)."""
    model.eval()
    out = np.empty(len(instances), dtype=np.float64)
    lengths = np.array([min(len(h), max_len) for h in instances.histories])
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x = left_pad([instances.histories[i] for i in idx], max_len).to(device)  # [B, L]
        session = model.user_representation(x)  # [B, d]
        items = model.item_embeddings(x)  # [B, L, d]
        out[idx] = consistency_difficulty(session, items, x != 0).cpu().double().numpy()
    return out
