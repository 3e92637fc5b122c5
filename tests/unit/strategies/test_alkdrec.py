"""ALKDRec kernels: gains, the max-min policy of Definition 1 against brute force over every outcome
assignment (Theorems 1-3), budgeted drawing, and the rank-weighted pairwise loss of Eq. 1."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from llmd4rec_core.strategies.alkdrec import (
    PAPER_MU,
    PAPER_RATIOS,
    Gains,
    OutcomeCounts,
    consistency_difficulty,
    difficulty_from_target_rank,
    difficulty_rank,
    draw_budget,
    draw_from_policy,
    equalised_policy_sorted,
    gain_order,
    gains_from_rank,
    gamma,
    gamma_curve,
    instance_gains,
    maxmin_policy,
    maxmin_policy_sorted,
    optimal_k,
    outcome_counts,
    pairwise_distillation_loss,
    pairwise_distillation_per_row,
    rank_weights,
    sample_negatives,
)

# --- brute force --------------------------------------------------------------------------------------------


def assignment_payoffs(gains: Gains, counts: OutcomeCounts) -> np.ndarray:
    """[J, S]: row j = per-instance gain (g_ef / g_si / -g_in) under the j-th assignment c in Delta(k)."""
    n = len(gains.effective)
    rows = []
    for ef in itertools.combinations(range(n), counts.effective):
        rest = [s for s in range(n) if s not in ef]
        for si in itertools.combinations(rest, counts.similar):
            row = -np.asarray(gains.incorrect, dtype=np.float64).copy()
            row[list(ef)] = np.asarray(gains.effective)[list(ef)]
            row[list(si)] = np.asarray(gains.similar)[list(si)]
            rows.append(row)
    return np.array(rows)


def worst_case(p: np.ndarray, gains: Gains, counts: OutcomeCounts) -> float:
    """min over every assignment c of z(p, c) (Eq. 3)."""
    return float((assignment_payoffs(gains, counts) @ p).min())


def simplex_grid(n: int, steps: int) -> np.ndarray:
    """[G, n]: every p with entries in {0, 1/steps, ..., 1} summing to 1."""
    points = [c for c in itertools.product(range(steps + 1), repeat=n - 1) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in points], dtype=np.float64) / steps


def all_counts(n: int) -> list[OutcomeCounts]:
    return [OutcomeCounts(e, s, n - e - s) for e in range(n + 1) for s in range(n + 1 - e)]


def paper_gains(n: int, mu: float) -> Gains:
    return gains_from_rank(np.arange(1, n + 1), mu)


def random_sorted_gains(rng: np.random.Generator, n: int) -> Gains:
    g = np.sort(rng.uniform(0.05, 1.0, size=n))[::-1]
    return Gains(g, g / 2, g / 2)


GAIN_CASES = {
    "mu=1": lambda n: paper_gains(n, 1.0),
    "mu=10": lambda n: paper_gains(n, 10.0),
    "random": lambda n: random_sorted_gains(np.random.default_rng(n), n),
}

# --- difficulty and gains -----------------------------------------------------------------------------------


def test_difficulty_rank_is_hardest_first_with_ties_by_index() -> None:
    df = difficulty_from_target_rank(np.array([3, 1, 7, 1]))
    assert df.dtype == np.float64
    assert difficulty_rank(df).tolist() == [2, 3, 1, 4]  # 7 hardest; the two 1s by index


def test_random_tie_break_only_permutes_ties() -> None:
    df = np.array([5.0, 1.0, 1.0, 1.0, 9.0, 1.0])
    seen = set()
    for seed in range(20):
        r = difficulty_rank(df, np.random.default_rng(seed))
        assert r[4] == 1 and r[0] == 2 and sorted(r[[1, 2, 3, 5]].tolist()) == [3, 4, 5, 6]
        seen.add(tuple(r.tolist()))
    assert len(seen) > 1
    r1, r2 = (difficulty_rank(df, np.random.default_rng(3)) for _ in range(2))
    assert r1.tolist() == r2.tolist()


def test_gains_golden_values() -> None:
    # target ranks (3, 1, 7, 1) -> rank(df) = (2, 3, 1, 4); mu = 2: g_ef = 1/4, 1/9, 1, 1/16
    g = instance_gains(np.array([3.0, 1.0, 7.0, 1.0]), mu=2.0)
    np.testing.assert_allclose(g.effective, [1 / 4, 1 / 9, 1.0, 1 / 16], rtol=1e-15)
    np.testing.assert_allclose(g.similar, [1 / 8, 1 / 18, 1 / 2, 1 / 32], rtol=1e-15)
    np.testing.assert_allclose(g.incorrect, g.similar, rtol=0)
    # the paper's mu = 10: the second hardest is worth 1/2^10 = 1/1024, the third 1/59049
    g10 = gains_from_rank(np.array([1, 2, 3]), PAPER_MU)
    np.testing.assert_allclose(g10.effective, [1.0, 1 / 1024, 1 / 59049], rtol=1e-15)


@pytest.mark.parametrize("mu", [0.0, -1.0])
def test_non_positive_mu_is_rejected(mu: float) -> None:
    with pytest.raises(ValueError, match="mu must be > 0"):
        gains_from_rank(np.array([1, 2]), mu)


def test_bad_ranks_and_underflow_are_rejected() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        difficulty_from_target_rank(np.array([0, 2]))
    with pytest.raises(ValueError, match="underflows"):
        gains_from_rank(np.arange(1, 1001), mu=200.0)


def test_consistency_difficulty_hand_value() -> None:
    session = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    items = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    df = consistency_difficulty(session, items, mask)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [-(sig(1.0) + sig(0.0)) / 2, -sig(2.0)]  # row 2: its padded item is ignored
    assert df.tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(10, (1, 5, 4)), (100, (10, 50, 40)), (3, (0, 2, 1)), (7, (1, 3, 3)), (4, (0, 2, 2)), (0, (0, 0, 0))],
)
def test_outcome_counts_apportion_the_paper_ratio(n: int, expected: tuple[int, int, int]) -> None:
    # 7 * (0.1, 0.5, 0.4) = (0.7, 3.5, 2.8): floors (0, 3, 2), the two largest remainders (in, ef) get +1
    counts = outcome_counts(n, PAPER_RATIOS)
    assert tuple(counts) == expected and sum(counts) == n


@pytest.mark.parametrize("ratios", [(0.0, 0.0, 0.0), (1.0, -1.0, 4.0), (1.0, float("nan"), 1.0)])
def test_bad_ratios_are_rejected(ratios: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="ratios"):
        outcome_counts(10, ratios)


# --- the max-min policy -------------------------------------------------------------------------------------


def test_hand_computed_policy_with_both_blocks() -> None:
    # |S| = 4, g_ef = (1, 1/2, 1/3, 1/4), g_si = g_in = g_ef / 2, k = (1, 2, 1), m = k_si + k_in = 3.
    # w = 1/(g_si + g_in) = (1, 2, 3) for s <= 3, w_4 = 1/(g_ef + g_in) = 1/(3/8) = 8/3;
    # a w = 1/2 for s <= 3, a_4 w_4 = g_ef/(g_ef + g_in) = 2/3. H = (1, 3, 6, 26/3), G = (1/2, 1, 3/2, 13/6)
    # Gamma = (G - k_in)/H = (-1/2, 0, 1/12, (7/6)/(26/3) = 7/52): k* = 4, p* = (1, 2, 3, 8/3)/(26/3)
    g = np.array([1, 1 / 2, 1 / 3, 1 / 4])
    gains, counts = Gains(g, g / 2, g / 2), OutcomeCounts(1, 2, 1)
    np.testing.assert_allclose(
        gamma_curve(gains, counts), [-1 / 2, 0, 1 / 12, 7 / 52], rtol=1e-14, atol=1e-15
    )
    p, k_star = maxmin_policy_sorted(gains, counts)
    assert k_star == optimal_k(gains, counts) == 4
    np.testing.assert_allclose(p, np.array([3, 6, 9, 8]) / 26, rtol=1e-14)
    assert gamma(gains, counts, 4) == pytest.approx(7 / 52, rel=1e-14)


def test_hand_computed_policy_without_effective_block() -> None:
    # |S| = 3 at the paper's 1:5:4 -> k = (0, 2, 1); mu = 2: g_ef = (1, 1/4, 1/9), w = 1/g_ef = (1, 4, 9),
    # H = (1, 5, 14), G = (1/2, 1, 3/2), Gamma = (-1/2, 0, 1/28): k* = 3, p* = (1, 4, 9)/14
    gains, counts = paper_gains(3, 2.0), outcome_counts(3, PAPER_RATIOS)
    p, k_star = maxmin_policy_sorted(gains, counts)
    assert k_star == 3
    np.testing.assert_allclose(p, np.array([1, 4, 9]) / 14, rtol=1e-14)
    assert gamma(gains, counts, 3) == pytest.approx(1 / 28, rel=1e-14)
    assert worst_case(p, gains, counts) == pytest.approx(1 / 28, abs=1e-12)


@pytest.mark.parametrize("case", list(GAIN_CASES))
@pytest.mark.parametrize("n", [3, 4, 5, 12])
def test_policy_is_a_distribution_supported_on_the_top_k_star(case: str, n: int) -> None:
    gains = GAIN_CASES[case](n)
    for counts in all_counts(n):
        p, k_star = maxmin_policy_sorted(gains, counts)
        assert 1 <= k_star <= n
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert (p[:k_star] > 0).all() and (p[k_star:] == 0).all()
        assert gamma_curve(gains, counts).max() == gamma(gains, counts, k_star)


@pytest.mark.parametrize("case", list(GAIN_CASES))
@pytest.mark.parametrize("n", [3, 4, 5])
def test_theorem_1_worst_case_of_p_star_is_gamma_k_star(case: str, n: int) -> None:
    """Brute force over every c in Delta(k_ef, k_si, k_in), every count split of |S|."""
    gains = GAIN_CASES[case](n)
    for counts in all_counts(n):
        p, k_star = maxmin_policy_sorted(gains, counts)
        value = gamma(gains, counts, k_star)
        assert worst_case(p, gains, counts) == pytest.approx(value, rel=1e-9, abs=1e-12), counts


def grid_best(gains: Gains, counts: OutcomeCounts, steps: int = 60) -> float:
    grid = simplex_grid(len(gains.effective), steps)  # [G, 3]
    return float((assignment_payoffs(gains, counts) @ grid.T).min(axis=0).max())


@pytest.mark.parametrize("case", list(GAIN_CASES))
def test_theorem_3_holds_without_effective_block(case: str) -> None:
    """k_ef = 0 (the paper's 1:5:4 at |S| = 3): no p on a 1/60 simplex grid beats p*'s guarantee."""
    gains = GAIN_CASES[case](3)
    assert outcome_counts(3, PAPER_RATIOS) == (0, 2, 1)
    for counts in [outcome_counts(3, PAPER_RATIOS), OutcomeCounts(0, 3, 0)]:
        k_star = maxmin_policy_sorted(gains, counts)[1]
        assert grid_best(gains, counts) <= gamma(gains, counts, k_star) + 1e-12


def test_theorem_3_fails_once_the_effective_block_is_in_the_support() -> None:
    """Documented deviation: p ∝ 1/g_ef guarantees 3/20 on the hand example, p* only Gamma(k*) = 7/52.

    Equal y = p_s g_ef_s = 1/10: one incorrect (-y/2), two similar (+y/2 each), one effective (+y):
    (-1 + 2 + 2)/20 = 3/20."""
    g = np.array([1, 1 / 2, 1 / 3, 1 / 4])
    gains, counts = Gains(g, g / 2, g / 2), OutcomeCounts(1, 2, 1)
    equal = (1 / g) / (1 / g).sum()
    assert worst_case(equal, gains, counts) == pytest.approx(3 / 20, abs=1e-12)
    p = maxmin_policy_sorted(gains, counts)[0]
    assert worst_case(p, gains, counts) == pytest.approx(7 / 52, abs=1e-12) and 7 / 52 < 3 / 20
    # also on |S| = 3, k = (1, 1, 1) with the paper's gains: a grid point beats p*
    gains3, counts3 = paper_gains(3, 1.0), OutcomeCounts(1, 1, 1)
    k3 = maxmin_policy_sorted(gains3, counts3)[1]
    assert grid_best(gains3, counts3) > gamma(gains3, counts3, k3) + 1e-3


@pytest.mark.parametrize("case", list(GAIN_CASES))
def test_equalised_policy_is_max_min_optimal_on_the_grid(case: str) -> None:
    gains = GAIN_CASES[case](3)
    for counts in all_counts(3):
        p, k, value = equalised_policy_sorted(gains.effective, counts)
        assert p.sum() == pytest.approx(1.0) and (p[k:] == 0).all()
        assert worst_case(p, gains, counts) == pytest.approx(value, abs=1e-12)  # V(k) is exact
        k_star = maxmin_policy_sorted(gains, counts)[1]
        assert value >= gamma(gains, counts, k_star) - 1e-12
        if value >= 0:  # a negative guarantee is better spent on the smallest gains; not this policy's regime
            assert grid_best(gains, counts) <= value + 1e-12, counts


def test_maxmin_policy_maps_back_to_instance_order() -> None:
    df = np.array([4.0, 9.0, 1.0, 6.0, 2.0, 8.0, 3.0, 7.0, 5.0, 10.0])
    gains = instance_gains(df, mu=1.0)
    policy = maxmin_policy(gains, outcome_counts(10, PAPER_RATIOS))
    assert policy.order.tolist() == np.argsort(-df).tolist() == gain_order(gains.effective).tolist()
    np.testing.assert_allclose(policy.p[policy.order], policy.p_sorted)
    assert policy.p.sum() == pytest.approx(1.0)
    hardest_first = Gains(*(g[policy.order] for g in gains))
    p, k_star = maxmin_policy_sorted(hardest_first, outcome_counts(10, PAPER_RATIOS))
    np.testing.assert_array_equal(policy.p_sorted, p)
    assert policy.k_star == k_star and policy.value == gamma(
        hardest_first, outcome_counts(10, PAPER_RATIOS), k_star
    )
    assert (policy.p[np.argsort(-df)[k_star:]] == 0).all()  # the easiest instances beyond k* are never drawn


def test_unsorted_gains_or_bad_counts_are_rejected() -> None:
    g = np.array([0.5, 1.0, 0.25])
    with pytest.raises(ValueError, match="sorted"):
        maxmin_policy_sorted(Gains(g, g / 2, g / 2), OutcomeCounts(0, 2, 1))
    g = np.sort(g)[::-1]
    with pytest.raises(ValueError, match="sum to"):
        maxmin_policy_sorted(Gains(g, g / 2, g / 2), OutcomeCounts(1, 1, 0))
    with pytest.raises(ValueError, match="> 0"):
        maxmin_policy_sorted(Gains(g, g * 0, g / 2), OutcomeCounts(1, 1, 1))
    with pytest.raises(ValueError, match="k must be"):
        gamma(Gains(g, g / 2, g / 2), OutcomeCounts(1, 1, 1), 4)


# --- drawing ------------------------------------------------------------------------------------------------


def test_draw_from_policy_is_seeded_distinct_and_within_the_support() -> None:
    p = np.array([0.1, 0.0, 0.4, 0.2, 0.3, 0.0])
    a = draw_from_policy(p, 4, np.random.default_rng(7))
    b = draw_from_policy(p, 4, np.random.default_rng(7))
    assert a.tolist() == b.tolist() and sorted(a.tolist()) == [0, 2, 3, 4]
    with pytest.raises(ValueError, match="budget"):
        draw_from_policy(p, 5, np.random.default_rng(0))


def test_first_draw_follows_p() -> None:
    p = np.array([0.5, 0.0, 0.3, 0.2])
    rng = np.random.default_rng(0)
    first = np.array([draw_from_policy(p, 1, rng)[0] for _ in range(20000)])
    freq = np.bincount(first, minlength=4) / first.size
    np.testing.assert_allclose(freq, p, atol=0.015)  # ~4.5 standard errors


def test_draw_budget_is_deterministic_and_respects_budget_and_support() -> None:
    rng = np.random.default_rng(11)
    df = rng.integers(1, 40, size=300).astype(np.float64)  # target ranks: many ties
    runs = [
        draw_budget(df, np.random.default_rng(5), budget=50, mu=2.0, ratios=PAPER_RATIOS) for _ in range(2)
    ]
    assert runs[0].tolist() == runs[1].tolist()
    assert len(set(runs[0].tolist())) == 50 and runs[0].min() >= 0 and runs[0].max() < 300
    assert (
        draw_budget(df, np.random.default_rng(6), budget=50, mu=2.0, ratios=PAPER_RATIOS).tolist()
        != runs[0].tolist()
    )
    # solving once (paper's mu = 10): every draw lies within the top k* of the gain order
    fixed = draw_budget(
        df, np.random.default_rng(5), budget=50, mu=PAPER_MU, ratios=PAPER_RATIOS, resolve_each_draw=False
    )
    assert len(set(fixed.tolist())) == 50
    rank = difficulty_rank(df, np.random.default_rng(5))  # the same tie shuffle draw_budget makes first
    k_star = optimal_k(gains_from_rank(np.arange(1, 301), PAPER_MU), outcome_counts(300, PAPER_RATIOS))
    assert rank[fixed].max() <= k_star < 300
    resolved = draw_budget(df, np.random.default_rng(5), budget=50, mu=PAPER_MU, ratios=PAPER_RATIOS)
    assert fixed[0] == resolved[0]  # the first draw solves the same game with the same uniform


def test_draw_budget_per_draw_resolves_on_the_remaining_pool() -> None:
    """Re-solving: draw t samples from p* over the pool minus the first t draws (authors' notebook)."""
    df = np.arange(1.0, 41.0)[::-1].copy()  # no ties: instance i has difficulty rank i + 1
    drawn = draw_budget(
        df, np.random.default_rng(3), budget=6, mu=1.0, ratios=PAPER_RATIOS, shuffle_ties=False
    )
    rng = np.random.default_rng(3)
    remaining = list(range(40))
    for t in range(6):
        n = len(remaining)
        p, _ = maxmin_policy_sorted(
            gains_from_rank(np.arange(1, n + 1), 1.0), outcome_counts(n, PAPER_RATIOS)
        )
        j = int(draw_from_policy(p, 1, rng)[0])
        assert drawn[t] == remaining.pop(j)


def test_draw_budget_can_take_every_instance_only_when_resolving() -> None:
    df = np.arange(1.0, 11.0)
    assert sorted(
        draw_budget(df, np.random.default_rng(0), budget=10, mu=PAPER_MU, ratios=PAPER_RATIOS).tolist()
    ) == list(range(10))
    with pytest.raises(ValueError, match="instances with p > 0"):  # p* of the full pool stops at k* = 9
        draw_budget(
            df, np.random.default_rng(0), budget=10, mu=PAPER_MU, ratios=PAPER_RATIOS, resolve_each_draw=False
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": 11}, "budget 11 must be in 0..10"),
        ({"budget": -1}, "budget"),
        ({"ratios": (0.0, 0.0, 0.0)}, "ratios"),
        ({"mu": 0.0}, "mu must be > 0"),
        ({"policy": "best"}, "policy"),
    ],
)
def test_draw_budget_rejects_bad_input(kwargs: dict[str, object], match: str) -> None:
    args = {"budget": 5, "mu": PAPER_MU, "ratios": PAPER_RATIOS, **kwargs}
    with pytest.raises(ValueError, match=match):
        draw_budget(np.arange(1.0, 11.0), np.random.default_rng(0), **args)  # type: ignore[arg-type]


def test_equalised_draws_are_distinct_and_seeded() -> None:
    df = np.random.default_rng(2).integers(1, 30, size=120).astype(np.float64)
    a = draw_budget(df, np.random.default_rng(1), budget=20, mu=2.0, ratios=PAPER_RATIOS, policy="equalised")
    b = draw_budget(df, np.random.default_rng(1), budget=20, mu=2.0, ratios=PAPER_RATIOS, policy="equalised")
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 20


# --- the pairwise loss (Eq. 1) ------------------------------------------------------------------------------


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))  # -log sigmoid(-x)


