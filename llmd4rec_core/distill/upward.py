"""Upward distillation, LLM -> CRM (paper section 4.3, Eq. 6-9): the teacher is the LLM's exported logits.

    L_CRM = L_rec + beta * mean_n( w2_n * KL(softmax(y_l / T2) || softmax(y_c / T2)) )      (Eq. 9)

over the training positions the export holds (``export.instances_per_user`` most recent per user; the
paper distils every training instance, 0 = all). y_l is rebuilt from the Parquet file per batch (exact
top-K, 8-bit tail: within 0.2 % of the full-catalogue KL, measured in docs/results.md); y_c is the CRM's
live full-catalogue score at the same position. With ``kl_mask_history`` both distributions leave out the
prefix's own items (distill/kl.py). w2 is Eq. 8 with the CRM as student: r_c from the live scores
(pessimistic, history masked), r_l the file's ``target_rank``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.distill.kl import history_mask, sample_weight, weighted_kl
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import LogitsFile, full_logits
from llmd4rec_core.scoring import masked_ranks


@dataclass(frozen=True)
class TeacherLogits:
    """An export's rows indexed by user: rows of user u are ``order[start[u]:start[u + 1]]``."""

    file: LogitsFile
    train: list[np.ndarray]  # SequenceData.train, the sequences the file was matched against
    user_index: np.ndarray  # [N] row of each file row's user in SequenceData
    order: np.ndarray  # [N] file rows sorted by (user_index, position)
    start: np.ndarray  # [U + 1] offsets into ``order``

    def rows_of(self, user: int) -> np.ndarray:
        return self.order[self.start[user] : self.start[user + 1]]


def index_teacher(file: LogitsFile, data: SequenceData) -> TeacherLogits:
    """Match an export to the data: every (user_id, position, target) must be a training target.

    Raises :class:`InputError` naming the file and the first mismatching row.
    """
    rows = file.rows
    if file.meta.get("split") != "train":
        raise InputError(f"{file.path}: split is {file.meta.get('split')!r}; the upward KL needs 'train'")
    if file.meta["num_items"] != data.num_items:
        raise InputError(
            f"{file.path}: num_items {file.meta['num_items']} does not match the data's {data.num_items}"
        )
    user_index = np.searchsorted(data.user_ids, rows.user_id)
    for n in range(len(rows)):
        u, pos = int(user_index[n]), int(rows.position[n])
        known = u < data.num_users and data.user_ids[u] == rows.user_id[n]
        if not known or not 1 <= pos < len(data.train[u]) or data.train[u][pos] != rows.target[n]:
            raise InputError(
                f"{file.path}: row {n} (user_id {rows.user_id[n]}, position {pos}, target {rows.target[n]}) "
                "is not a training target of data/processed"
            )
    order = np.lexsort((rows.position, user_index))
    start = np.searchsorted(user_index[order], np.arange(data.num_users + 1))
    return TeacherLogits(file=file, train=data.train, user_index=user_index, order=order, start=start)


def most_recent_rows(file: LogitsFile, data: SequenceData, per_user: int) -> LogitsFile:
    """The rows of each user's ``per_user`` most recent training prefixes (0: every row)."""
    if per_user == 0:
        return file
    rows = file.rows
    length = {int(uid): len(seq) for uid, seq in zip(data.user_ids, data.train, strict=True)}
    keep = np.array([rows.position[n] >= length[int(rows.user_id[n])] - per_user for n in range(len(rows))])
    return LogitsFile(path=file.path, meta=file.meta, rows=rows.take(np.flatnonzero(keep)))


def teacher_logits(teacher: TeacherLogits, file_rows: np.ndarray) -> torch.Tensor:
    """y_l of the given file rows, [M, I] float32, rebuilt from the export (exact top-K, 8-bit tail).

    Rebuilt per batch rather than once for the whole file: an export of every training prefix of
    Beauty holds 1.3e5 rows, whose float32 logits would take 6 GB; their uint8 codes take 1.6 GB.
    """
    return full_logits(teacher.file.rows.take(np.asarray(file_rows, dtype=np.int64)))


