"""KL and sample-weight kernels (Eq. 2-9): hand-computed values, the paper's cases, float64 gradients,
extreme inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmd4rec_core.distill.kl import history_mask, sample_weight, tempered_kl, weighted_kl


def eq4_w1(r_c: float, r_l: float) -> float:
    """Eq. 4 transcribed literally (downward: CRM rank r_c, LLM rank r_l)."""
    if r_l > r_c:
        return max(0.0, min(2.0, 1 + (r_l - r_c) / max(r_c, 1)))
    return max(0.0, min(2.0, 1 - (r_c - r_l) / max(r_l, 1)))


def eq8_w2(r_c: float, r_l: float) -> float:
    """Eq. 8 transcribed literally (upward)."""
    if r_c > r_l:
        return max(0.0, min(2.0, 1 + (r_c - r_l) / max(r_l, 1)))
    return max(0.0, min(2.0, 1 - (r_l - r_c) / max(r_c, 1)))


# (student rank, teacher rank) -> weight, computed by hand
HAND_WEIGHTS = [
    (6, 5, 1.2),  # teacher better by 1 of 5: 1 + 1/5
    (10, 5, 2.0),  # 1 + 5/5 = 2, exactly the upper clip
    (40, 5, 2.0),  # 1 + 35/5 = 8, clipped at 2
    (8, 10, 0.75),  # student better: 1 - 2/8
    (5, 10, 0.0),  # 1 - 5/5 = 0, exactly the lower clip
    (1, 30, 0.0),  # 1 - 29/1, clipped at 0
    (7, 7, 1.0),  # equal ranks: the "otherwise" branch, 1 - 0
    (1, 1, 1.0),
    (2, 1, 2.0),  # 1 + 1/max(1, 1)
    (1, 2, 0.0),  # 1 - 1/max(1, 1)
    (3, 0, 2.0),  # teacher rank 0: max(0, 1) = 1 in the denominator, 1 + 3 -> 2
    (0, 2, 0.0),  # student rank 0: 1 - 2/1 -> 0
    (0, 0, 1.0),
]


@pytest.mark.parametrize(("r_s", "r_t", "expected"), HAND_WEIGHTS)
def test_sample_weight_hand_values(r_s: int, r_t: int, expected: float) -> None:
    w = sample_weight(torch.tensor([r_s]), torch.tensor([r_t]))
    assert w.dtype == torch.float32
    assert float(w) == pytest.approx(expected, abs=1e-7)


def test_sample_weight_is_eq4_and_eq8() -> None:
    ranks = [0, 1, 2, 3, 5, 8, 13, 100, 12101]
    r_a = torch.tensor([a for a in ranks for _ in ranks])
    r_b = torch.tensor([b for _ in ranks for b in ranks])
    w1 = sample_weight(student_rank=r_b, teacher_rank=r_a)  # downward: student LLM r_l = b, teacher r_c = a
    w2 = sample_weight(student_rank=r_a, teacher_rank=r_b)  # upward: student CRM r_c = a, teacher r_l = b
    for i, (a, b) in enumerate(zip(r_a.tolist(), r_b.tolist(), strict=True)):
        assert float(w1[i]) == pytest.approx(eq4_w1(r_c=a, r_l=b), abs=1e-6)
        assert float(w2[i]) == pytest.approx(eq8_w2(r_c=a, r_l=b), abs=1e-6)
    assert float(w1.min()) >= 0.0 and float(w1.max()) <= 2.0


def test_tempered_kl_hand_values() -> None:
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # p = [1/4, 3/4] at T = 1
    student = torch.zeros(1, 2)  # q = [1/2, 1/2]
    expected_t1 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert float(tempered_kl(teacher, student, 1.0)) == pytest.approx(expected_t1, abs=1e-6)
    # T = 0.5 squares the odds: p = [1/10, 9/10]
    expected_half = 0.1 * math.log(0.2) + 0.9 * math.log(1.8)
    assert float(tempered_kl(teacher, student, 0.5)) == pytest.approx(expected_half, abs=1e-6)
    assert float(tempered_kl(teacher, teacher, 0.3)) == pytest.approx(0.0, abs=1e-7)


def reference_kl(teacher: torch.Tensor, student: torch.Tensor, t: float) -> torch.Tensor:
    """Per-row KL in float64 written from the definition: sum_i p_i (log p_i - log q_i)."""
    p = torch.exp(teacher / t) / torch.exp(teacher / t).sum(-1, keepdim=True)
    q = torch.exp(student / t) / torch.exp(student / t).sum(-1, keepdim=True)
    return (p * (torch.log(p) - torch.log(q))).sum(-1)


@pytest.mark.parametrize("temperature", [0.2, 0.6, 1.0])
def test_kl_and_gradient_match_float64_reference(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(6, 50, generator=g) * 2
    student = (torch.randn(6, 50, generator=g) * 2).requires_grad_(True)
    weights = torch.rand(6, generator=g) * 2
    loss = weighted_kl(teacher, student, temperature, weights)
    loss.backward()
    student64 = student.detach().double().requires_grad_(True)
    ref = (weights.double() * reference_kl(teacher.double(), student64, temperature)).mean()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert student.grad is not None and student64.grad is not None
    torch.testing.assert_close(student.grad.double(), student64.grad, rtol=1e-4, atol=1e-7)


def test_teacher_gets_no_gradient_and_unit_weights_are_the_mean() -> None:
    teacher = torch.randn(4, 9, requires_grad=True)
    student = torch.randn(4, 9, requires_grad=True)
    loss = weighted_kl(teacher, student, 0.6, None)
    assert loss.item() == pytest.approx(tempered_kl(teacher, student, 0.6).mean().item(), rel=1e-6)
    loss.backward()
    assert teacher.grad is None and student.grad is not None


def test_history_mask_marks_items_of_each_row() -> None:
    mask = history_mask(
        [np.array([1, 3]), np.array([], dtype=np.int64), np.array([4, 4, 0])], 4, torch.device("cpu")
    )
    expected = [[True, False, True, False], [False] * 4, [False, False, False, True]]  # a 0 pad id is ignored
    assert mask.tolist() == expected


def test_excluded_items_leave_both_distributions() -> None:
    """Hand values: items 1 and 3 excluded, the KL is the KL over items 2 and 4 renormalised."""
    teacher = torch.tensor([[5.0, 0.0, 9.0, math.log(3.0)]])
    student = torch.tensor([[-3.0, 0.0, 7.0, 0.0]], requires_grad=True)
    exclude = torch.tensor([[True, False, True, False]])
    kl = weighted_kl(teacher, student, 1.0, None, exclude)
    assert kl.item() == pytest.approx(
        0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-6
    )  # [1/4, 3/4] vs [1/2, 1/2]
    kl.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad[0, 0] == 0 and student.grad[0, 2] == 0  # excluded items get no gradient
    kept = weighted_kl(teacher[:, [1, 3]], student.detach()[:, [1, 3]], 0.2, None)
    assert weighted_kl(teacher, student, 0.2, None, exclude).item() == pytest.approx(kept.item(), rel=1e-6)


def test_a_row_with_every_item_excluded_keeps_them_all() -> None:
    teacher, student = torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.zeros(2, 2)
    exclude = torch.tensor([[True, True], [True, False]])
    per_row = [
        weighted_kl(teacher[i : i + 1], student[i : i + 1], 0.5, None, exclude[i : i + 1]) for i in range(2)
    ]
    assert per_row[0].item() == pytest.approx(tempered_kl(teacher[:1], student[:1], 0.5).item(), rel=1e-6)
    assert per_row[1].item() == pytest.approx(0.0, abs=1e-7)  # one candidate left: both put all mass on it
    assert torch.isfinite(weighted_kl(teacher, student, 0.5, None, exclude))


EXTREMES = {
    "huge logits": (torch.tensor([[1e4, -1e4, 0.0]]), torch.tensor([[-1e4, 1e4, 0.0]])),
    "all equal": (torch.full((2, 5), 3.0), torch.full((2, 5), -7.0)),
    "single item": (torch.tensor([[5.0]]), torch.tensor([[-5.0]])),
    "teacher -inf": (torch.tensor([[0.0, float("-inf")]]), torch.tensor([[0.0, 0.0]])),
}


@pytest.mark.parametrize("case", list(EXTREMES))
@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_extreme_inputs_stay_finite(case: str, temperature: float) -> None:
    teacher, student = EXTREMES[case]
    student = student.clone().requires_grad_(True)
    kl = tempered_kl(teacher, student, temperature)
    assert torch.isfinite(kl).all() and (kl >= -1e-6).all()
    kl.sum().backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    if case in ("all equal", "single item"):
        assert torch.allclose(kl, torch.zeros_like(kl))


def test_bf16_inputs_are_computed_in_float32() -> None:
    teacher = torch.randn(3, 20).bfloat16()
    student = torch.randn(3, 20).bfloat16()
    kl = tempered_kl(teacher, student, 0.6)
    assert kl.dtype == torch.float32
    torch.testing.assert_close(kl, reference_kl(teacher.double(), student.double(), 0.6).float())


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_non_positive_temperature_is_rejected(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature must be > 0"):
        tempered_kl(torch.zeros(1, 2), torch.zeros(1, 2), temperature)
