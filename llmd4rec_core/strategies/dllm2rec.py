"""DLLM2Rec (Cui et al., "Distillation Matters", section 3.2): importance-aware ranking distillation
(Eq. 5-11) and collaborative embedding distillation (Eq. 12-13), from an E4SRec-style teacher to SASRec.

Notation: instance s (a row, N per batch), catalogue ids 1..I (student logit column i - 1; id 0 is
padding), O^T_s the teacher's top-K items best first (the export's ``top_items[:, :K]``), r*_s the
target's rank under the teacher (the export's ``target_rank``: 1-based, pessimistic, history masked),
O^S_s the student's top-K, O^-_s the instance's sampled negatives, y_si the student's logit.

Ranking distillation (Eq. 5, with the negative term discussed below, and Eq. 10-11)::

    L_d = mean_s sum_{i in O^T_s} w_si [ -log σ(y_si) - sum_{j in O^-_s} log(1 - σ(y_sj)) ]
    w_si = γ_p w^p_si + γ_c w^c_si + γ_o w^o_si                                           (Eq. 10)
    w^p_si = exp(-r_i / β) / sum_{r=1..K} exp(-r / β),  r_i = position of i in O^T_s       (Eq. 6)
    w^c_si = exp(-d_s / β) / K,  d_s = ln r*_s,  i.e.  w^c_si = r*_s^(-1/β) / K             (Eq. 7, adapted)
    w^o_si = 1 if i in O^T_s ∩ O^S_s else 0                                                (Eq. 8)
    L = L_r + λ_d L_d                                                                     (Eq. 11)

Choices where the paper is silent or does not apply to our teacher:

* Confidence weight (Eq. 7). The paper's w^c depends on the instance only: exp(-d_si*/β) with d_si* the
  distance between the LLM's generated description and the *ground-truth* item. It is the one place the
  ground truth enters L_d, and it answers section 3.1's "teacher knowledge reliability" (the LLM loses to
  the CRM on over 30 % of instances): trust the teacher less where its answer is far from the target.
  Our teacher generates no text; like BIGRec's grounding distance (Eq. 4) its scores induce a ranking, and
  how far its answer is from the target is where it puts the target: d_s = ln r*_s, 0 exactly when the
  teacher's top-1 is the target (as d_si* = 0 when the generated description is the target's), growing
  with every item the teacher prefers. The log makes exp(-d/β) the reciprocal rank at β = 1 (an MRR-style
  confidence: rank 5 -> 0.2, rank 1000 -> 0.001); the linear distance r* - 1 would at β = 1 give rank 5
  e^-4 ≈ 0.018, reducing w^c to a "top-1 hit" indicator. Normalisation ("∝"): the instance's confidence is
  spread evenly over its K candidates, so a row's w^c sums to r*^(-1/β) in (0, 1]: the mass w^p has (1)
  when the teacher is exactly right, proportionally less otherwise. It is row-local (normalising across
  the batch would make an instance's loss depend on its batch). β is the β of Eq. 6, as the paper writes
  one β for both. Rejected: a softmax over the teacher's top-K logits (what the authors' release does with
  per-candidate distances): every row then carries confidence mass 1, so it cannot down-weight the
  instances where the teacher is wrong, and it mostly duplicates w^p (both decrease along the teacher's
  ranking). The teacher's logits are therefore not an input here.
* Eq. 10 is applied as written: w is *not* renormalised per row (the authors' release renormalises it to
  sum 1, which would cancel the instance-level confidence). A row's total weight is
  γ_p + γ_c r*^(-1/β) + γ_o |O^T ∩ O^S|.
* Negative term. Eq. 5 has none; the sampled negatives appear in L_r (Eq. 3). The authors' release adds,
  for every teacher candidate, the BCE negative term of the instance's sampled negative, weighted by w_si,
  but computes it as log σ(1 - y) instead of log(1 - σ(y)) = log σ(-y) (issue 5: "the correct negative
  term"). ``negatives=None`` gives Eq. 5 exactly; ids [N, M] treat every teacher candidate as a weighted
  positive of Eq. 3 with the instance's negatives (sum over j as in Eq. 3), with the correct log(1 - σ(y)).
  The caller's sampler decides which ids may be negatives (the release draws outside history and target);
  nothing is masked here, so the function is deterministic.
* Reduction: mean over instances, not the paper's sum over Γ (the release also means over the batch), so
  λ_d does not scale with the batch size and matches the project's mean L_r (``losses.py``).
* O^S (Eq. 8): the student's top-K with the same K, over the whole catalogue unmasked (the candidate set
  of the export's ``top_items``), from the logits passed in (the current student), detached, ties to the
  lower id (stable sort, as the export).
* Gradient (Eq. 9): all weights are constants (built from integer teacher data and a detached student),
  so dL_d/dy_si = -w_si σ(-y_si) / N on the candidates and +(sum_i w_si) σ(y_sj) / N on the negatives.
  The paper's Eq. 9 states the magnitude w_si σ(-y_si).

Collaborative embedding distillation (Eq. 12-13)::

    z^p_i = g(z_i)          g: Linear(D_t -> D_s), or Linear-ReLU-Linear with a hidden width   (Eq. 12)
    e_i   = b_i + α z^p_i   f: the linear combination the paper reports as sufficient          (Eq. 13)

z_i is the teacher's item representation (a fixed buffer), b_i the student's own trainable ID embedding
(the offset; its module is passed in, so it keeps the student's initialisation) and α the weight of the
projected teacher term (the release's single Linear with bias and ``ed_weight``; the paper gives no
value). Row 0 of the table is zeros (padding), never b_0 + α g(.). Our SASRec ties its item table between
input and output scores, so the enriched table enters both (the release's students have a separate
output layer and enrich only the inputs). Everything is float32 and device-agnostic; the teacher table is
a non-persistent buffer (not in the state dict: snapshots stay small, and the caller rebuilds it from the
teacher); the pipeline bakes the final table into a plain embedding (``embedding_kd.bake_item_table``),
so inference needs no LLM.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


def _check_non_negative(value: float, name: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def _check_ids(ids: torch.Tensor, num_items: int, name: str) -> None:
    """Integer ids in 1..num_items (any shape)."""
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer item ids, got dtype {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 1 or int(ids.max()) > num_items):
        raise ValueError(f"{name} must lie in 1..{num_items}, got {int(ids.min())}..{int(ids.max())}")


def _check_logits(student_logits: torch.Tensor) -> tuple[int, int]:
    if student_logits.dim() != 2 or student_logits.shape[0] == 0 or student_logits.shape[1] == 0:
        raise ValueError(f"student_logits must be [N, I] with N, I >= 1, got {tuple(student_logits.shape)}")
    return student_logits.shape[0], student_logits.shape[1]


def _check_rows(tensor: torch.Tensor, dims: int, n: int, name: str) -> None:
    if tensor.dim() != dims or tensor.shape[0] != n:
        expected = "[N]" if dims == 1 else "[N, *]"
        raise ValueError(f"{name} must be {expected} with N = {n} rows, got {tuple(tensor.shape)}")


def position_weights(k: int, beta: float, device: torch.device | None = None) -> torch.Tensor:
    """w^p (Eq. 6): exp(-r / β) over teacher positions r = 1..K, normalised to sum 1. Returns [K] float32."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check_positive(beta, "beta")
    ranks = torch.arange(1, k + 1, dtype=torch.float32, device=device)  # [K]
    return torch.softmax(-ranks / beta, dim=0)  # = exp(-r/β) / sum_r exp(-r/β), no underflow for small β