@dataclass(frozen=True)
class UpwardKD:
    """The LLM -> CRM distillation term of Eq. 9 (a ``BatchDistiller`` for ``training.train_crm``)."""

    teacher: TeacherLogits
    temperature: float  # T2
    beta: float
    sample_weights: bool  # Eq. 8 weights, else w2 = 1
    mask_history: bool  # kl_mask_history: both distributions over the items outside the prefix
    rows_per_user: int  # teacher rows drawn per user and step (0 = every row of the user in the batch)
    # draws those rows from a stream of its own, so L_rec's batches and negatives stay those of plain SASRec
    rng: np.random.Generator

    def term(
        self,
        users: np.ndarray,
        target_lengths: np.ndarray,
        states: torch.Tensor,
        targets: torch.Tensor,
        table: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted KL before beta, [M] weights w2) for one batch of training pairs.

        users [B] (SequenceData rows), target_lengths [B] (len of each s[1:]), states [B, L, d] (CRM
        hidden states), targets [B, L] (left-padded next-item ids), table [I + 1, d].
        """
        where = teacher_batch(
            self.teacher, users, target_lengths, states.shape[1], self.rows_per_user, self.rng
        )
        if not torch.equal(targets[where.row, where.column].cpu(), where.targets):
            raise RuntimeError(
                f"{self.teacher.file.path}: teacher rows do not line up with the batch targets"
            )
        return upward_kl(self, states, table, where)


@dataclass(frozen=True)
class TeacherBatch:
    """Where a training batch meets the teacher: hidden[row, column] is the CRM's state for file_rows."""

    row: torch.Tensor  # [M] batch row
    column: torch.Tensor  # [M] column of the left-padded target matrix
    file_rows: np.ndarray  # [M]
    histories: list[np.ndarray]  # M prefixes (items before each target)
    targets: torch.Tensor  # [M]


def teacher_batch(
    teacher: TeacherLogits,
    users: np.ndarray,
    target_lengths: np.ndarray,
    width: int,
    rows_per_user: int = 0,
    rng: np.random.Generator | None = None,
) -> TeacherBatch:
    """Locate the teacher's rows in a batch of training pairs.

    users [B]: SequenceData rows; target_lengths [B]: length of each user's target sequence s[1:];
    width: columns of the left-padded batch (targets beyond the model's max_len are cut off, and so are
    their teacher rows). A full-sequence position p is target index p - 1, column width - m + p - 1.
    ``rows_per_user`` > 0 keeps that many of a user's rows, drawn uniformly without replacement by
    ``rng``: over the epochs every row is distilled, at the cost of ``rows_per_user`` rows per user and
    step, and the batch mean of the KL is an unbiased estimate of its mean over all the user's rows.
    """
    rows, columns, file_rows, histories, targets = [], [], [], [], []
    for b, (u, m) in enumerate(zip(users, target_lengths, strict=True)):
        chosen = []
        for r in teacher.rows_of(int(u)):
            column = width - int(m) + int(teacher.file.rows.position[r]) - 1
            if column >= 0:
                chosen.append((r, column))
        if 0 < rows_per_user < len(chosen):
            if rng is None:
                raise ValueError("rows_per_user > 0 draws rows: give an rng")
            chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), rows_per_user, replace=False))]
        for r, column in chosen:
            pos = int(teacher.file.rows.position[r])
            rows.append(b)
            columns.append(column)
            file_rows.append(r)
            histories.append(teacher.train[int(u)][:pos])
            targets.append(int(teacher.file.rows.target[r]))
    return TeacherBatch(
        row=torch.as_tensor(rows, dtype=torch.int64),
        column=torch.as_tensor(columns, dtype=torch.int64),
        file_rows=np.asarray(file_rows, dtype=np.int64),
        histories=histories,
        targets=torch.as_tensor(targets, dtype=torch.int64),
    )


def upward_kl(
    kd: UpwardKD, hidden: torch.Tensor, table: torch.Tensor, batch: TeacherBatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted KL of Eq. 9 before beta, and the weights w2 (Eq. 8).

    hidden: [B, L, d] CRM states of the batch; table: [I + 1, d] item embeddings (row 0 = padding).
    Returns (scalar KL, [M] weights); an empty batch gives (0, empty).
    """
    device = hidden.device
    if len(batch.file_rows) == 0:
        return hidden.new_zeros(()), torch.zeros(0, device=device)
    h = hidden[batch.row.to(device), batch.column.to(device)]  # [M, d]
    student = h @ table[1:].T  # [M, I]  y_c
    teacher = teacher_logits(kd.teacher, batch.file_rows).to(device)  # [M, I]  y_l
    weights = torch.ones(len(batch.file_rows), device=device)
    if kd.sample_weights:
        pad = torch.full_like(student[:, :1], float("-inf"))
        r_c = masked_ranks(torch.cat([pad, student.detach()], 1), batch.histories, batch.targets.to(device))
        r_l = torch.as_tensor(kd.teacher.file.rows.target_rank[batch.file_rows], device=device)
        weights = sample_weight(student_rank=r_c, teacher_rank=r_l)  # Eq. 8
    exclude = history_mask(batch.histories, student.shape[1], device) if kd.mask_history else None
    kl = weighted_kl(teacher, student, kd.temperature, weights if kd.sample_weights else None, exclude)
    return kl, weights
