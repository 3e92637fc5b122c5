"""strategies/pairwise_kd.py: ALKDRec's Eq. 1 as a BatchDistiller of the CRM training loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import llmd4rec_core.strategies.pairwise_kd as pairwise_kd
from llmd4rec_core.batching import left_pad
from llmd4rec_core.distill.upward import TeacherLogits, index_teacher
from llmd4rec_core.logits.schema import LogitsFile
from llmd4rec_core.strategies.pairwise_kd import PairwiseKD
from llmd4rec_core.strategies.ranking_kd import candidate_table, row_history
from tests.unit.strategies.test_ranking_kd import wide_teacher
from tests.unit.test_training import (  # _one_thread: autouse, one torch thread for tiny models
    MAX_LEN,
    NUM_ITEMS,
    _one_thread,  # noqa: F401
    crm_params,
    fresh_model,
    successor_data,
)


def subset_teacher(rows: int) -> TeacherLogits:
    """The wide teacher's export cut to its first ``rows`` rows: a budget-sized export, as ALKDRec's."""
    full = wide_teacher().file
    file = LogitsFile(full.path, full.meta, full.rows.take(np.arange(rows)))
    return index_teacher(file, successor_data())


def distiller(
    weight: float, teacher: TeacherLogits | None = None, k: int = 5, negatives: int = 2
) -> PairwiseKD:
    teacher = teacher or wide_teacher()
    return PairwiseKD(
        teacher, candidate_table(teacher, k, "top_k"), weight, negatives, np.random.default_rng(3)
    )


def batch(users: np.ndarray) -> tuple[Any, torch.Tensor, np.ndarray]:
    data = successor_data()
    model = fresh_model("sasrec", crm_params("sasrec"))
    targets = [data.train[u][1:] for u in users]
    states = model(left_pad([data.train[u][:-1] for u in users], MAX_LEN))
    return model, states, np.array([len(t) for t in targets])


def test_term_feeds_the_kernel_candidates_and_negatives_outside_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    def spy(student: torch.Tensor, top: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        seen.update(student=student, top=top, neg=neg)
        return student.sum() * 0.0 + 1.0

    monkeypatch.setattr(pairwise_kd, "pairwise_distillation_loss", spy)
    kd = distiller(1.0)
    users = np.arange(8)
    model, states, lengths = batch(users)
    loss, weights = kd.term(users, lengths, states, torch.zeros(1), model.item_embeddings.weight)
    top, neg, student = seen["top"], seen["neg"], seen["student"]
    m = len(weights)
    rows = [r for u in users for r in kd.teacher.rows_of(int(u))]  # up to two export rows per user
    assert m == len(rows) > len(users) and top.shape == (m, 5) and neg.shape == (m, 5, 2)
    assert torch.isfinite(student).all() and student.shape == (m, NUM_ITEMS)
    for n, r in enumerate(rows):
        history = set(row_history(kd.teacher, r).tolist())
        assert top[n].tolist() == kd.candidates[r].tolist()
        assert not set(neg[n].flatten().tolist()) & (history | set(top[n].tolist()))
    assert float(loss.detach()) == 1.0


def test_users_without_teacher_rows_get_no_term() -> None:
    kd = distiller(1.0, subset_teacher(3))
    users = np.arange(8)
    model, states, lengths = batch(users)
    loss, weights = kd.term(users, lengths, states, torch.zeros(1), model.item_embeddings.weight)
    assert len(weights) == 3 and float(loss.detach()) > 0
    far = np.arange(40, 48)
    model, states, lengths = batch(far)
    loss, weights = kd.term(far, lengths, states, torch.zeros(1), model.item_embeddings.weight)
    assert len(weights) == 0 and float(loss) == 0.0
