"""strategies/ranking_kd.py: DLLM2Rec's L_d as a BatchDistiller of the CRM training loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import llmd4rec_core.strategies.ranking_kd as ranking_kd
from llmd4rec_core.batching import left_pad
from llmd4rec_core.errors import InputError
from llmd4rec_core.strategies.ranking_kd import (
    RankingKD,
    candidate_table,
    candidates_outside_history,
    draw_negatives,
    row_history,
    teacher_candidates,
)
from tests.unit.test_training import (  # _one_thread: autouse, one torch thread for tiny models
    MAX_LEN,
    NUM_ITEMS,
    _one_thread,  # noqa: F401
    crm_params,
    fresh_model,
    shuffled_teacher,
    successor_data,
)


def wide_teacher() -> Any:
    """An in-memory export (top 12) of the last two training positions of every user."""
    from pathlib import Path

    from llmd4rec_core.data.instances import split_instances
    from llmd4rec_core.distill.upward import index_teacher
    from llmd4rec_core.logits.schema import LogitRows, LogitsFile, compress

    data = successor_data()
    inst = split_instances(data, "train", 2)
    logits = torch.stack(
        [shuffled_teacher(h, int(t)) for h, t in zip(inst.histories, inst.targets, strict=True)]
    )
    rows = LogitRows(
        user_id=inst.user_id.astype(np.int32),
        position=inst.position.astype(np.int32),
        target=inst.targets.astype(np.int32),
        target_rank=np.full(len(inst), 3, np.int32),
        **compress(logits, top_k=12),
    )
    file = LogitsFile(Path("t.parquet"), {"split": "train", "num_items": NUM_ITEMS, "top_k": 12}, rows)
    return index_teacher(file, data)


def distiller(lambda_d: float, k: int = 3) -> RankingKD:
    teacher = wide_teacher()
    top = candidate_table(teacher, k, "top_k")
    return RankingKD(teacher, top, lambda_d, 1.0, 0.3, 0.5, 0.1, np.random.default_rng(5))


def test_candidates_skip_history_items_in_rank_order() -> None:
    top = np.array([5, 3, 9, 1, 7])
    assert candidates_outside_history(top, np.array([3, 1]), 2).tolist() == [5, 9]
    assert candidates_outside_history(top, np.array([], dtype=np.int64), 3).tolist() == [5, 3, 9]
    assert candidates_outside_history(top, np.array([5, 3, 9]), 3).tolist() == [1, 7]


def test_candidates_are_completed_from_the_tail_when_the_history_fills_the_top() -> None:
    from llmd4rec_core.logits.schema import LogitRows, compress

    logits = torch.tensor([[9.0, 8.0, 1.0, 7.0, 3.0, 5.0]])  # items 1..6; top-3 = 1, 2, 4
    rows = LogitRows(np.zeros(1, np.int32), np.ones(1, np.int32), np.ones(1, np.int32), np.ones(1, np.int32),
                     **compress(logits, top_k=3))  # fmt: skip
    # history {1, 4}: the top-3 leaves item 2; the tail (6 > 5 > 3) completes it to 2, 6, 5
    assert teacher_candidates(rows, 0, np.array([1, 4]), 3).tolist() == [2, 6, 5]
    assert teacher_candidates(rows, 0, np.array([3]), 2).tolist() == [1, 2]
    with pytest.raises(InputError, match="top_k: 5 exceeds"):
        teacher_candidates(rows, 0, np.array([1, 2]), 5)


def test_candidate_table_is_teacher_candidates_of_every_row() -> None:
    teacher = wide_teacher()
    table = candidate_table(teacher, 4, "top_k")
    rows = teacher.file.rows
    assert table.shape == (len(rows), 4)
    for r in range(len(rows)):
        history = row_history(teacher, r)
        assert table[r].tolist() == teacher_candidates(rows, r, history, 4).tolist()
        assert not set(table[r].tolist()) & set(history.tolist())


def test_draw_negatives_avoid_excluded_items_are_uniform_and_seeded() -> None:
    excluded = torch.zeros(3, 6, dtype=torch.bool)
    excluded[0, :5] = True  # row 0: only item 6 is allowed
    excluded[1, ::2] = True  # row 1: items 2, 4, 6
    draws = draw_negatives(np.random.default_rng(0), excluded, 3000, "x")
    assert (draws[0] == 6).all()
    assert set(draws[1].tolist()) == {2, 4, 6}
    counts = np.bincount(draws[2], minlength=7)[1:]  # row 2: every item, uniformly
    assert counts.min() > 400 and counts.max() < 600
    again = draw_negatives(np.random.default_rng(0), excluded, 3000, "x")
    assert np.array_equal(draws, again)
    excluded[2] = True
    with pytest.raises(InputError, match="x: no negative item left"):
        draw_negatives(np.random.default_rng(0), excluded, 1, "x")


def test_term_feeds_the_kernel_masked_scores_candidates_and_fresh_negatives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    def spy(
        student: torch.Tensor, top: torch.Tensor, rank: torch.Tensor, neg: torch.Tensor, **kw: Any
    ) -> torch.Tensor:
        seen.update(student=student, top=top, rank=rank, neg=neg, **kw)
        return student[torch.isfinite(student)].mean()

    monkeypatch.setattr(ranking_kd, "ranking_distillation_loss", spy)
    data = successor_data()
    kd = distiller(0.5)
    model = fresh_model("sasrec", crm_params("sasrec"))
    users = np.arange(8)
    inputs = [data.train[u][:-1] for u in users]
    targets = [data.train[u][1:] for u in users]
    x, y = left_pad(inputs, MAX_LEN), left_pad(targets, MAX_LEN)
    states = model(x)
    loss, weights = kd.term(
        users, np.array([len(t) for t in targets]), states, y, model.item_embeddings.weight
    )
    top, neg, student = seen["top"], seen["neg"], seen["student"]
    assert top.shape == (len(weights), 3) and neg.shape == (len(weights), 1) and len(weights) > 0
    assert seen["k"] == 3 and (seen["gamma_p"], seen["gamma_c"], seen["gamma_o"]) == (0.3, 0.5, 0.1)
    assert student.shape == (len(weights), NUM_ITEMS)
    for row in range(len(weights)):  # history items are -inf and never candidates or negatives
        masked = set((torch.isinf(student[row]).nonzero().flatten() + 1).tolist())
        assert masked and not masked & set(top[row].tolist()) and int(neg[row, 0]) not in masked
        assert int(neg[row, 0]) not in top[row].tolist()
    loss.backward()
    assert model.item_embeddings.weight.grad is not None
