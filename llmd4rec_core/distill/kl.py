"""Temperature-scaled KL divergence and the sample-wise adaptive weights of LLMD4Rec (Eq. 2-5, 6-9).

Both directions share one kernel. The teacher is the model being distilled from (the CRM in the downward
direction, Eq. 3; the LLM in the upward direction, Eq. 7), the student the model being trained:

    KL(p_t || p_s) with p = softmax(logits / T),   loss = mean_n( w_n * KL_n )   (Eq. 5 / Eq. 9 without
                                                                                   the gamma / beta factor)

Everything is computed in float32 from ``log_softmax`` on both sides (no log 0, no exp overflow), so
bf16 logits from a CUDA autocast region are safe. Device-agnostic: inputs may live on any device.
The paper writes the KL without a T^2 factor; we follow it (documented in docs/results.md).

Candidate set (the paper is silent; ``kl_mask_history`` in params.yaml): with an ``exclude`` mask the
user's history items are removed from *both* distributions, which are renormalised over the remaining
items: the candidates the evaluation ranks (DESIGN.md section 2 masks the history). Without it, a
tied-embedding CRM, which scores the user's own items highest, puts most of its tempered mass on items
that are never recommended, and the KL spends its gradient reshaping those (measured in docs/results.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def tempered_kl(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-row KL(softmax(teacher / T) || softmax(student / T)) over the last dimension (Eq. 3 / Eq. 7).

    teacher_logits, student_logits: [N, I] (any float dtype, -inf allowed where both sides are -inf or
    the teacher alone is -inf). Returns [N] float32, >= 0 up to rounding. Gradients flow to both inputs;
    detach the teacher yourself.
    """
    return kl_from_teacher_log_probs(
        tempered_log_probs(teacher_logits, temperature), student_logits, temperature
    )


def tempered_log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) in float32, [N, I]: a teacher's side of the KL, computable once."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.log_softmax(logits.float() / temperature, dim=-1)


def kl_from_teacher_log_probs(
    teacher_log_p: torch.Tensor, student_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-row KL(p_t || softmax(student / T)) from the teacher's :func:`tempered_log_probs` [N, I]."""
    log_q = tempered_log_probs(student_logits, temperature)  # [N, I]
    p = teacher_log_p.exp()
    # items the teacher gives probability 0 contribute 0, even where the student's log-prob is -inf
    terms = torch.where(p > 0, p * (teacher_log_p - log_q), torch.zeros_like(p))
    return terms.sum(dim=-1)


def sample_weight(student_rank: torch.Tensor, teacher_rank: torch.Tensor) -> torch.Tensor:
    """Sample-wise adaptive weight w in [0, 2] from the target's rank under each model (Eq. 4 and Eq. 8).

    Eq. 4 (downward, student = LLM with rank r_l, teacher = CRM with rank r_c) and Eq. 8 (upward, student =
    CRM, teacher = LLM) are the same function of (student rank, teacher rank):

        w = clip(1 + (r_s - r_t) / max(r_t, 1), 0, 2)   if r_s > r_t   (teacher ranks the target better)
        w = clip(1 - (r_t - r_s) / max(r_s, 1), 0, 2)   otherwise      (student at least as good)

    Ranks are 1-based (pessimistic, history masked: the export's ``target_rank``). Returns float32.
    """
    r_s = student_rank.to(torch.float32)
    r_t = teacher_rank.to(torch.float32)
    teacher_better = 1.0 + (r_s - r_t) / r_t.clamp_min(1.0)
    student_better = 1.0 - (r_t - r_s) / r_s.clamp_min(1.0)
    return torch.where(r_s > r_t, teacher_better, student_better).clamp(0.0, 2.0)


def history_mask(histories: Sequence[np.ndarray], num_items: int, device: torch.device) -> torch.Tensor:
    """[N, I] bool, True where item j + 1 is in row n's history (ids 1..I; a 0 pad id is ignored)."""
    mask = torch.zeros(len(histories), num_items + 1, dtype=torch.bool, device=device)
    for n, h in enumerate(histories):
        mask[n, torch.as_tensor(np.asarray(h, dtype=np.int64), device=device)] = True
    return mask[:, 1:]


def weighted_kl(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    temperature: float,
    weights: torch.Tensor | None,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean_n(w_n * KL_n): the distillation term of Eq. 5 / Eq. 9 before gamma / beta.

    ``weights`` [N] from :func:`sample_weight`, or None for the "w/o sample weights" ablation (w = 1).
    ``exclude`` [N, I] bool (:func:`history_mask`): items left out of both distributions; a row that
    would have no item left keeps them all. The teacher is detached here: gradients reach only the
    student.
    """
    teacher = teacher_logits.detach()
    if exclude is not None:
        exclude = exclude & ~exclude.all(dim=-1, keepdim=True)
        teacher = teacher.masked_fill(exclude, float("-inf"))
        student_logits = student_logits.masked_fill(exclude, float("-inf"))
    kl = tempered_kl(teacher, student_logits, temperature)  # [N]
    if weights is not None:
        kl = kl * weights.detach().to(kl.dtype)
    return kl.mean()