def test_rank_weights_are_3_2_1() -> None:
    assert rank_weights(25).tolist() == [3.0] * 5 + [2.0] * 10 + [1.0] * 10
    assert rank_weights(7).tolist() == [3.0] * 5 + [2.0] * 2
    with pytest.raises(ValueError, match="K <= 25"):
        rank_weights(26)


def test_pairwise_loss_golden_one_row_five_items() -> None:
    # scores of items 1..5 = (2, 0, 1, -1, 0.5); LLM top-3 = (1, 3, 5), all at ranks 1-5: alpha = 3
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0, 0.5]])
    topk = torch.tensor([[1, 3, 5]])
    # one negative, item 4 (score -1): 3 * [sp(-1 - 2) + sp(-1 - 1) + sp(-1 - 0.5)]
    # = 3 * (0.0485874 + 0.1269280 + 0.2014133) = 1.1307859
    one = 3 * (softplus(-3.0) + softplus(-2.0) + softplus(-1.5))
    assert one == pytest.approx(1.1307859, abs=1e-6)
    assert pairwise_distillation_loss(logits, topk, torch.tensor([[4]])).item() == pytest.approx(
        one, abs=1e-6
    )
    # two negatives, items 4 (-1) and 2 (0), averaged per positive:
    # 3 * ([sp(-3) + sp(-2)]/2 + [sp(-2) + sp(-1)]/2 + [sp(-1.5) + sp(-0.5)]/2)
    two = 3 * sum((softplus(a) + softplus(b)) / 2 for a, b in [(-3.0, -2.0), (-2.0, -1.0), (-1.5, -0.5)])
    assert pairwise_distillation_loss(logits, topk, torch.tensor([[4, 2]])).item() == pytest.approx(
        two, abs=1e-6
    )
    # one negative per positive [N, K, M]: (4, 2, 4) -> 3 * [sp(-3) + sp(-1) + sp(-1.5)]
    per = 3 * (softplus(-3.0) + softplus(-1.0) + softplus(-1.5))
    per_positive = torch.tensor([[[4], [2], [4]]])
    assert pairwise_distillation_loss(logits, topk, per_positive).item() == pytest.approx(per, abs=1e-6)


