"""Recommendation losses: float64 references, accidental-hit masking, hand-computed BCE, finite gradients."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from llmd4rec_core.losses import (
    bce_one_negative,
    full_softmax_ce,
    recommendation_loss,
    sampled_softmax_ce,
)


def make_inputs(n: int, num_items: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g)
    table = torch.randn(num_items + 1, d, generator=g)
    targets = torch.randint(1, num_items + 1, (n,), generator=g)
    return h, targets, table


# ---------------------------------------------------------------------------------------- full CE


def reference_full_ce(h: torch.Tensor, targets: torch.Tensor, table: torch.Tensor) -> float:
    """-mean_n log softmax_{i in 1..N}(h_n . E_i)[target_n], in float64 with explicit Python loops."""
    h, table = h.double(), table.double()
    total = 0.0
    for row, t in zip(h, targets.tolist(), strict=True):
        logits = [float(row @ table[i]) for i in range(1, table.shape[0])]  # items 1..N only
        top = max(logits)
        log_z = top + math.log(sum(math.exp(x - top) for x in logits))
        total += log_z - logits[t - 1]
    return total / len(targets)


@pytest.mark.parametrize(
    ("n", "num_items", "d", "seed"),
    [(1, 1, 4, 0), (1, 5, 3, 1), (7, 13, 8, 2), (16, 40, 16, 3), (3, 2, 1, 4)],
)
def test_full_ce_matches_float64_reference(n: int, num_items: int, d: int, seed: int) -> None:
    h, targets, table = make_inputs(n, num_items, d, seed)
    got = full_softmax_ce(h, targets, table)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(reference_full_ce(h, targets, table), rel=1e-5, abs=1e-6)


def test_full_ce_hand_computed() -> None:
    # h = [1], items 1..3 have E = [0], [ln 2], [ln 5] -> logits 0, ln 2, ln 5 -> exp: 1, 2, 5 (sum 8)
    # target 3: -log(5/8) = log(8/5); target 1: log 8 -> mean over the two rows = (log 1.6 + log 8) / 2
    table = torch.tensor([[123.0], [0.0], [math.log(2)], [math.log(5)]])  # row 0 = padding, huge score
    h = torch.tensor([[1.0], [1.0]])
    got = full_softmax_ce(h, torch.tensor([3, 1]), table)
    assert got.item() == pytest.approx((math.log(8 / 5) + math.log(8)) / 2, rel=1e-6)


def test_full_ce_padding_row_is_never_a_candidate() -> None:
    h, targets, table = make_inputs(6, 9, 5, seed=10)
    base = full_softmax_ce(h, targets, table)
    poisoned = table.clone()
    poisoned[0] = h.mean(0) * 1e3  # would dominate every softmax if padding were a candidate
    assert full_softmax_ce(h, targets, poisoned).item() == pytest.approx(base.item(), rel=1e-6)
    table = table.clone().requires_grad_(True)
    full_softmax_ce(h, targets, table).backward()
    assert table.grad is not None
    assert torch.all(table.grad[0] == 0)


# --------------------------------------------------------------------------------- sampled softmax


def reference_sampled_ce(
    h: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, negatives: list[int]
) -> float:
    """Per row: candidates = target + every sampled negative that is not the target (duplicates kept)."""
    h, table = h.double(), table.double()
    total = 0.0
    for row, t in zip(h, targets.tolist(), strict=True):
        cand = [t] + [j for j in negatives if j != t]
        logits = [float(row @ table[i]) for i in cand]
        top = max(logits)
        total += top + math.log(sum(math.exp(x - top) for x in logits)) - logits[0]
    return total / len(targets)


@pytest.mark.parametrize(
    ("n", "num_items", "d", "num_negatives", "seed"),
    [
        (4, 50, 8, 10, 0),
        (8, 3, 4, 12, 1),  # 12 draws from 3 items: accidental hits and duplicates are certain
        (5, 7, 6, 1, 2),
        (16, 30, 16, 64, 3),  # more negatives than items
    ],
)
def test_sampled_ce_matches_reference_from_same_negatives(
    n: int, num_items: int, d: int, num_negatives: int, seed: int
) -> None:
    h, targets, table = make_inputs(n, num_items, d, seed)
    # the same generator state gives the same uniform draws over 1..num_items
    negatives = torch.randint(
        1, num_items + 1, (num_negatives,), generator=torch.Generator().manual_seed(99)
    ).tolist()
    got = sampled_softmax_ce(h, targets, table, num_negatives, torch.Generator().manual_seed(99))
    assert got.item() == pytest.approx(reference_sampled_ce(h, targets, table, negatives), rel=1e-5, abs=1e-6)


def test_sampled_ce_all_negatives_are_accidental_hits() -> None:
    # one item: every negative is the target, all masked -> only the positive is left -> loss exactly 0
    h = torch.tensor([[2.0, -1.0]])
    table = torch.tensor([[0.0, 0.0], [0.5, 0.25]], requires_grad=True)
    loss = sampled_softmax_ce(h, torch.tensor([1]), table, 5, torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    loss.backward()
    assert table.grad is not None
    assert torch.isfinite(table.grad).all()


def test_sampled_ce_hit_masking_matters() -> None:
    # two items with equal scores. If a draw of the target were kept it would be a second copy of the
    # positive; masked, the row sees only genuine negatives. Hand value per row with k genuine negatives,
    # all logits equal: -log(1 / (1 + k)) = log(1 + k).
    h = torch.tensor([[1.0]])
    table = torch.tensor([[0.0], [1.0], [1.0]])
    seed, s = 5, 6
    draws = torch.randint(1, 3, (s,), generator=torch.Generator().manual_seed(seed)).tolist()
    k = sum(1 for j in draws if j != 1)  # target = item 1
    assert 0 < k < s  # this seed draws both items (checked, not assumed)
    loss = sampled_softmax_ce(h, torch.tensor([1]), table, s, torch.Generator().manual_seed(seed))
    assert loss.item() == pytest.approx(math.log(1 + k), rel=1e-6)


# -------------------------------------------------------------------------------------------- BCE


def test_bce_hand_computed_negative_is_the_target() -> None:
    # one item: the negative is necessarily item 1 too. s_pos = s_neg = h . E1 = 1 * ln 3 = ln 3
    # sigma(ln 3) = 3/4 -> -log(3/4) - log(1 - 3/4) = log(4/3) + log 4 = log(16/3)
    h = torch.tensor([[1.0, 0.0]])
    table = torch.tensor([[0.0, 0.0], [math.log(3), 7.0]])
    loss = bce_one_negative(h, torch.tensor([1]), table, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(math.log(16 / 3), rel=1e-6)


def test_bce_hand_computed_one_row() -> None:
    # target 1 with s_pos = ln 3 (sigma = 3/4); items 2 and 3 both score -ln 3 (sigma = 1/4).
    # A negative drawn from {2, 3}: -log(3/4) - log(1 - 1/4) = 2 log(4/3).
    # (the DLLM2Rec trap log sigma(1 - s) would give a different number)
    h = torch.tensor([[1.0, 0.0]])
    table = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [-math.log(3), 1.0], [-math.log(3), -1.0]])
    seed = next(
        s
        for s in range(100)
        if torch.randint(1, 4, (1,), generator=torch.Generator().manual_seed(s)).item() != 1
    )
    loss = bce_one_negative(h, torch.tensor([1]), table, torch.Generator().manual_seed(seed))
    assert loss.item() == pytest.approx(2 * math.log(4 / 3), rel=1e-6)


def test_bce_matches_reference_batch() -> None:
    h, targets, table = make_inputs(9, 11, 4, seed=21)
    negatives = torch.randint(1, 12, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    hd, td = h.double(), table.double()
    expected = 0.0
    for row, t, j in zip(hd, targets.tolist(), negatives, strict=True):
        pos, neg = float(row @ td[t]), float(row @ td[j])
        expected += -math.log(1 / (1 + math.exp(-pos))) - math.log(1 - 1 / (1 + math.exp(-neg)))
    got = bce_one_negative(h, targets, table, torch.Generator().manual_seed(8))
    assert got.item() == pytest.approx(expected / 9, rel=1e-5)


def test_bce_stable_for_large_scores() -> None:
    # s_pos = +100, s_neg = -100 (target 1, only other item 2): loss ~ 2 e^-100, finite and ~0, not NaN
    h = torch.tensor([[10.0]])
    table = torch.tensor([[0.0], [10.0], [-10.0]])
    seed = next(
        s
        for s in range(100)
        if torch.randint(1, 3, (1,), generator=torch.Generator().manual_seed(s)).item() == 2
    )
    loss = bce_one_negative(h, torch.tensor([1]), table, torch.Generator().manual_seed(seed))
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(0.0, abs=1e-30)


# -------------------------------------------------------------------------------- dispatch, gradients


@pytest.mark.parametrize("kind", ["ce", "sampled", "bce"])
@pytest.mark.parametrize(("num_items", "scale"), [(1, 1.0), (4, 1.0), (25, 1.0), (25, 50.0)])
def test_gradients_finite(kind: str, num_items: int, scale: float) -> None:
    h, targets, table = make_inputs(6, num_items, 8, seed=num_items)
    h = (h * scale).requires_grad_(True)
    table = (table * scale).requires_grad_(True)
    loss = recommendation_loss(kind, h, targets, table, 16, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    loss.backward()
    assert h.grad is not None
    assert table.grad is not None
    assert torch.isfinite(h.grad).all()
    assert torch.isfinite(table.grad).all()
    assert torch.all(table.grad[0] == 0)  # the padding row never receives gradient


@pytest.mark.parametrize(
    ("kind", "direct"),
    [
        ("ce", lambda h, t, e, g: full_softmax_ce(h, t, e)),
        ("sampled", lambda h, t, e, g: sampled_softmax_ce(h, t, e, 7, g)),
        ("bce", lambda h, t, e, g: bce_one_negative(h, t, e, g)),
    ],
)
def test_recommendation_loss_dispatch(
    kind: str, direct: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
) -> None:
    h, targets, table = make_inputs(5, 12, 4, seed=30)
    got = recommendation_loss(kind, h, targets, table, 7, torch.Generator().manual_seed(1))  # type: ignore[arg-type]
    want = direct(h, targets, table, torch.Generator().manual_seed(1))
    assert got.item() == want.item()


def test_recommendation_loss_unknown_kind() -> None:
    h, targets, table = make_inputs(2, 3, 2, seed=0)
    with pytest.raises(ValueError, match="unknown loss 'bpr'"):
        recommendation_loss("bpr", h, targets, table, 4, torch.Generator())  # type: ignore[arg-type]