def confidence_weights(teacher_target_rank: torch.Tensor, k: int, beta: float) -> torch.Tensor:
    """w^c (Eq. 7, adapted; module docstring): exp(-ln(r*) / β) / K = r*^(-1/β) / K on every candidate.

    teacher_target_rank: [N] integer, the target's 1-based rank under the teacher. Returns [N, K] float32;
    row s sums to r*_s^(-1/β) (1 when the teacher's top-1 is the target).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check_positive(beta, "beta")
    if teacher_target_rank.dim() != 1:
        raise ValueError(f"teacher_target_rank must be [N], got {tuple(teacher_target_rank.shape)}")
    if teacher_target_rank.dtype.is_floating_point or teacher_target_rank.dtype == torch.bool:
        raise ValueError(f"teacher_target_rank must hold integer ranks, got {teacher_target_rank.dtype}")
    if teacher_target_rank.numel() and int(teacher_target_rank.min()) < 1:
        raise ValueError(f"teacher_target_rank must be >= 1 (1-based), got {int(teacher_target_rank.min())}")
    distance = torch.log(teacher_target_rank.to(torch.float32))  # [N] d_s = ln r*_s >= 0
    confidence = torch.exp(-distance / beta)  # [N] in (0, 1]
    return (confidence / k)[:, None].expand(-1, k).contiguous()  # [N, K]


def student_top_items(student_logits: torch.Tensor, k: int) -> torch.Tensor:
    """O^S: the student's top-K ids (1..I) best first, ties to the lower id, no gradient. [N, I] -> [N, K]."""
    _, num_items = _check_logits(student_logits)
    if not 1 <= k <= num_items:
        raise ValueError(f"k={k} must lie in 1..{num_items} (the catalogue size)")
    order = torch.sort(student_logits.detach().float(), dim=1, descending=True, stable=True).indices
    return order[:, :k] + 1  # [N, K]


