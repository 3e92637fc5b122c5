"""ALKDRec's rank-weighted pairwise distillation (its Eq. 1, ``strategies/alkdrec.py``) as a
``training.BatchDistiller``: the CRM's training loop adds lambda * L_pair on the rows of the (small)
teacher export of the instances the max-min policy drew (``stages/select_instances.py``).

Choices where the paper is silent or our setting differs:
- the LLM's ranked list is its first K (25) items outside the prefix's history, as the evaluation ranks
  (``ranking_kd.candidate_table``), and the student's scores are the CRM's at the target's position;
- Eq. 1 is *added* to L_rec inside the normal training loop (weight ``beta`` = distill.alkdrec.lambda_kd),
  rather than used alone to fine-tune an already trained student: every strategy of ``distill_crm`` then
  shares one loop, schedule and model selection on validation;
- ``num_negatives`` uniform negatives per positive outside the history and the LLM's list (Eq. 1 has one),
  from the distiller's own random stream, so L_rec's batches and negatives are those of plain training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmd4rec_core.distill.upward import TeacherLogits
from llmd4rec_core.strategies.alkdrec import pairwise_distillation_loss
from llmd4rec_core.strategies.ranking_kd import batch_rows, draw_negatives, with_candidates


@dataclass(frozen=True)
class PairwiseKD:
    """ALKDRec's Eq. 1 as a ``training.BatchDistiller`` (``beta`` is its weight in the loss).

    ``candidates`` [R, K]: the LLM's ranked items of each export row (``ranking_kd.candidate_table``)."""

    teacher: TeacherLogits
    candidates: np.ndarray
    beta: float  # weight of L_pair next to L_rec
    num_negatives: int  # negatives per positive
    rng: np.random.Generator  # the negatives' own stream

    def term(
        self,
        users: np.ndarray,
        target_lengths: np.ndarray,
        states: torch.Tensor,
        targets: torch.Tensor,
        table: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        where, student, exclude = batch_rows(self.teacher, users, target_lengths, states, table)
        device = states.device
        if len(where.file_rows) == 0:
            return states.new_zeros(()), torch.zeros(0, device=device)
        top = self.candidates[where.file_rows]  # [M, K]
        m, k = top.shape
        allowed = with_candidates(exclude, top)  # [M, I]
        negatives = draw_negatives(self.rng, allowed, k * self.num_negatives, "distill.alkdrec")  # [M, K*N]
        loss = pairwise_distillation_loss(
            student.masked_fill(exclude, 0.0),  # history scores are never gathered; keep them finite
            torch.as_tensor(top, dtype=torch.int64, device=device),
            torch.as_tensor(negatives.reshape(m, k, self.num_negatives), device=device),
        )
        return loss, torch.ones(m, device=device)
