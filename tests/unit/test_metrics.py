"""Full-ranking metrics: pessimistic ranks, history masking, HR/NDCG/MRR against hand-computed values.

Every expected number below is worked out by hand in the comments (DESIGN.md section 2), never copied
from the implementation's output.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmd4rec_core.metrics import mask_history_, ranking_metrics, target_ranks

NEG_INF = float("-inf")

# One row = [padding, item 1, ..., item 5]. The padding column holds the highest score on purpose: it must
# never count against the target.
ROW = [9.0, 0.3, 0.5, 0.5, 0.5, 0.1]

# ------------------------------------------------------------------------------------------ target ranks


@pytest.mark.parametrize(
    ("scores", "target", "expected_rank"),
    [
        # item 2 ties with items 3 and 4 (0.5 each), nothing above: 1 + 2 others >= -> rank 3 (pessimistic)
        (ROW, 2, 3),
        (ROW, 3, 3),
        (ROW, 4, 3),
        # item 1 (0.3): items 2, 3, 4 score higher -> rank 4; padding (9.0) ignored
        (ROW, 1, 4),
        # item 5 (0.1) is last of 5 items -> rank 5
        (ROW, 5, 5),
        # a strict maximum among items -> rank 1, although the padding column is larger still
        ([100.0, 2.0, 1.0, 0.0, -1.0, -2.0], 1, 1),
        # every item tied -> the target is ranked behind all 4 others -> rank 5 = num_items
        ([0.0, 7.0, 7.0, 7.0, 7.0, 7.0], 3, 5),
        # a -inf target (masked): every one of the 5 items scores >= -inf -> worst rank 5
        ([0.0, 1.0, NEG_INF, 2.0, 3.0, 4.0], 2, 5),
    ],
)
def test_target_rank_golden(scores: list[float], target: int, expected_rank: int) -> None:
    ranks = target_ranks(torch.tensor([scores]), torch.tensor([target]))
    assert ranks.dtype == torch.int64
    assert ranks.tolist() == [expected_rank]


def test_target_ranks_batch_rows_are_independent() -> None:
    scores = torch.tensor(
        [
            ROW,  # target 2 -> rank 3 (tie with items 3, 4)
            [-5.0, 0.9, 0.8, 0.7, 0.6, 0.5],  # target 5 -> rank 5
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # target 5 -> rank 1
        ]
    )
    assert target_ranks(scores, torch.tensor([2, 5, 5])).tolist() == [3, 5, 1]


NAN = float("nan")


@pytest.mark.parametrize(
    ("scores", "target", "expected_rank"),
    [
        # a NaN target (a diverged model) is ranked last, never 0 (which would give NDCG = 1/log2(1) = inf)
        ([0.0, NAN, 1.0, 2.0, 3.0, 4.0], 1, 5),
        ([0.0, NAN, NAN, NAN, NAN, NAN], 3, 5),
        # a NaN competitor counts against the target (pessimistic): item 2 (1.0) has item 4 (2.0) and the
        # NaN item 1 against it -> rank 3
        ([0.0, NAN, 1.0, 0.5, 2.0, 0.0], 2, 3),
        # NaN in the padding column is ignored like any padding score
        ([NAN, 0.1, 0.2, 0.3, 0.4, 0.5], 5, 1),
    ],
)
def test_nan_scores_rank_pessimistically(scores: list[float], target: int, expected_rank: int) -> None:
    ranks = target_ranks(torch.tensor([scores]), torch.tensor([target]))
    assert ranks.tolist() == [expected_rank]
    assert math.isfinite(ranking_metrics(ranks.numpy(), [10])["ndcg@10"])


@pytest.mark.parametrize("bad", [[0], [1, 0, 2], [-1]])
def test_ranking_metrics_reject_ranks_below_one(bad: list[int]) -> None:
    with pytest.raises(ValueError, match="1-based"):
        ranking_metrics(np.array(bad), [10])


# ------------------------------------------------------------------------------------------ history mask


@pytest.mark.parametrize(
    ("history", "target", "expected_rank"),
    [
        # items 3, 4 masked: only item 2 itself remains >= 0.5 -> rank 1 (a padding 0 in the history is fine)
        ([3, 4, 0], 2, 1),
        # item 3 masked: item 2 still tied with item 4 -> rank 2
        ([0, 0, 3], 2, 2),
        # the target itself is in the history: -inf, and all 5 items are >= -inf -> worst rank = num_items = 5
        ([2, 0, 0], 2, 5),
        ([1, 2, 3], 2, 5),
        # masking items below the target changes nothing: item 1 (0.3) is below item 2 -> rank 3 as unmasked
        ([1, 5, 0], 2, 3),
        # item 1 (0.3): items 2..4 above; mask 2 and 3 -> only item 4 above -> rank 2
        ([2, 3, 0], 1, 2),
        # an all-padding history masks nothing -> rank 3 as unmasked
        ([0, 0, 0], 2, 3),
    ],
)
def test_masked_rank_golden(history: list[int], target: int, expected_rank: int) -> None:
    scores = torch.tensor([ROW])
    mask_history_(scores, torch.tensor([history]))
    assert target_ranks(scores, torch.tensor([target])).tolist() == [expected_rank]


def test_mask_history_is_in_place_and_uses_minus_infinity() -> None:
    scores = torch.tensor([ROW, ROW], dtype=torch.float64)
    out = mask_history_(scores, torch.tensor([[3, 1], [0, 5]]))
    assert out is scores
    # row 0: items 3 and 1 -> -inf (not 0: S3-Rec's trap, a 0 would still beat negative scores)
    assert scores[0].tolist() == [9.0, NEG_INF, 0.5, NEG_INF, 0.5, 0.1]
    # row 1: item 5 -> -inf; the padding column may be masked too (it is ignored anyway)
    assert scores[1, 1:].tolist() == [0.3, 0.5, 0.5, 0.5, NEG_INF]


def test_mask_with_zero_would_be_wrong_minus_infinity_is_right() -> None:
    # all item scores negative: a history item masked with -inf drops below the target
    scores = torch.tensor([[0.0, -1.0, -2.0, -3.0]])
    mask_history_(scores, torch.tensor([[1]]))
    # target 2 (-2.0): item 1 masked (-inf), item 3 (-3.0) below -> rank 1
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]


# ---------------------------------------------------------------------------------- HR / NDCG / MRR


def _approx(expected: dict[str, float]) -> dict[str, object]:
    return {k: pytest.approx(v, abs=1e-12) for k, v in expected.items()}


@pytest.mark.parametrize(
    ("ranks", "ks", "expected"),
    [
        # ranks [1, 3, 12], ks [5, 10]:
        #   HR@5 = HR@10 = 2/3 (12 misses both)
        #   NDCG@5 = NDCG@10 = (1/log2(2) + 1/log2(4) + 0) / 3 = (1 + 1/2) / 3 = 1/2
        #   MRR = (1 + 1/3 + 1/12) / 3 = (17/12) / 3 = 17/36
        (
            [1, 3, 12],
            [5, 10],
            {"hr@5": 2 / 3, "ndcg@5": 1 / 2, "hr@10": 2 / 3, "ndcg@10": 1 / 2, "mrr": 17 / 36},
        ),
        # ranks [1, 3, 15], ks [5, 10, 20]:
        #   HR@5 = HR@10 = 2/3, HR@20 = 3/3 = 1
        #   NDCG@5 = NDCG@10 = 1/2; NDCG@20 = (1 + 1/2 + 1/log2(16)) / 3 = (1 + 1/2 + 1/4) / 3 = 7/12
        #   MRR = (1 + 1/3 + 1/15) / 3 = (21/15) / 3 = 7/15
        (
            [1, 3, 15],
            [5, 10, 20],
            {"hr@5": 2 / 3, "ndcg@5": 1 / 2, "hr@10": 2 / 3, "ndcg@10": 1 / 2}
            | {"hr@20": 1.0, "ndcg@20": 7 / 12, "mrr": 7 / 15},
        ),
        # one rank 7 with K = 5, 10: miss at 5; hit at 10 with gain 1/log2(8) = 1/3; MRR 1/7
        ([7], [5, 10], {"hr@5": 0.0, "ndcg@5": 0.0, "hr@10": 1.0, "ndcg@10": 1 / 3, "mrr": 1 / 7}),
        # all at rank 1: every metric is 1
        ([1, 1, 1, 1], [1, 10], {"hr@1": 1.0, "ndcg@1": 1.0, "hr@10": 1.0, "ndcg@10": 1.0, "mrr": 1.0}),
        # rank exactly K counts as a hit: rank 10 at K=10 -> HR 1, NDCG 1/log2(11); rank 11 -> nothing
        ([10], [10], {"hr@10": 1.0, "ndcg@10": 1 / math.log2(11), "mrr": 1 / 10}),
        ([11], [10], {"hr@10": 0.0, "ndcg@10": 0.0, "mrr": 1 / 11}),
        # ranks [2, 4]: HR@3 = 1/2; NDCG@3 = (1/log2(3)) / 2; NDCG@4 = (1/log2(3) + 1/log2(5)) / 2
        #   MRR = (1/2 + 1/4) / 2 = 3/8
        (
            [2, 4],
            [3, 4],
            {"hr@3": 0.5, "ndcg@3": 0.5 / math.log2(3), "hr@4": 1.0}
            | {"ndcg@4": (1 / math.log2(3) + 1 / math.log2(5)) / 2, "mrr": 3 / 8},
        ),
    ],
)
def test_ranking_metrics_golden(ranks: list[int], ks: list[int], expected: dict[str, float]) -> None:
    got = ranking_metrics(np.array(ranks), ks)
    assert got == _approx(expected)  # same keys, same values


def test_ranking_metrics_accept_int_tensors_ranks_from_target_ranks() -> None:
    # end to end on a score matrix: ranks [3, 5, 1] from test_target_ranks_batch_rows_are_independent
    scores = torch.tensor([ROW, [-5.0, 0.9, 0.8, 0.7, 0.6, 0.5], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    ranks = target_ranks(scores, torch.tensor([2, 5, 5])).numpy()
    # HR@3 = 2/3 (ranks 3 and 1); NDCG@3 = (1/log2(4) + 0 + 1) / 3 = (1/2 + 1) / 3 = 1/2
    # MRR = (1/3 + 1/5 + 1) / 3 = (5/15 + 3/15 + 15/15) / 3 = 23/45
    assert ranking_metrics(ranks, [3]) == _approx({"hr@3": 2 / 3, "ndcg@3": 1 / 2, "mrr": 23 / 45})


def test_ranking_metrics_empty_raises() -> None:
    with pytest.raises(ValueError, match="no ranks"):
        ranking_metrics(np.array([], dtype=np.int64), [10])


# ----------------------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    ranks=st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=50),
    ks=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=6, unique=True).map(sorted),
)
def test_metric_properties(ranks: list[int], ks: list[int]) -> None:
    m = ranking_metrics(np.array(ranks), ks)
    for k in ks:
        assert 0.0 <= m[f"ndcg@{k}"] <= m[f"hr@{k}"] + 1e-12 <= 1.0 + 1e-12  # gain 1/log2(r + 1) <= 1
        assert m[f"ndcg@{k}"] >= m[f"hr@{k}"] / math.log2(k + 1) - 1e-12  # gain >= 1/log2(K + 1) on a hit
        assert m[f"hr@{k}"] == pytest.approx(sum(r <= k for r in ranks) / len(ranks))
    for small, large in itertools.pairwise(ks):
        assert m[f"hr@{small}"] <= m[f"hr@{large}"]  # HR@K non-decreasing in K
        assert m[f"ndcg@{small}"] <= m[f"ndcg@{large}"] + 1e-12  # so is NDCG@K
    assert 0.0 < m["mrr"] <= 1.0
    if 1 in ks:
        assert m["mrr"] >= m["hr@1"]  # each hit at rank 1 contributes 1 to both


@settings(max_examples=40, deadline=None)
@given(
    scores=st.lists(
        st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]), min_size=2, max_size=12
    ),  # few distinct values: many ties
    data=st.data(),
)
def test_target_rank_matches_python_count(scores: list[float], data: st.DataObject) -> None:
    num_items = len(scores) - 1
    target = data.draw(st.integers(min_value=1, max_value=num_items))
    expected = 1 + sum(1 for i in range(1, num_items + 1) if i != target and scores[i] >= scores[target])
    assert target_ranks(torch.tensor([scores]), torch.tensor([target])).tolist() == [expected]