def consistency_weights(student_logits: torch.Tensor, teacher_top_items: torch.Tensor) -> torch.Tensor:
    """w^o (Eq. 8): 1 where the teacher's candidate is also in the student's top-K (same K), else 0.

    student_logits [N, I] (detached here), teacher_top_items [N, K] ids 1..I. Returns [N, K] float32.
    """
    n, num_items = _check_logits(student_logits)
    _check_rows(teacher_top_items, 2, n, "teacher_top_items")
    k = teacher_top_items.shape[1]
    if not 1 <= k <= num_items:
        raise ValueError(f"k={k} exceeds the catalogue size {num_items}")
    _check_ids(teacher_top_items, num_items, "teacher_top_items")
    # Membership in O^S (= student_top_items, ties to the lower id) without sorting the catalogue: a
    # candidate is in when its score beats the K-th largest score v, or equals v and fewer than
    # K - #(scores > v) items with score v have a lower id. O(N * I) against the sort's O(N * I log I).
    scores = student_logits.detach().float()  # [N, I]
    v = torch.topk(scores, k, dim=1).values[:, k - 1 :]  # [N, 1] K-th largest score
    cand = teacher_top_items.to(scores.device, torch.int64) - 1  # [N, K] 0-based columns
    s_cand = scores.gather(1, cand)  # [N, K]
    inside = s_cand > v
    tied = s_cand == v
    if bool(tied.any()):
        free = k - (scores > v).sum(dim=1, keepdim=True)  # [N, 1] top-K places left for the ties
        ties_up_to = torch.cumsum((scores == v).to(torch.int32), dim=1)  # [N, I] ties at ids <= column
        inside |= tied & (ties_up_to.gather(1, cand) - 1 < free)  # ties at lower ids come first
    return inside.to(torch.float32)