def test_pairwise_loss_uses_the_rank_bands() -> None:
    logits = torch.zeros(1, 30)  # every term is sp(0) = log 2
    topk = torch.arange(1, 26).unsqueeze(0)
    loss = pairwise_distillation_loss(logits, topk, torch.tensor([[30]]))
    assert loss.item() == pytest.approx(45 * math.log(2), rel=1e-6)  # 5*3 + 10*2 + 10*1 = 45
    logits[0, 15] = 2.0  # item 16, rank 16 (alpha 1): its term becomes sp(-2)
    logits[0, 5] = 1.0  # item 6, rank 6 (alpha 2): sp(-1)
    expected = (45 - 1 - 2) * math.log(2) + 1 * softplus(-2.0) + 2 * softplus(-1.0)
    loss = pairwise_distillation_loss(logits, topk, torch.tensor([[30]]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_padding_and_repeated_ids_are_masked() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0, 0.5]])
    clean = pairwise_distillation_per_row(logits, torch.tensor([[1, 3]]), torch.tensor([[4, 2]]))
    messy = pairwise_distillation_per_row(logits, torch.tensor([[1, 0, 1, 3]]), torch.tensor([[4, 0, 2]]))
    assert messy.item() == pytest.approx(clean.item(), abs=1e-6)
    nothing = pairwise_distillation_per_row(logits, torch.tensor([[0, 0]]), torch.tensor([[4]]))
    assert nothing.item() == 0.0


