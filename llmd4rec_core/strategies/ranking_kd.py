"""DLLM2Rec's importance-aware ranking distillation (Eq. 5-10, ``strategies/dllm2rec.py``) as a
``training.BatchDistiller``: the CRM's training loop adds lambda_d * L_d on the teacher export's rows.

Choices where the paper is silent or our teacher differs: the teacher's candidates are its first K items
*outside the prefix's history* (the export's top-100 are unmasked, the evaluation ranks only non-history
items); the student's scores are masked the same way, for the consistency weight too; one uniform
negative per row outside the history and the candidates (the authors' release draws one per instance),
from the distiller's own random stream, so L_rec's batches and negatives are those of plain training.

Speed: every export row's candidates are fixed, so :func:`candidate_table` computes them once when the
distiller is built; negatives are drawn for the whole batch at once (:func:`draw_negatives`). That
rejection sampling consumes the random stream in another order than the per-row loop it replaced (commit
a5d582c), so runs from before that commit are not reproduced draw for draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmd4rec_core.distill.kl import history_mask
from llmd4rec_core.distill.upward import TeacherBatch, TeacherLogits, teacher_batch
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import LogitRows, full_logits
from llmd4rec_core.strategies.dllm2rec import ranking_distillation_loss


def candidates_outside_history(top_items: np.ndarray, history: np.ndarray, k: int) -> np.ndarray:
    """The first k ids of a teacher's ranked list [K_t] that are not in the prefix's history (fewer when
    the list holds fewer)."""
    return top_items[~np.isin(top_items, history)][:k]


def teacher_candidates(
    rows: LogitRows, row: int, history: np.ndarray, k: int, what: str = "top_k"
) -> np.ndarray:
    """The teacher's k best items outside ``history`` [k]: from the exact top-K of export row ``row``,
    completed, when the history takes too many of those, from its dequantised tail (best first, ties to
    the lower id). ``what`` names k's param in the error raised when too few items are left."""
    keep = candidates_outside_history(np.asarray(rows.top_items[row]), history, k)
    if len(keep) == k:
        return keep
    num_items = rows.tail_codes.shape[1]
    if num_items - len(np.unique(history)) < k:
        raise InputError(f"{what}: {k} exceeds the {num_items} items minus a history")
    scores = full_logits(rows.take(np.array([row])))[0]  # [I], items 1..I
    scores[torch.as_tensor(np.concatenate([history, keep]), dtype=torch.int64) - 1] = float("-inf")
    order = torch.sort(scores, descending=True, stable=True).indices[: k - len(keep)] + 1
    return np.concatenate([keep, order.numpy()]).astype(np.int64)


def row_history(teacher: TeacherLogits, row: int) -> np.ndarray:
    """The prefix (every training item before the target) of export row ``row``."""
    return teacher.train[int(teacher.user_index[row])][: int(teacher.file.rows.position[row])]


def candidate_table(teacher: TeacherLogits, k: int, what: str) -> np.ndarray:
    """[R, k] int64: :func:`teacher_candidates` of every row of the teacher's export, in file order."""
    rows = teacher.file.rows
    table = np.empty((len(rows), k), dtype=np.int64)
    for r in range(len(rows)):
        table[r] = teacher_candidates(rows, r, row_history(teacher, r), k, what)
    return table


def draw_negatives(rng: np.random.Generator, excluded: torch.Tensor, count: int, what: str) -> np.ndarray:
    """[M, count] int64 item ids drawn uniformly, with replacement, from the items not ``excluded`` in
    their row (excluded [M, I] bool, item j + 1 in column j); rejection sampling, batch-wide.

    Raises :class:`InputError` (naming ``what``) when a row excludes every item."""
    allowed = ~excluded.cpu().numpy()  # [M, I]
    if len(allowed) and not allowed.any(1).all():
        raise InputError(f"{what}: no negative item left outside a history and its teacher candidates")
    num_items = allowed.shape[1]
    out = rng.integers(1, num_items + 1, size=(len(allowed), count))  # [M, count]
    rows = np.arange(len(allowed))[:, None]
    clash = ~allowed[rows, out - 1]
    while clash.any():
        out[clash] = rng.integers(1, num_items + 1, size=int(clash.sum()))
        clash = ~allowed[rows, out - 1]
    return out


def batch_rows(
    teacher: TeacherLogits,
    users: np.ndarray,
    target_lengths: np.ndarray,
    states: torch.Tensor,
    table: torch.Tensor,
) -> tuple[TeacherBatch, torch.Tensor, torch.Tensor]:
    """The batch's teacher rows, the student's scores at their targets' positions with the prefix's
    history at -inf [M, I], and that history mask [M, I] (states [B, L, d], table [I + 1, d])."""
    where = teacher_batch(teacher, users, target_lengths, states.shape[1])
    device = states.device
    h = states[where.row.to(device), where.column.to(device)]  # [M, d]
    student = h @ table[1:].T  # [M, I]
    exclude = history_mask(where.histories, table.shape[0] - 1, device)  # [M, I]
    return where, student.masked_fill(exclude, float("-inf")), exclude


def with_candidates(exclude: torch.Tensor, candidates: np.ndarray) -> torch.Tensor:
    """``exclude`` [M, I] with each row's candidate ids [M, K] (1-based) set too."""
    index = torch.as_tensor(candidates, dtype=torch.int64, device=exclude.device) - 1
    return exclude.clone().scatter_(1, index, True)


@dataclass(frozen=True)
class RankingKD:
    """DLLM2Rec's L_d as a ``training.BatchDistiller`` (``beta`` is λ_d, the term's weight).

    ``candidates`` [R, k]: :func:`candidate_table` of ``teacher`` (computed once by the caller)."""

    teacher: TeacherLogits
    candidates: np.ndarray
    beta: float  # λ_d (Eq. 11)
    shape: float  # DLLM2Rec's β of Eq. 6-7
    gamma_p: float
    gamma_c: float
    gamma_o: float
    rng: np.random.Generator  # L_d's negatives, a stream of their own

    @property
    def k(self) -> int:
        return int(self.candidates.shape[1])

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
        negatives = draw_negatives(self.rng, with_candidates(exclude, top), 1, "distill.dllm2rec")  # [M, 1]
        rank = np.asarray(self.teacher.file.rows.target_rank)[where.file_rows]
        loss = ranking_distillation_loss(
            student,
            torch.as_tensor(top, dtype=torch.int64, device=device),
            torch.as_tensor(rank, dtype=torch.int64, device=device),
            torch.as_tensor(negatives, device=device),
            k=self.k,
            beta=self.shape,
            gamma_p=self.gamma_p,
            gamma_c=self.gamma_c,
            gamma_o=self.gamma_o,
        )
        return loss, torch.ones(len(top), device=device)