def importance_weights(
    student_logits: torch.Tensor,
    teacher_top_items: torch.Tensor,
    teacher_target_rank: torch.Tensor,
    *,
    k: int,
    beta: float,
    gamma_p: float,
    gamma_c: float,
    gamma_o: float,
) -> torch.Tensor:
    """w = γ_p w^p + γ_c w^c + γ_o w^o (Eq. 10, not renormalised) on the teacher's first K candidates.

    student_logits [N, I]; teacher_top_items [N, K_t >= K] ids best first; teacher_target_rank [N].
    Returns [N, K] float32 without gradient.
    """
    n, num_items = _check_logits(student_logits)
    _check_rows(teacher_top_items, 2, n, "teacher_top_items")
    _check_rows(teacher_target_rank, 1, n, "teacher_target_rank")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > num_items:
        raise ValueError(f"k={k} exceeds the catalogue size {num_items}")
    if k > teacher_top_items.shape[1]:
        raise ValueError(f"k={k} exceeds the teacher's exported top-{teacher_top_items.shape[1]}")
    for value, name in ((gamma_p, "gamma_p"), (gamma_c, "gamma_c"), (gamma_o, "gamma_o")):
        _check_non_negative(value, name)
    candidates = teacher_top_items[:, :k]  # [N, K]
    _check_ids(candidates, num_items, "teacher_top_items")
    ordered = candidates.sort(dim=1).values
    if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
        raise ValueError("teacher_top_items repeats an item within a row's top-K")
    device = student_logits.device
    w_p = position_weights(k, beta, device)[None, :]  # [1, K]
    w_c = confidence_weights(teacher_target_rank.to(device), k, beta)  # [N, K]
    w_o = consistency_weights(student_logits, candidates.to(device))  # [N, K]
    return gamma_p * w_p + gamma_c * w_c + gamma_o * w_o  # [N, K]


def weighted_ranking_loss(
    student_logits: torch.Tensor,
    candidates: torch.Tensor,
    weights: torch.Tensor,
    negatives: torch.Tensor | None,
) -> torch.Tensor:
    """L_d (Eq. 5) for given weights: mean_s sum_i w_si [-log σ(y_si) - sum_j log(1 - σ(y_sj))].

    student_logits [N, I] (any float dtype, computed in float32); candidates [N, K] ids 1..I (O^T);
    weights [N, K] (detached here); negatives [N, M] ids 1..I, or None for Eq. 5 without a negative term.
    Returns a float32 scalar; gradients reach only ``student_logits``.
    """
    n, num_items = _check_logits(student_logits)
    _check_rows(candidates, 2, n, "candidates")
    if weights.shape != candidates.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must match candidates {tuple(candidates.shape)}")
    _check_ids(candidates, num_items, "candidates")
    logits = student_logits.float()  # [N, I]
    w = weights.detach().to(device=logits.device, dtype=torch.float32)  # [N, K]
    pos = logits.gather(1, candidates.to(logits.device, torch.int64) - 1)  # [N, K] y_si
    per_row = -(w * F.logsigmoid(pos)).sum(dim=1)  # [N]
    if negatives is not None:
        _check_rows(negatives, 2, n, "negatives")
        _check_ids(negatives, num_items, "negatives")
        neg = logits.gather(1, negatives.to(logits.device, torch.int64) - 1)  # [N, M] y_sj
        # log(1 - σ(y)) = log σ(-y), stable for any y; every candidate carries the instance's negatives
        per_row = per_row - w.sum(dim=1) * F.logsigmoid(-neg).sum(dim=1)  # [N]
    return per_row.mean()


def ranking_distillation_loss(
    student_logits: torch.Tensor,
    teacher_top_items: torch.Tensor,
    teacher_target_rank: torch.Tensor,
    negatives: torch.Tensor | None,
    *,
    k: int,
    beta: float,
    gamma_p: float,
    gamma_c: float,
    gamma_o: float,
) -> torch.Tensor:
    """Importance-aware ranking distillation L_d (Eq. 5-10) on the teacher's top-K.

    student_logits [N, I]; teacher_top_items [N, K_t >= K] ids best first (the export's ``top_items``);
    teacher_target_rank [N] (the export's ``target_rank``); negatives [N, M] ids or None (module
    docstring). Returns a float32 scalar, the mean over the N instances.
    """
    weights = importance_weights(
        student_logits,
        teacher_top_items,
        teacher_target_rank,
        k=k,
        beta=beta,
        gamma_p=gamma_p,
        gamma_c=gamma_c,
        gamma_o=gamma_o,
    )  # [N, K]
    return weighted_ranking_loss(student_logits, teacher_top_items[:, :k], weights, negatives)


