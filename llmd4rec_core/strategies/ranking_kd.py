"""DLLM2Rec's importance-aware ranking distillation (Eq. 5-10, ``strategies/dllm2rec.py``) as a
``training.BatchDistiller``: the CRM's training loop adds lambda_d * L_d on the teacher export's rows.

Choices where the paper is silent or our teacher differs: the teacher's candidates are its first K items
*outside the prefix's history* (the export's top-100 are unmasked, the evaluation ranks only non-history
items); the student's scores are masked the same way, for the consistency weight too; one uniform
negative per row outside the history and the candidates (the authors' release draws one per instance),
from the distiller's own random stream, so L_rec's batches and negatives are those of plain training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmd4rec_core.distill.kl import history_mask
from llmd4rec_core.distill.upward import TeacherLogits, teacher_batch
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import LogitRows, full_logits
from llmd4rec_core.strategies.dllm2rec import ranking_distillation_loss


def candidates_outside_history(top_items: np.ndarray, history: np.ndarray, k: int) -> np.ndarray:
    """The first k ids of a teacher's ranked list [K_t] that are not in the prefix's history (fewer when
    the list holds fewer)."""
    return top_items[~np.isin(top_items, history)][:k]


def teacher_candidates(rows: LogitRows, row: int, history: np.ndarray, k: int) -> np.ndarray:
    """The teacher's k best items outside ``history`` [k]: from the exact top-K of export row ``row``,
    completed, when the history takes too many of those, from its dequantised tail (best first, ties to
    the lower id)."""
    keep = candidates_outside_history(np.asarray(rows.top_items[row]), history, k)
    if len(keep) == k:
        return keep
    num_items = rows.tail_codes.shape[1]
    if num_items - len(np.unique(history)) < k:
        raise InputError(f"distill.dllm2rec.top_k: {k} exceeds the {num_items} items minus a history")
    scores = full_logits(rows.take(np.array([row])))[0]  # [I], items 1..I
    scores[torch.as_tensor(np.concatenate([history, keep]), dtype=torch.int64) - 1] = float("-inf")
    order = torch.sort(scores, descending=True, stable=True).indices[: k - len(keep)] + 1
    return np.concatenate([keep, order.numpy()]).astype(np.int64)


@dataclass(frozen=True)
class RankingKD:
    """DLLM2Rec's L_d as a ``training.BatchDistiller`` (``beta`` is λ_d, the term's weight)."""

    teacher: TeacherLogits
    beta: float  # λ_d (Eq. 11)
    k: int
    shape: float  # DLLM2Rec's β of Eq. 6-7
    gamma_p: float
    gamma_c: float
    gamma_o: float
    rng: np.random.Generator  # L_d's negatives, a stream of their own

    def term(
        self,
        users: np.ndarray,
        target_lengths: np.ndarray,
        states: torch.Tensor,
        targets: torch.Tensor,
        table: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        where = teacher_batch(self.teacher, users, target_lengths, states.shape[1])
        device = states.device
        if len(where.file_rows) == 0:
            return states.new_zeros(()), torch.zeros(0, device=device)
        rows = self.teacher.file.rows
        num_items = table.shape[0] - 1
        h = states[where.row.to(device), where.column.to(device)]  # [M, d]
        student = h @ table[1:].T  # [M, I]
        exclude = history_mask(where.histories, num_items, device)  # [M, I]
        student = student.masked_fill(exclude, float("-inf"))  # O^S over non-history items too
        top = np.stack(
            [
                teacher_candidates(rows, r, hist, self.k)
                for r, hist in zip(where.file_rows, where.histories, strict=True)
            ]
        )  # [M, K]
        negatives = np.empty((len(top), 1), dtype=np.int64)  # [M, 1]
        for n, hist in enumerate(where.histories):
            if len(np.union1d(hist, top[n])) >= num_items:
                raise InputError(
                    f"distill.dllm2rec: no negative item left outside a history and its top {self.k}"
                )
            while True:
                j = int(self.rng.integers(1, num_items + 1))
                if j not in hist and j not in top[n]:
                    negatives[n, 0] = j
                    break
        rank = torch.as_tensor(np.asarray(rows.target_rank)[where.file_rows], dtype=torch.int64)
        loss = ranking_distillation_loss(
            student,
            torch.as_tensor(top, dtype=torch.int64, device=device),
            rank.to(device),
            torch.as_tensor(negatives, device=device),
            k=self.k,
            beta=self.shape,
            gamma_p=self.gamma_p,
            gamma_c=self.gamma_c,
            gamma_o=self.gamma_o,
        )
        return loss, torch.ones(len(top), device=device)
