"""DLLM2Rec kernels (Eq. 5-13): hand-computed weights and losses, weight properties, gradients, batch
independence, the collaborative item table, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from llmd4rec_core.models.sasrec import SASRec, SASRecConfig
from llmd4rec_core.strategies.dllm2rec import (
    CollaborativeItemEmbedding,
    confidence_weights,
    consistency_weights,
    dllm2rec_loss,
    importance_weights,
    position_weights,
    ranking_distillation_loss,
    student_top_items,
    weighted_ranking_loss,
)

GAMMAS = {"gamma_p": 0.3, "gamma_c": 0.5, "gamma_o": 0.1}  # the paper's section 4.1.4 values

# Two instances, I = 6 items, K = 3. Student logits of items 1..6:
#   row 0: [0.5, 2.0, -1.0, 3.0, 0.0, 1.0] -> student top-3 = items 4 (3.0), 2 (2.0), 6 (1.0)
#   row 1: [1.0, 0.0, 0.0, -2.0, 4.0, 0.5] -> student top-3 = items 5 (4.0), 1 (1.0), 6 (0.5)
STUDENT = torch.tensor([[0.5, 2.0, -1.0, 3.0, 0.0, 1.0], [1.0, 0.0, 0.0, -2.0, 4.0, 0.5]])
TEACHER_TOP = torch.tensor([[2, 5, 4], [3, 1, 6]])  # O^T best first
TARGET_RANK = torch.tensor([2, 1])  # r*: the teacher ranks row 0's target 2nd, row 1's target 1st
NEGATIVES = torch.tensor([[1, 3], [4, 2]])  # row 0: logits 0.5, -1.0; row 1: logits -2.0, 0.0

# w^p at K = 3, β = 1: exp(-1), exp(-2), exp(-3) = 0.367879, 0.135335, 0.049787, sum Z = 0.553002
WP_BETA1 = [0.367879441 / 0.553001793, 0.135335283 / 0.553001793, 0.049787068 / 0.553001793]
# = [0.665241, 0.244728, 0.090031]


def softplus_neg(x: float) -> float:
    """-log σ(x) = log(1 + e^-x), written from the definition."""
    return math.log(1.0 + math.exp(-x))


def test_position_weights_hand_values() -> None:
    w = position_weights(3, 1.0)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([0.665241, 0.244728, 0.090031]), atol=1e-6, rtol=0)
    # β = 2: exp(-0.5), exp(-1), exp(-1.5) = 0.606531, 0.367879, 0.223130, Z = 1.197540
    torch.testing.assert_close(
        position_weights(3, 2.0), torch.tensor([0.506480, 0.307196, 0.186324]), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("beta", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("k", [1, 2, 10])
def test_position_weights_decrease_strictly_and_sum_to_one(k: int, beta: float) -> None:
    w = position_weights(k, beta)
    assert w.shape == (k,)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert bool((w[1:] < w[:-1]).all())
    # the ratio of neighbours is exp(-1/β) at every position (Eq. 6's shape)
    if k > 1:
        torch.testing.assert_close(w[1:] / w[:-1], torch.full((k - 1,), math.exp(-1 / beta)))


def test_confidence_weights_hand_values() -> None:
    # β = 1: r*^(-1) / K: rank 2 -> 0.5 / 3 = 0.166667, rank 1 -> 1 / 3, rank 4 -> 0.25 / 3 = 0.083333
    w = confidence_weights(torch.tensor([2, 1, 4]), 3, 1.0)
    assert w.dtype == torch.float32 and w.shape == (3, 3)
    expected = torch.tensor([[1 / 6] * 3, [1 / 3] * 3, [1 / 12] * 3])
    torch.testing.assert_close(w, expected, atol=1e-7, rtol=0)
    # β = 2: rank 2 -> 2^(-1/2) / 3 = 0.707107 / 3 = 0.235702
    torch.testing.assert_close(confidence_weights(torch.tensor([2]), 3, 2.0), torch.full((1, 3), 0.235702))


def test_confidence_weights_sum_to_the_teachers_reciprocal_rank() -> None:
    ranks = torch.tensor([1, 2, 3, 10, 100, 12101])
    w = confidence_weights(ranks, 10, 1.0)
    torch.testing.assert_close(w.sum(dim=1), 1.0 / ranks.float())  # 1 (= w^p's mass) at rank 1
    assert bool((w.sum(dim=1)[1:] < w.sum(dim=1)[:-1]).all())  # the worse the teacher, the less trust
    assert bool((w == w[:, :1]).all())  # an instance-level weight: the same on every candidate


def test_consistency_weights_hand_values() -> None:
    # row 0: O^T = {2, 5, 4}, O^S = {4, 2, 6} -> [1, 0, 1]
    # row 1: O^T = {3, 1, 6}, O^S = {5, 1, 6} -> [0, 1, 1]
    w = consistency_weights(STUDENT, TEACHER_TOP)
    assert w.dtype == torch.float32
    assert w.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]


def test_consistency_weights_zero_when_disjoint_and_one_when_equal() -> None:
    student = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])  # top-3 = items 1, 2, 3
    assert consistency_weights(student, torch.tensor([[4, 5, 6]])).tolist() == [[0.0, 0.0, 0.0]]
    assert consistency_weights(student, torch.tensor([[3, 1, 2]])).tolist() == [[1.0, 1.0, 1.0]]  # order-free


@pytest.mark.parametrize("levels", [3, 50, 10_000])  # many ties, some, almost none
def test_consistency_weights_match_membership_in_the_sorted_top_k(levels: int) -> None:
    gen = torch.Generator().manual_seed(levels)
    student = torch.randint(0, levels, (64, 40), generator=gen).float()
    teacher = torch.stack([torch.randperm(40, generator=gen)[:7] + 1 for _ in range(64)])
    o_s = student_top_items(student, 7)  # the sort-based definition of O^S
    expected = (teacher[:, :, None] == o_s[:, None, :]).any(dim=2).float()
    assert torch.equal(consistency_weights(student, teacher), expected)


def test_student_top_items_break_ties_to_the_lower_id() -> None:
    student = torch.tensor([[1.0, 2.0, 2.0, 0.0, 2.0]])
    assert student_top_items(student, 2).tolist() == [[2, 3]]


def test_importance_weights_hand_values() -> None:
    w = importance_weights(STUDENT, TEACHER_TOP, TARGET_RANK, k=3, beta=1.0, **GAMMAS)
    # row 0: 0.3 w^p + 0.5 (0.5 / 3) + 0.1 [1, 0, 1]
    #   = [0.199572 + 0.083333 + 0.1, 0.073418 + 0.083333, 0.027009 + 0.083333 + 0.1]
    #   = [0.382906, 0.156752, 0.210343], sum 0.3 + 0.25 + 0.2 = 0.75
    # row 1: 0.3 w^p + 0.5 (1 / 3) + 0.1 [0, 1, 1]
    #   = [0.199572 + 0.166667, 0.073418 + 0.166667 + 0.1, 0.027009 + 0.166667 + 0.1]
    #   = [0.366239, 0.340085, 0.293676], sum 0.3 + 0.5 + 0.2 = 1.0
    expected = torch.tensor([[0.382906, 0.156752, 0.210343], [0.366239, 0.340085, 0.293676]])
    torch.testing.assert_close(w, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(w.sum(dim=1), torch.tensor([0.75, 1.0]))  # Eq. 10 is not renormalised


def test_importance_weights_use_only_the_first_k_teacher_columns() -> None:
    wide = torch.tensor([[2, 5, 4, 1, 3], [3, 1, 6, 2, 4]])  # an export with K_t = 5 > K = 3
    w_wide = importance_weights(STUDENT, wide, TARGET_RANK, k=3, beta=1.0, **GAMMAS)
    w = importance_weights(STUDENT, TEACHER_TOP, TARGET_RANK, k=3, beta=1.0, **GAMMAS)
    torch.testing.assert_close(w_wide, w)


def test_ranking_loss_hand_values_with_and_without_negatives() -> None:
    # row 0: candidate logits [2, 0, 3]: -log σ = [0.126928, 0.693147, 0.048587]
    #   positive part 0.382906*0.126928 + 0.156752*0.693147 + 0.210343*0.048587 = 0.167474
    #   negatives logits [0.5, -1]: -log(1 - σ) = log(1 + e^0.5) + log(1 + e^-1)
    #     = 0.974077 + 0.313262 = 1.287339
    #   row loss 0.167474 + 0.75 * 1.287339 = 0.167474 + 0.965504 = 1.132978
    # row 1: candidate logits [0, 1, 0.5]: -log σ = [0.693147, 0.313262, 0.474077]
    #   positive part 0.366239*0.693147 + 0.340085*0.313262 + 0.293676*0.474077 = 0.499618
    #   negatives logits [-2, 0]: log(1 + e^-2) + log 2 = 0.126928 + 0.693147 = 0.820075
    #   row loss 0.499618 + 1.0 * 0.820075 = 1.319693
    # mean over the 2 rows: (1.132978 + 1.319693) / 2 = 1.226336; Eq. 5 alone: (0.167474 + 0.499618) / 2
    loss = ranking_distillation_loss(STUDENT, TEACHER_TOP, TARGET_RANK, NEGATIVES, k=3, beta=1.0, **GAMMAS)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(1.226336, abs=1e-5)
    eq5 = ranking_distillation_loss(STUDENT, TEACHER_TOP, TARGET_RANK, None, k=3, beta=1.0, **GAMMAS)
    assert eq5.item() == pytest.approx((0.167474 + 0.499618) / 2, abs=1e-5)
    # the same numbers from the definitions in float64
    w = [[0.382906, 0.156752, 0.210343], [0.366239, 0.340085, 0.293676]]
    pos, neg = [[2.0, 0.0, 3.0], [0.0, 1.0, 0.5]], [[0.5, -1.0], [-2.0, 0.0]]
    rows = [
        sum(wi * softplus_neg(p) for wi, p in zip(w[s], pos[s], strict=True))
        + sum(w[s]) * sum(softplus_neg(-x) for x in neg[s])
        for s in range(2)
    ]
    assert loss.item() == pytest.approx(sum(rows) / 2, abs=1e-5)


def test_negative_term_is_log_one_minus_sigmoid_not_log_sigmoid_one_minus() -> None:
    """One candidate (weight 1) and one negative: the negative term is -log(1 - σ(y)), not -log σ(1 - y)."""
    logits = torch.tensor([[0.0, 2.0]])
    w = torch.ones(1, 1)
    loss = weighted_ranking_loss(logits, torch.tensor([[1]]), w, torch.tensor([[2]]))
    # -log σ(0) - log(1 - σ(2)) = log 2 + log(1 + e^2) = 0.693147 + 2.126928 = 2.820075
    assert loss.item() == pytest.approx(2.820075, abs=1e-5)
    wrong = math.log(2) + softplus_neg(1.0 - 2.0)  # the release's log σ(1 - y): 0.693147 + 1.313262
    assert abs(loss.item() - wrong) > 0.5


def test_gradient_is_eq9_and_reaches_only_candidates_and_negatives() -> None:
    student = STUDENT.clone().requires_grad_(True)
    loss = ranking_distillation_loss(student, TEACHER_TOP, TARGET_RANK, NEGATIVES, k=3, beta=1.0, **GAMMAS)
    loss.backward()
    assert student.grad is not None
    w = importance_weights(STUDENT, TEACHER_TOP, TARGET_RANK, k=3, beta=1.0, **GAMMAS)
    expected = torch.zeros_like(STUDENT)
    n = STUDENT.shape[0]
    for s in range(n):
        for c, item in enumerate(TEACHER_TOP[s].tolist()):  # Eq. 9: -w σ(-y) / N
            expected[s, item - 1] += -w[s, c] * torch.sigmoid(-STUDENT[s, item - 1]) / n
        for item in NEGATIVES[s].tolist():  # +(sum_i w_si) σ(y) / N
            expected[s, item - 1] += w[s].sum() * torch.sigmoid(STUDENT[s, item - 1]) / n
    torch.testing.assert_close(student.grad, expected)
    # no gradient through the consistency weight's student top-K: every other item gets exactly 0
    touched = torch.zeros_like(STUDENT, dtype=torch.bool)
    touched.scatter_(1, TEACHER_TOP - 1, True)
    touched.scatter_(1, NEGATIVES - 1, True)
    assert bool((student.grad[~touched] == 0).all())


def test_negative_term_pushes_negative_scores_down_and_candidates_up() -> None:
    student = STUDENT.clone().requires_grad_(True)
    ranking_distillation_loss(
        student, TEACHER_TOP, TARGET_RANK, NEGATIVES, k=3, beta=1.0, **GAMMAS
    ).backward()
    assert student.grad is not None
    assert bool((student.grad.gather(1, NEGATIVES - 1) > 0).all())  # descent lowers the negatives
    assert bool((student.grad.gather(1, TEACHER_TOP - 1) < 0).all())  # and raises the teacher's top-K
    stepped = STUDENT - 0.5 * student.grad
    assert bool((stepped.gather(1, NEGATIVES - 1) < STUDENT.gather(1, NEGATIVES - 1)).all())


def test_weights_carry_no_gradient_and_teacher_inputs_are_untouched() -> None:
    student = STUDENT.clone().requires_grad_(True)
    top, rank = TEACHER_TOP.clone(), TARGET_RANK.clone()
    w = importance_weights(student, top, rank, k=3, beta=1.0, **GAMMAS)
    assert not w.requires_grad
    loss = ranking_distillation_loss(student, top, rank, NEGATIVES, k=3, beta=1.0, **GAMMAS)
    assert loss.requires_grad
    assert torch.equal(top, TEACHER_TOP) and torch.equal(rank, TARGET_RANK)


def test_weighted_ranking_loss_detaches_weights() -> None:
    weights = torch.tensor([[0.4, 0.6]], requires_grad=True)
    student = torch.tensor([[0.3, -0.2, 1.0]], requires_grad=True)
    weighted_ranking_loss(student, torch.tensor([[1, 3]]), weights, torch.tensor([[2]])).backward()
    assert weights.grad is None and student.grad is not None


def random_batch(n: int, num_items: int, k: int, m: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(n, num_items, generator=g) * 2
    top = torch.stack([torch.randperm(num_items, generator=g)[:k] + 1 for _ in range(n)])
    rank = torch.randint(1, num_items + 1, (n,), generator=g)
    negatives = torch.randint(1, num_items + 1, (n, m), generator=g)
    return student, top, rank, negatives


def test_batch_loss_is_the_row_weighted_mean_of_its_halves() -> None:
    student, top, rank, negatives = random_batch(7, 30, 10, 4, seed=3)
    # make the student agree with the teacher on some rows so w^o is not all zero
    student[:3].scatter_(1, top[:3, :5] - 1, 10.0)

    def loss(rows: slice) -> float:
        kwargs = {"k": 10, "beta": 1.0, **GAMMAS}
        return ranking_distillation_loss(
            student[rows], top[rows], rank[rows], negatives[rows], **kwargs
        ).item()

    whole, first, second = loss(slice(0, 7)), loss(slice(0, 3)), loss(slice(3, 7))
    assert whole == pytest.approx((3 * first + 4 * second) / 7, rel=1e-6)
    assert consistency_weights(student[:3], top[:3]).sum() > 0


def test_loss_matches_a_float64_reference_on_random_data() -> None:
    student, top, rank, negatives = random_batch(5, 40, 10, 3, seed=11)
    beta = 0.7
    loss = ranking_distillation_loss(student, top, rank, negatives, k=10, beta=beta, **GAMMAS)
    s64 = student.double()
    total = 0.0
    for s in range(5):
        o_s = set((torch.argsort(-s64[s])[:10] + 1).tolist())
        z = sum(math.exp(-r / beta) for r in range(1, 11))
        row = 0.0
        weight_sum = 0.0
        for c, item in enumerate(top[s].tolist()):
            w = (
                0.3 * math.exp(-(c + 1) / beta) / z
                + 0.5 * math.exp(-math.log(rank[s].item()) / beta) / 10
                + 0.1 * (item in o_s)
            )
            weight_sum += w
            row += w * softplus_neg(s64[s, item - 1].item())
        row += weight_sum * sum(softplus_neg(-s64[s, j - 1].item()) for j in negatives[s].tolist())
        total += row
    assert loss.item() == pytest.approx(total / 5, rel=1e-5)


def test_bf16_logits_are_computed_in_float32() -> None:
    student = STUDENT.bfloat16()  # every value of STUDENT is exact in bf16
    loss = ranking_distillation_loss(student, TEACHER_TOP, TARGET_RANK, NEGATIVES, k=3, beta=1.0, **GAMMAS)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(1.226336, abs=1e-5)


def test_total_loss_is_eq11() -> None:
    rec, distill = torch.tensor(2.0), torch.tensor(0.5)
    assert dllm2rec_loss(rec, distill, 0.8).item() == pytest.approx(2.4)
    assert dllm2rec_loss(rec, distill, 0.0).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="lambda_d must be"):
        dllm2rec_loss(rec, distill, -0.1)
    with pytest.raises(ValueError, match="must be scalars"):
        dllm2rec_loss(torch.ones(2), distill, 0.5)


BAD_CALLS = {
    "K larger than the catalogue": (
        {"k": 7},
        "exceeds the catalogue size 6",
    ),
    "K larger than the export": (
        {"k": 4},
        "exceeds the teacher's exported top-3",
    ),
    "k zero": ({"k": 0}, "k must be >= 1"),
    "beta zero": ({"beta": 0.0}, "beta must be a finite number > 0"),
    "beta negative": ({"beta": -1.0}, "beta must be a finite number > 0"),
    "negative gamma": ({"gamma_o": -0.1}, "gamma_o must be"),
    "rows mismatch": ({"teacher_top_items": TEACHER_TOP[:1]}, "teacher_top_items must be"),
    "rank rows mismatch": ({"teacher_target_rank": torch.tensor([1, 2, 3])}, "teacher_target_rank must be"),
    "rank zero": ({"teacher_target_rank": torch.tensor([0, 1])}, "teacher_target_rank must be >= 1"),
    "id out of range": ({"teacher_top_items": torch.tensor([[2, 5, 7], [3, 1, 6]])}, "must lie in 1..6"),
    "padding id": ({"teacher_top_items": torch.tensor([[0, 5, 4], [3, 1, 6]])}, "must lie in 1..6"),
    "duplicate candidate": ({"teacher_top_items": torch.tensor([[2, 2, 4], [3, 1, 6]])}, "repeats an item"),
    "float ids": ({"teacher_top_items": TEACHER_TOP.float()}, "integer item ids"),
    "negatives rows mismatch": ({"negatives": NEGATIVES[:1]}, "negatives must be"),
    "negative id out of range": ({"negatives": torch.tensor([[1, 9], [4, 2]])}, "negatives must lie in 1..6"),
    "1-D logits": ({"student_logits": STUDENT[0]}, "student_logits must be"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_is_rejected(case: str) -> None:
    override, message = BAD_CALLS[case]
    kwargs = {
        "student_logits": STUDENT,
        "teacher_top_items": TEACHER_TOP,
        "teacher_target_rank": TARGET_RANK,
        "negatives": NEGATIVES,
        "k": 3,
        "beta": 1.0,
        **GAMMAS,
        **override,
    }
    with pytest.raises(ValueError, match=message):
        ranking_distillation_loss(**kwargs)


def test_weighted_ranking_loss_rejects_mismatched_weights() -> None:
    with pytest.raises(ValueError, match="weights"):
        weighted_ranking_loss(STUDENT, TEACHER_TOP, torch.ones(2, 2), None)


# ---- collaborative embedding distillation (Eq. 12-13) ----


def tiny_embedding(projector_hidden: int | None, alpha: float = 0.2) -> CollaborativeItemEmbedding:
    torch.manual_seed(0)
    teacher = torch.randn(5, 8)  # I = 5 items, D_t = 8
    offset = nn.Embedding(6, 4, padding_idx=0)  # D_s = 4
    return CollaborativeItemEmbedding(teacher, offset, alpha=alpha, projector_hidden=projector_hidden)


def test_table_hand_values() -> None:
    teacher = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # I = 2, D_t = 2
    offset = nn.Embedding(3, 2, padding_idx=0)
    with torch.no_grad():
        offset.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 0.5]]))
    emb = CollaborativeItemEmbedding(teacher, offset, alpha=0.5, projector_hidden=None)
    assert isinstance(emb.projector, nn.Linear)
    with torch.no_grad():
        emb.projector.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))  # g(z) = W z + b
        emb.projector.bias.copy_(torch.tensor([0.1, -0.1]))
    # item 1: g([1, 0]) = [1 + 0.1, 0 - 0.1] = [1.1, -0.1]; e_1 = [1, -1] + 0.5 [1.1, -0.1] = [1.55, -1.05]
    # item 2: g([0, 2]) = [4 + 0.1, 2 - 0.1] = [4.1, 1.9];  e_2 = [0.5, 0.5] + 0.5 [4.1, 1.9] = [2.55, 1.45]
    expected = torch.tensor([[0.0, 0.0], [1.55, -1.05], [2.55, 1.45]])  # row 0: padding zeros, not 0.5 b
    torch.testing.assert_close(emb.table(), expected)
    torch.testing.assert_close(emb.weight, expected)


@pytest.mark.parametrize("projector_hidden", [None, 16])
def test_table_shape_padding_row_and_lookup(projector_hidden: int | None) -> None:
    emb = tiny_embedding(projector_hidden)
    table = emb.table()
    assert table.shape == (6, 4) and table.dtype == torch.float32
    assert bool((table[0] == 0).all())
    ids = torch.tensor([[0, 3, 5], [1, 0, 2]])
    out = emb(ids)
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out, table[ids])
    assert bool((out[0, 0] == 0).all()) and bool((out[1, 1] == 0).all())
    # the offset is the student's own trainable ID embedding, combined linearly (alpha = 0.2)
    projected = emb.projector(emb.teacher_items)
    torch.testing.assert_close(table[1:], emb.offset.weight[1:] + 0.2 * projected)


@pytest.mark.parametrize("projector_hidden", [None, 16])
def test_gradients_reach_projector_and_offset_not_teacher(projector_hidden: int | None) -> None:
    emb = tiny_embedding(projector_hidden)
    assert not emb.teacher_items.requires_grad
    assert "teacher_items" in dict(emb.named_buffers())
    assert all(p is not emb.teacher_items for p in emb.parameters())
    (emb(torch.tensor([1, 2, 3, 0])) ** 2).sum().backward()
    for name, p in emb.projector.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert emb.offset.weight.grad is not None
    assert emb.offset.weight.grad[1:4].abs().sum() > 0
    assert bool((emb.offset.weight.grad[0] == 0).all())  # padding never looked up
    assert emb.teacher_items.grad is None


def test_teacher_table_is_a_float32_copy() -> None:
    teacher = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    emb = CollaborativeItemEmbedding(teacher, nn.Embedding(6, 4), alpha=0.2, projector_hidden=None)
    assert emb.teacher_items.dtype == torch.float32 and not emb.teacher_items.requires_grad
    (emb.table() ** 2).sum().backward()
    assert teacher.grad is None


def test_replaces_sasrec_item_embeddings() -> None:
    torch.manual_seed(0)
    cfg = SASRecConfig(num_items=5, hidden_size=8, max_len=4, num_layers=1, num_heads=2, dropout=0.0)
    model = SASRec(cfg)
    teacher = torch.randn(5, 12)
    model.item_embeddings = CollaborativeItemEmbedding(  # type: ignore[assignment]
        teacher, model.item_embeddings, alpha=0.2, projector_hidden=None
    )
    scores = model.score_items(torch.tensor([[0, 1, 2, 3], [0, 0, 4, 5]]))
    assert scores.shape == (2, 6) and torch.isfinite(scores).all()
    scores[:, 1:].sum().backward()
    projector = model.item_embeddings.projector
    assert isinstance(projector, nn.Linear) and projector.weight.grad is not None
    assert "item_embeddings.teacher_items" not in model.state_dict()  # rebuilt from the teacher, not saved


EMBEDDING_BAD = {
    "offset rows": ({"offset": nn.Embedding(5, 4)}, "expected I \\+ 1 = 6"),
    "1-D teacher": ({"teacher_items": torch.randn(5)}, "teacher_items must be"),
    "nan teacher": ({"teacher_items": torch.full((5, 8), float("nan"))}, "NaN"),
    "negative alpha": ({"alpha": -0.5}, "alpha must be"),
    "zero hidden": ({"projector_hidden": 0}, "projector_hidden must be"),
}


@pytest.mark.parametrize("case", list(EMBEDDING_BAD))
def test_embedding_bad_input_is_rejected(case: str) -> None:
    override, message = EMBEDDING_BAD[case]
    kwargs = {
        "teacher_items": torch.randn(5, 8),
        "offset": nn.Embedding(6, 4),
        "alpha": 0.2,
        "projector_hidden": None,
        **override,
    }
    teacher_items, offset = kwargs.pop("teacher_items"), kwargs.pop("offset")
    with pytest.raises(ValueError, match=message):
        CollaborativeItemEmbedding(teacher_items, offset, **kwargs)