def dllm2rec_loss(rec_loss: torch.Tensor, distill_loss: torch.Tensor, lambda_d: float) -> torch.Tensor:
    """L = L_r + λ_d L_d (Eq. 11); both terms are scalars (means over the batch)."""
    _check_non_negative(lambda_d, "lambda_d")
    if rec_loss.dim() != 0 or distill_loss.dim() != 0:
        shapes = f"{tuple(rec_loss.shape)}, {tuple(distill_loss.shape)}"
        raise ValueError(f"rec_loss and distill_loss must be scalars, got shapes {shapes}")
    return rec_loss + lambda_d * distill_loss


class CollaborativeItemEmbedding(nn.Module):
    """Student item table e_i = b_i + α g(z_i) (Eq. 12-13), a drop-in for SASRec's ``item_embeddings``.

    ``teacher_items`` [I, D_t]: the teacher's representation of items 1..I (copied to a float32 buffer,
    never trained). ``offset``: the student's ID embedding [I + 1, D_s] (b_i; row 0 unused). ``alpha``:
    the weight α of the projected teacher term. ``projector_hidden``: None for g = Linear(D_t, D_s),
    an int H for g = Linear(D_t, H) -> ReLU -> Linear(H, D_s). Like ``nn.Embedding`` it is called on ids
    and exposes ``weight`` ([I + 1, D_s], row 0 zeros), recomputed from the current parameters.
    """

    def __init__(
        self, teacher_items: torch.Tensor, offset: nn.Embedding, *, alpha: float, projector_hidden: int | None
    ) -> None:
        super().__init__()
        if teacher_items.dim() != 2 or teacher_items.shape[0] == 0 or teacher_items.shape[1] == 0:
            raise ValueError(f"teacher_items must be [I, D_t], I, D_t >= 1, got {tuple(teacher_items.shape)}")
        num_items, teacher_dim = teacher_items.shape
        if offset.num_embeddings != num_items + 1:
            raise ValueError(
                f"offset has {offset.num_embeddings} rows, expected I + 1 = {num_items + 1} (row 0 = padding)"
            )
        if not torch.isfinite(teacher_items).all():
            raise ValueError("teacher_items contain NaN or infinite values")
        _check_non_negative(alpha, "alpha")
        if projector_hidden is not None and projector_hidden < 1:
            raise ValueError(f"projector_hidden must be None or >= 1, got {projector_hidden}")
        dim = offset.embedding_dim
        self.num_embeddings = num_items + 1
        self.embedding_dim = dim
        self.alpha = alpha
        self.offset = offset
        self.register_buffer(
            "teacher_items", teacher_items.detach().to(torch.float32).clone(), persistent=False
        )  # [I, D_t]
        self.projector: nn.Module
        if projector_hidden is None:
            self.projector = nn.Linear(teacher_dim, dim)
        else:
            self.projector = nn.Sequential(
                nn.Linear(teacher_dim, projector_hidden), nn.ReLU(), nn.Linear(projector_hidden, dim)
            )

    def table(self) -> torch.Tensor:
        """[I + 1, D_s]: row 0 zeros, row i = b_i + α g(z_i) (Eq. 12-13)."""
        projected = self.projector(self.teacher_items)  # [I, D_s] z^p_i (Eq. 12)
        items = self.offset.weight[1:] + self.alpha * projected  # [I, D_s] e_i (Eq. 13)
        return torch.cat([items.new_zeros(1, self.embedding_dim), items], dim=0)

    @property
    def weight(self) -> torch.Tensor:
        """The current table (:meth:`table`), as ``nn.Embedding.weight`` is used for tied output scores."""
        return self.table()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Embeddings of ids in 0..I (0 = padding -> zeros): [*] -> [*, D_s]."""
        return F.embedding(ids, self.table())
