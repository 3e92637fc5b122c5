"""The upward (LLM -> CRM) distillation of Eq. 6-9: matching an export to the data, locating its rows in
a padded batch, the weighted KL against hand computation, and the training loop's use of it."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.distill.kl import sample_weight
from llmd4rec_core.distill.upward import (
    UpwardKD,
    index_teacher,
    most_recent_rows,
    teacher_batch,
    teacher_logits,
    upward_kl,
)
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import LogitRows, LogitsFile, compress, full_logits
from llmd4rec_core.scoring import masked_ranks
from llmd4rec_core.training import training_pairs

NUM_ITEMS = 6
RNG = np.random.default_rng(0)


def toy_data() -> SequenceData:
    train = [np.array([1, 2, 3, 4, 5]), np.array([6, 1]), np.array([2]), np.array([3, 4, 5, 6])]
    return SequenceData(
        num_items=NUM_ITEMS,
        user_ids=np.array([1, 2, 3, 5]),
        train=train,
        valid=np.array([6, 2, 3, 1]),
        test=np.array([1, 3, 4, 2]),
    )


def export_of(
    data: SequenceData, keys: list[tuple[int, int]], logits: torch.Tensor, split: str = "train"
) -> LogitsFile:
    """An in-memory export of rows (user index, position) with the given [N, I] logits."""
    users = np.array([u for u, _ in keys])
    positions = np.array([p for _, p in keys])
    rows = LogitRows(
        user_id=data.user_ids[users].astype(np.int32),
        position=positions.astype(np.int32),
        target=np.array([data.train[u][p] for u, p in keys], dtype=np.int32),
        target_rank=masked_ranks(  # as the export computes it: pessimistic, history masked
            torch.cat([torch.full((len(keys), 1), float("-inf")), logits], 1),
            [data.train[u][:p] for u, p in keys],
            torch.tensor([data.train[u][p] for u, p in keys]),
        )
        .numpy()
        .astype(np.int32),
        **compress(logits, top_k=NUM_ITEMS),  # K = I: the file holds every logit exactly
    )
    meta = {"split": split, "num_items": NUM_ITEMS, "top_k": NUM_ITEMS}
    return LogitsFile(path=Path("t.parquet"), meta=meta, rows=rows)


def test_index_teacher_groups_rows_by_user() -> None:
    data = toy_data()
    keys = [(3, 2), (0, 4), (0, 3), (1, 1)]
    teacher = index_teacher(export_of(data, keys, torch.randn(4, NUM_ITEMS)), data)
    assert [int(teacher.file.rows.position[r]) for r in teacher.rows_of(0)] == [3, 4]  # position order
    assert (
        list(teacher.rows_of(1)) == [3] and list(teacher.rows_of(2)) == [] and list(teacher.rows_of(3)) == [0]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.target.__setitem__(0, 1), "row 0 (user_id 1, position 4, target 1)"),
        (lambda r: r.user_id.__setitem__(0, 4), "row 0 (user_id 4,"),
        (lambda r: r.position.__setitem__(0, 0), "position 0"),  # position 0 has no history
        (lambda r: r.position.__setitem__(0, 9), "position 9"),
    ],
)
def test_rows_that_are_not_training_targets_are_named(change: object, message: str) -> None:
    data = toy_data()
    file = export_of(data, [(0, 4)], torch.randn(1, NUM_ITEMS))
    change(file.rows)  # type: ignore[operator]
    with pytest.raises(InputError, match="t.parquet: .*" + re.escape(message)):
        index_teacher(file, data)


def test_wrong_split_or_catalogue_is_refused() -> None:
    data = toy_data()
    with pytest.raises(InputError, match="split is 'valid'"):
        index_teacher(export_of(data, [(0, 4)], torch.randn(1, NUM_ITEMS), split="valid"), data)
    file = export_of(data, [(0, 4)], torch.randn(1, NUM_ITEMS))
    file.meta["num_items"] = 7
    with pytest.raises(InputError, match="num_items 7 does not match the data's 6"):
        index_teacher(file, data)


@pytest.mark.parametrize("max_len", [1, 2, 3, 10])
def test_teacher_rows_land_on_their_targets_in_a_padded_batch(max_len: int) -> None:
    """Column width - m + p - 1 holds target p after left padding and truncation to max_len."""
    from llmd4rec_core.batching import left_pad

    data = toy_data()
    keys = [(0, p) for p in range(1, 5)] + [(1, 1), (3, 1), (3, 3)]
    teacher = index_teacher(export_of(data, keys, torch.randn(len(keys), NUM_ITEMS)), data)
    users, _, targets = training_pairs(data.train)
    y = left_pad(targets, max_len)  # [B, L]
    where = teacher_batch(teacher, users, np.array([len(t) for t in targets]), y.shape[1])
    assert torch.equal(y[where.row, where.column], where.targets)
    # exactly the teacher rows whose target survived the truncation are used
    kept = sum(1 for u, p in keys if len(data.train[u]) - 1 - (p - 1) <= y.shape[1])
    assert len(where.file_rows) == kept
    for n, r in enumerate(where.file_rows):
        u, p = int(teacher.user_index[r]), int(teacher.file.rows.position[r])
        assert np.array_equal(where.histories[n], data.train[u][:p])


def test_most_recent_rows_are_what_the_export_would_have_written() -> None:
    from llmd4rec_core.data.instances import split_instances

    data = toy_data()
    every = split_instances(data, "train", 0)
    file = export_of(
        data,
        list(zip(every.user_index.tolist(), every.position.tolist(), strict=True)),
        torch.randn(len(every), NUM_ITEMS),
    )
    for k in (1, 2, 3):
        kept = most_recent_rows(file, data, k).rows
        expected = split_instances(data, "train", k)
        assert kept.user_id.tolist() == data.user_ids[expected.user_index].tolist()
        assert kept.position.tolist() == expected.position.tolist()
    assert most_recent_rows(file, data, 0) is file


def test_drawn_rows_are_one_per_user_and_cover_every_row() -> None:
    """rows_per_user = 1: each user with rows in the batch gives exactly one, drawn uniformly."""
    data = toy_data()
    keys = [(0, p) for p in range(1, 5)] + [(1, 1), (3, 1), (3, 3)]
    teacher = index_teacher(export_of(data, keys, torch.randn(len(keys), NUM_ITEMS)), data)
    users, _, targets = training_pairs(data.train)
    lengths = np.array([len(t) for t in targets])
    rng = np.random.default_rng(0)
    counts = np.zeros(len(keys), np.int64)
    for _ in range(400):
        where = teacher_batch(teacher, users, lengths, int(lengths.max()), rows_per_user=1, rng=rng)
        assert sorted(where.row.tolist()) == [0, 1, 2]  # users 0, 1, 3 (batch rows 0-2) have rows
        counts[where.file_rows] += 1
    user_rows = {0: [0, 1, 2, 3], 1: [4], 3: [5, 6]}  # file rows of each user (sorted by position)
    for rows in user_rows.values():
        share = counts[rows] / 400
        assert np.allclose(share, 1 / len(rows), atol=0.08), share
    every = teacher_batch(teacher, users, lengths, int(lengths.max()), rows_per_user=0)
    assert len(every.file_rows) == len(keys)
    with pytest.raises(ValueError, match="rng"):
        teacher_batch(teacher, users, lengths, int(lengths.max()), rows_per_user=1)


def test_upward_kl_against_hand_computation() -> None:
    """One row, T2 = 0.5: KL and Eq. 8 weight written out by hand."""
    data = toy_data()
    teacher_logits = torch.tensor([[2.0, 0.0, 1.0, -1.0, 0.5, 0.0]])  # user 0, position 4 (target item 5)
    file = export_of(data, [(0, 4)], teacher_logits)
    assert int(file.rows.target_rank[0]) == 1  # items 1-4 are the history: item 5 (0.5) beats item 6 (0)
    teacher = index_teacher(file, data)
    table = torch.zeros(NUM_ITEMS + 1, 2)
    table[1:, 0] = torch.arange(NUM_ITEMS, dtype=torch.float32)  # item j scores (j - 1) * h[0]
    hidden = torch.zeros(1, 4, 2, requires_grad=True)
    with torch.no_grad():
        hidden[0, 3, 0] = 0.3  # student logits 0, .3, .6, .9, 1.2, 1.5: item 5 (1.2) is behind item 6
    users, _, _targets = training_pairs(data.train)
    where = teacher_batch(teacher, users[:1], np.array([4]), 4)
    kd = UpwardKD(
        teacher, temperature=0.5, beta=0.5, sample_weights=True, mask_history=False, rows_per_user=0, rng=RNG
    )
    kl, weights = upward_kl(kd, hidden, table, where)

    student = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5]
    r_c, r_l = 2, 1  # history-masked ranks of item 5 under the CRM and the LLM
    p = [math.exp(v / 0.5) for v in teacher_logits[0].tolist()]
    q = [math.exp(v / 0.5) for v in student]
    p = [v / sum(p) for v in p]
    q = [v / sum(q) for v in q]
    kl_hand = sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))
    w2 = min(2.0, 1 + (r_c - r_l) / max(r_l, 1))  # Eq. 8, r_c > r_l: the LLM ranks the target better
    assert w2 == 2.0 and float(weights[0]) == w2
    assert float(sample_weight(torch.tensor([r_c]), torch.tensor([r_l]))[0]) == w2
    assert kl.item() == pytest.approx(w2 * kl_hand, rel=1e-5)
    kd_unweighted = UpwardKD(
        teacher, temperature=0.5, beta=0.5, sample_weights=False, mask_history=False, rows_per_user=0, rng=RNG
    )
    assert upward_kl(kd_unweighted, hidden, table, where)[0].item() == pytest.approx(kl_hand, rel=1e-5)
    kl.backward()
    assert hidden.grad is not None and hidden.grad[0, 3].abs().sum() > 0
    assert hidden.grad[0, :3].abs().sum() == 0  # only the distilled position receives gradient


def test_masked_upward_kl_is_over_the_items_outside_the_prefix() -> None:
    """The same row as above with kl_mask_history: items 1-4 (the prefix) leave both distributions, so
    the KL is the one over items 5 and 6 (teacher logits 0.5, 0; student 1.2, 1.5) at T2 = 0.5."""
    data = toy_data()
    file = export_of(data, [(0, 4)], torch.tensor([[2.0, 0.0, 1.0, -1.0, 0.5, 0.0]]))
    teacher = index_teacher(file, data)
    table = torch.zeros(NUM_ITEMS + 1, 2)
    table[1:, 0] = torch.arange(NUM_ITEMS, dtype=torch.float32)
    hidden = torch.zeros(1, 4, 2)
    hidden[0, 3, 0] = 0.3
    users, _, _ = training_pairs(data.train)
    where = teacher_batch(teacher, users[:1], np.array([4]), 4)
    kd = UpwardKD(
        teacher, temperature=0.5, beta=0.5, sample_weights=False, mask_history=True, rows_per_user=0, rng=RNG
    )
    p5 = 1 / (1 + math.exp((0.0 - 0.5) / 0.5))
    q5 = 1 / (1 + math.exp((1.5 - 1.2) / 0.5))
    kl_hand = p5 * math.log(p5 / q5) + (1 - p5) * math.log((1 - p5) / (1 - q5))
    assert upward_kl(kd, hidden, table, where)[0].item() == pytest.approx(kl_hand, rel=1e-5)


def test_teacher_logits_of_any_rows_match_the_file() -> None:
    data = toy_data()
    logits = torch.randn(3, NUM_ITEMS) * 3
    teacher = index_teacher(export_of(data, [(0, 1), (0, 2), (3, 3)], logits), data)
    expected = full_logits(teacher.file.rows)
    assert torch.equal(teacher_logits(teacher, np.array([2, 0])), expected[[2, 0]])
    assert torch.allclose(expected, logits, atol=1e-6)  # K = I: every logit is exact