def reference_per_row(logits: torch.Tensor, topk: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Eq. 1 per row, written as loops in float64 (no padding, shared negatives)."""
    rows = []
    for n in range(logits.shape[0]):
        total = logits.new_zeros(())
        for k, v in enumerate(topk[n].tolist()):
            alpha = 3.0 if k < 5 else 2.0 if k < 15 else 1.0
            terms = [
                -torch.nn.functional.logsigmoid(logits[n, v - 1] - logits[n, u - 1])
                for u in negatives[n].tolist()
            ]
            total = total + alpha * torch.stack(terms).mean()
        rows.append(total)
    return torch.stack(rows)


def test_loss_and_gradient_match_float64_reference() -> None:
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 40, generator=g) * 3).requires_grad_(True)
    topk = torch.stack([torch.randperm(40, generator=g)[:20] + 1 for _ in range(4)])
    negatives = torch.stack([torch.randperm(40, generator=g)[:3] + 1 for _ in range(4)])
    loss = pairwise_distillation_loss(logits, topk, negatives)
    loss.backward()
    logits64 = logits.detach().double().requires_grad_(True)
    ref = reference_per_row(logits64, topk, negatives).mean()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert logits.grad is not None and logits64.grad is not None
    torch.testing.assert_close(logits.grad.double(), logits64.grad, rtol=1e-4, atol=1e-7)
    touched = torch.zeros(4, 40, dtype=torch.bool)
    touched.scatter_(1, topk - 1, True)
    touched.scatter_(1, negatives - 1, True)
    assert (logits.grad[~touched] == 0).all()  # only the scored items get gradient


def test_loss_is_independent_of_batch_composition() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(7, 60, generator=g)
    topk = torch.stack([torch.randperm(60, generator=g)[:25] + 1 for _ in range(7)])
    negatives = torch.randint(1, 61, (7, 5), generator=g)
    full = pairwise_distillation_per_row(logits, topk, negatives)
    parts = [
        pairwise_distillation_per_row(logits[s], topk[s], negatives[s]) for s in (slice(0, 3), slice(3, 7))
    ]
    torch.testing.assert_close(torch.cat(parts), full)
    whole = pairwise_distillation_loss(logits, topk, negatives)
    assert torch.cat(parts).mean().item() == pytest.approx(whole.item(), rel=1e-6)
    perm = torch.randperm(7, generator=g)
    torch.testing.assert_close(
        pairwise_distillation_per_row(logits[perm], topk[perm], negatives[perm]), full[perm]
    )


def test_loss_is_float32_and_only_the_student_gets_gradient() -> None:
    logits = torch.randn(2, 10).bfloat16().requires_grad_(True)
    loss = pairwise_distillation_loss(logits, torch.tensor([[1, 2], [3, 4]]), torch.tensor([[5], [6]]))
    assert loss.dtype == torch.float32
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("topk", "negatives", "match"),
    [
        (torch.tensor([[1, 11]]), torch.tensor([[2]]), "teacher_topk must be item ids"),
        (torch.tensor([[1, 2]]), torch.tensor([[-1]]), "negatives must be item ids"),
        (torch.tensor([[1.0, 2.0]]), torch.tensor([[3]]), "integer"),
        (torch.tensor([[1, 2], [3, 4]]), torch.tensor([[3]]), r"teacher_topk must be \[N=1"),
        (torch.tensor([[1, 2]]), torch.tensor([[[3], [4], [5]]]), "negatives must be"),
        (torch.arange(1, 27).unsqueeze(0) % 10 + 1, torch.tensor([[3]]), "K <= 25"),
    ],
)
def test_bad_loss_input_is_rejected(topk: torch.Tensor, negatives: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pairwise_distillation_loss(torch.zeros(1, 10), topk, negatives)


def test_sample_negatives_avoid_the_top_k_and_are_seeded() -> None:
    topk = np.array([[1, 2, 3], [4, 5, 0]])
    a = sample_negatives(np.random.default_rng(0), 6, topk, 50)
    b = sample_negatives(np.random.default_rng(0), 6, topk, 50)
    assert a.shape == (2, 50) and a.tolist() == b.tolist()
    assert set(a[0].tolist()) == {4, 5, 6} and set(a[1].tolist()) <= {1, 2, 3, 6}
    with pytest.raises(ValueError, match="no item left"):
        sample_negatives(np.random.default_rng(0), 3, np.array([[1, 2, 3]]), 1)
