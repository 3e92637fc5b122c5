"""ALKDRec (Du et al., AAAI 2025): max-min active selection of the instances the LLM is asked about, and the
rank-weighted pairwise distillation loss (Eq. 1). Paper text: /work/shared/papers/alkdrec.txt.

Selection. Each candidate training instance s has a difficulty df_s; effective, similar and incorrect
predictions by the LLM on it are worth (Implementation Details)

    g_ef = 1 / rank(df_s)^mu   (mu = 10),   g_si = g_in = g_ef / 2,

rank(.) the ordinal rank of the instance among all candidates by difficulty, 1 = the hardest (the paper
asks for a gain that grows with difficulty; the authors' notebook sorts the pool the same way). Sorting
the instances by g_ef, largest first (the paper's s = 1..|S|, "without loss of generality"), with k_ef,
k_si, k_in the assumed numbers of each outcome among the |S| candidates (1:5:4 in the paper), m = k_si +
k_in, and for s <= m: w_s = 1 / (g_si_s + g_in_s), a_s = g_si_s; for s > m: w_s = 1 / (g_ef_s + g_in_s),
a_s = g_ef_s:

    H_k = sum_{s<=k} w_s,   G_k = sum_{s<=k} a_s w_s                       (Definition 1, Theorem 1)
    Gamma(k) = (G_k + k_ef + k_si - |S|) / H_k = (G_k - k_in) / H_k          (Theorem 1)
    k* = argmax_k Gamma(k)                                                   (Theorems 2 and 3)
    p*_s = w_s / H_{k*} for s <= k*, 0 beyond                                (Definition 1)

Reconstruction of the OCR'd formulas: the second branches of H_k and G_k sum over s = m+1..k (so that
Definition 1's "sum p* = 1" holds); the "g_s^ef" in k*'s numerator is G_s (the proof of Theorem 2 uses
Gamma(k*) >= Gamma(k*+1), and the authors' MAXMIN takes argmax (G + N (k1 + k2 - 1)) / H); the "N" of
Theorem 1 is |S|. Where k* < m the first case of Definition 1 stops at k*.

What holds (checked by brute force over every outcome assignment in tests/unit/strategies):
Theorem 1, min_c z(p*, c) = Gamma(k*), holds for these gains. Theorem 3 (p* is max-min optimal) does NOT
in general: once instances beyond m are in the support, their weight 1/(g_ef + g_in) is too small, and
e.g. |S| = 4, g_ef = (1, 1/2, 1/3, 1/4), k = (1, 2, 1) gives Gamma(k*) = 7/52 while p ∝ 1/g_ef guarantees
3/20, so Theorem 2's upper bound (through c-hat) cannot hold there either. Theorem 3 does hold when
k_ef = 0 and Gamma(k*) >= 0 (the policy is then Baykal et al.'s RAD policy). With the paper's 1:5:4 the
support reaches beyond m once |S| is large (|S| = 100: k* = 94 > m = 90), i.e. in practice. Not in the
paper: :func:`equalised_policy_sorted`, p ∝ 1/g_ef on the top k (k maximising its exact worst case),
matched a linear-program max-min optimum on every brute-forced instance with a non-negative value;
``draw_budget(policy="equalised")`` uses it. The default stays the paper's.

Choices where the paper is silent:
- difficulty: the paper's df_s is minus the mean sigmoid consistency of the session representation with
  its own items (:func:`consistency_difficulty`); this project's proxy is the teacher CRM's 1-based rank of
  the target (:func:`difficulty_from_target_rank`, larger = harder). Only the order matters.
- ties in difficulty (target ranks tie a lot): broken by a random permutation from the caller's Generator
  (``draw_budget(shuffle_ties=True)``), else by instance index (stable).
- counts: k_t = ratio_t / sum(ratios) * |S| rounded by largest remainder (ties: ef, si, in), so the three
  are integers summing to |S| as Definition 1 needs (the authors' code uses real-valued fractions).
- ties in Gamma: the smallest k. The authors' code zeroes p from its 0-based argmax on (support k* - 1);
  we keep Definition 1's support 1..k*.
- drawing: one instance at a time, without replacement. By default the game is re-solved on the instances
  not drawn yet before every draw (gains re-ranked, counts re-apportioned): what the authors' notebook
  does. ``resolve_each_draw=False`` solves once and draws successively from p* renormalised over the rest.

Loss (Eq. 1, maximised there; minimised here):

    L_n = sum_k alpha_k * mean_m( -log sigmoid(s_n(v_k) - s_n(v'_m)) ),   alpha = 3 / 2 / 1 for LLM ranks
          1-5 / 6-15 / 16-25,

summed (not averaged) over the LLM's top-K positives as Eq. 1 writes it, averaged over the negatives
given for that positive (one per positive is Eq. 1 exactly), mean over rows. Item id 0 is padding (masked);
a repeated id in a top-K list keeps only its best position. Negatives are an argument, so the function is
deterministic; :func:`sample_negatives` draws uniform ones outside the row's top-K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

# The paper's values, named for documentation and for callers (params.yaml) to cite. No function below
# defaults to them: mu, ratios and budget are tracked hyperparameters and must be passed explicitly.
PAPER_MU = 10.0
PAPER_RATIOS = (1.0, 5.0, 4.0)  # effective : similar : incorrect, among all candidate instances
PAPER_BUDGET = 500
PAPER_RANK_WEIGHTS = ((5, 3.0), (15, 2.0), (25, 1.0))  # (last LLM rank of the band, alpha)


class Gains(NamedTuple):
    """Per-instance gains of an effective / similar / incorrect LLM prediction, each [S] float64 > 0.

    The incorrect gain enters Eq. 2 with a minus sign (``-g_in``)."""

    effective: np.ndarray
    similar: np.ndarray
    incorrect: np.ndarray


class OutcomeCounts(NamedTuple):
    """k_ef, k_si, k_in: assumed numbers of each outcome among the candidates (Eq. 3)."""

    effective: int
    similar: int
    incorrect: int


# --- difficulty and gains (Implementation Details) ---------------------------------------------------------


def difficulty_from_target_rank(target_rank: np.ndarray) -> np.ndarray:
    """Difficulty [S] float64 of each instance from the teacher CRM's 1-based rank of its target [S].

    A larger rank (the CRM misses the target) is a harder instance: the project's stand-in for the paper's
    negative consistency df_s (only the order is used, through :func:`difficulty_rank`)."""
    rank = np.asarray(target_rank)
    if rank.ndim != 1:
        raise ValueError(f"target_rank must be 1-D, got shape {rank.shape}")
    if rank.size and not (np.isfinite(rank).all() and rank.min() >= 1):
        raise ValueError("target ranks must be finite and >= 1 (1-based)")
    return rank.astype(np.float64)


def consistency_difficulty(
    session_repr: torch.Tensor, item_emb: torch.Tensor, item_mask: torch.Tensor
) -> torch.Tensor:
    """The paper's df_s = -(1/|s|) sum_{v in s} sigmoid(Encode(s)^T e_v), [N] float32.

    session_repr [N, d] (the teacher CRM's Encode(s)), item_emb [N, L, d] (the teacher's embeddings of the
    session's items), item_mask [N, L] bool (True = a real item). A row without items gets 0."""
    if session_repr.dim() != 2 or item_emb.dim() != 3 or item_mask.shape != item_emb.shape[:2]:
        raise ValueError("expected session_repr [N, d], item_emb [N, L, d] and item_mask [N, L]")
    consistency = torch.sigmoid(torch.einsum("nd,nld->nl", session_repr.float(), item_emb.float()))  # [N, L]
    consistency = torch.where(item_mask, consistency, torch.zeros_like(consistency))
    return -consistency.sum(-1) / item_mask.sum(-1).clamp_min(1)


def difficulty_rank(difficulty: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """rank(df_s): ordinal 1-based rank [S] int64 by difficulty, 1 = the hardest (largest df).

    Ties are broken by a random permutation from ``rng`` if given, else by instance index (lower first)."""
    df = np.asarray(difficulty, dtype=np.float64)
    if df.ndim != 1 or not np.isfinite(df).all():
        raise ValueError("difficulty must be a finite 1-D array")
    tie_key = rng.permutation(df.size) if rng is not None else np.arange(df.size)
    order = np.lexsort((tie_key, -df))  # hardest first, then the tie key
    rank = np.empty(df.size, dtype=np.int64)
    rank[order] = np.arange(1, df.size + 1)
    return rank


def gains_from_rank(rank: np.ndarray, mu: float) -> Gains:
    """g_ef = 1 / rank^mu, g_si = g_in = g_ef / 2 (Implementation Details) from 1-based ranks [S].

    ``mu`` is required (no code default); the paper uses PAPER_MU = 10."""
    if not mu > 0:
        raise ValueError(f"mu must be > 0, got {mu}")
    r = np.asarray(rank, dtype=np.float64)
    if r.size and not r.min() >= 1:
        raise ValueError("difficulty ranks must be >= 1")
    g_ef = r**-mu
    if r.size and not g_ef.min() > 0:
        raise ValueError(f"1/rank^mu underflows float64 for mu={mu} and {r.size} instances; lower mu")
    return Gains(effective=g_ef, similar=g_ef / 2, incorrect=g_ef / 2)


def instance_gains(difficulty: np.ndarray, mu: float, rng: np.random.Generator | None = None) -> Gains:
    """The gains [S] of each instance, in instance order, from its difficulty [S] (ties: difficulty_rank).

    ``mu`` is required (the paper uses PAPER_MU = 10), see :func:`gains_from_rank`."""
    return gains_from_rank(difficulty_rank(difficulty, rng), mu)


def outcome_counts(num_instances: int, ratios: tuple[float, float, float]) -> OutcomeCounts:
    """k_ef : k_si : k_in = ratios as integers summing to |S| (largest remainder; ties: ef, si, in).

    ``ratios`` is required (no code default); the paper uses PAPER_RATIOS = (1, 5, 4)."""
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or not np.isfinite(r).all() or (r < 0).any() or not r.sum() > 0:
        raise ValueError(f"ratios must be three finite numbers >= 0 summing to > 0, got {ratios}")
    if num_instances < 0:
        raise ValueError(f"num_instances must be >= 0, got {num_instances}")
    exact = r / r.sum() * num_instances
    k = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - k), kind="stable")[: num_instances - int(k.sum())]:
        k[i] += 1
    return OutcomeCounts(int(k[0]), int(k[1]), int(k[2]))


# --- the max-min policy (Definition 1, Theorems 1-3) --------------------------------------------------------


def gain_order(effective_gain: np.ndarray) -> np.ndarray:
    """Permutation [S] int64: position j holds the instance with the (j+1)-th largest g_ef (ties: index)."""
    return np.argsort(-np.asarray(effective_gain, dtype=np.float64), kind="stable")


def _check_sorted(gains: Gains, counts: OutcomeCounts) -> int:
    g_ef, g_si, g_in = (np.asarray(g, dtype=np.float64) for g in gains)
    n = g_ef.size
    if g_ef.ndim != 1 or g_si.shape != (n,) or g_in.shape != (n,):
        raise ValueError("gains must be three 1-D arrays of the same length")
    if n == 0:
        raise ValueError("need at least one instance")
    if not all(np.isfinite(g).all() and g.min() > 0 for g in (g_ef, g_si, g_in)):
        raise ValueError("gains must be finite and > 0")
    if (np.diff(g_ef) > 0).any():
        raise ValueError("gains must be sorted by effective gain, largest first (see gain_order)")
    if min(counts) < 0 or sum(counts) != n:
        raise ValueError(f"outcome counts {tuple(counts)} must be >= 0 and sum to |S| = {n}")
    return n


def _weights(gains: Gains, counts: OutcomeCounts) -> tuple[np.ndarray, np.ndarray]:
    """w_s [S] and a_s [S] of Definition 1 / Theorem 1, for gains sorted by :func:`gain_order`."""
    n = _check_sorted(gains, counts)
    g_ef, g_si, g_in = (np.asarray(g, dtype=np.float64) for g in gains)
    first = np.arange(n) < counts.similar + counts.incorrect  # s <= m = k_si + k_in
    w = np.where(first, 1.0 / (g_si + g_in), 1.0 / (g_ef + g_in))
    a = np.where(first, g_si, g_ef)
    if not np.isfinite(np.cumsum(w)).all():
        raise ValueError("H_k overflows float64: the gains span too many orders of magnitude (lower mu)")
    return w, a


def gamma_curve(gains: Gains, counts: OutcomeCounts) -> np.ndarray:
    """Gamma(k) = (G_k + k_ef + k_si - |S|) / H_k for k = 1..|S| (Theorem 1), [S] float64, sorted gains."""
    w, a = _weights(gains, counts)
    return _gamma_from_weights(w, a, counts)


def _gamma_from_weights(w: np.ndarray, a: np.ndarray, counts: OutcomeCounts) -> np.ndarray:
    return (np.cumsum(a * w) - counts.incorrect) / np.cumsum(w)  # [S]: (G_k - k_in) / H_k


def gamma(gains: Gains, counts: OutcomeCounts, k: int) -> float:
    """Gamma(k) of Theorem 1 for one 1-based k, gains sorted by :func:`gain_order`."""
    curve = gamma_curve(gains, counts)
    if not 1 <= k <= curve.size:
        raise ValueError(f"k must be in 1..{curve.size}, got {k}")
    return float(curve[k - 1])


def optimal_k(gains: Gains, counts: OutcomeCounts) -> int:
    """k* = argmax_k Gamma(k) (Theorems 2 and 3), 1-based, the smallest k on ties."""
    return int(np.argmax(gamma_curve(gains, counts))) + 1


def maxmin_policy_sorted(gains: Gains, counts: OutcomeCounts) -> tuple[np.ndarray, int]:
    """p* [S] of Definition 1 in gain order (position j = paper's s = j + 1) and k* (1-based).

    p*_s = w_s / H_{k*} for s <= k*, 0 beyond: >= 0, sums to 1, min over outcome assignments of the expected
    gain is Gamma(k*) (Theorem 1). Not max-min optimal in general (module docstring)."""
    w, a = _weights(gains, counts)
    k_star = int(np.argmax(_gamma_from_weights(w, a, counts))) + 1
    p = np.where(np.arange(w.size) < k_star, w, 0.0)
    return p / p.sum(), k_star


def equalised_policy_sorted(
    effective_gain: np.ndarray,
    counts: OutcomeCounts,
    similar_share: float = 0.5,
    incorrect_share: float = 0.5,
) -> tuple[np.ndarray, int, float]:
    """NOT in the paper: p ∝ 1/g_ef on the top k, for gains g_si = a g_ef, g_in = b g_ef (a = b = 1/2 here).

    Every chosen instance then has the same expected effective gain y = 1/H'_k (H'_k = sum_{s<=k} 1/g_ef_s);
    the adversary makes min(k, k_in) of them incorrect, clip(k - k_in, 0, k_si) similar, the rest effective:

        V(k) = [(k - m)^+ + a clip(k - k_in, 0, k_si) - b min(k, k_in)] / H'_k,   k = argmax V (smallest).

    Returns (p [S] in gain order, k, V(k)). V(k) >= Gamma(k*), the paper's guarantee, on every instance
    tried (random pools up to 30, every count split); equal to a linear-program max-min optimum whenever
    V(k) >= 0 on every brute-forced pool (|S| <= 7)."""
    if not 0 < similar_share <= 1 or not incorrect_share > 0:
        raise ValueError("need 0 < similar_share <= 1 and incorrect_share > 0")
    g = np.asarray(effective_gain, dtype=np.float64)
    n = _check_sorted(Gains(g, g * similar_share, g * incorrect_share), counts)
    k = np.arange(1, n + 1)
    m = counts.similar + counts.incorrect
    num = (
        np.maximum(k - m, 0)
        + similar_share * np.clip(k - counts.incorrect, 0, counts.similar)
        - incorrect_share * np.minimum(k, counts.incorrect)
    )
    values = num / np.cumsum(1.0 / g)
    best = int(np.argmax(values))
    p = np.where(k <= best + 1, 1.0 / g, 0.0)
    return p / p.sum(), best + 1, float(values[best])


@dataclass(frozen=True)
class MaxMinPolicy:
    """p* of Definition 1 over a pool of instances, with the gain order it is defined in."""

    order: np.ndarray  # [S] int64, order[j] = instance with the (j+1)-th largest g_ef (the paper's s = j+1)
    p_sorted: np.ndarray  # [S] float64, p*_s in gain order
    k_star: int  # 1-based: p_sorted[k_star:] == 0
    value: float  # Gamma(k*), the guaranteed expected gain

    @property
    def p(self) -> np.ndarray:
        """p* [S] in instance order: p[i] is the probability of drawing instance i."""
        out = np.empty_like(self.p_sorted)
        out[self.order] = self.p_sorted
        return out


def maxmin_policy(gains: Gains, counts: OutcomeCounts) -> MaxMinPolicy:
    """p* (Definition 1, k* of Theorem 2) for gains [S] in instance order, sorted by :func:`gain_order`."""
    order = gain_order(gains.effective)
    sorted_gains = Gains(*(np.asarray(g, dtype=np.float64)[order] for g in gains))
    p, k_star = maxmin_policy_sorted(sorted_gains, counts)
    return MaxMinPolicy(order=order, p_sorted=p, k_star=k_star, value=gamma(sorted_gains, counts, k_star))


# --- budgeted drawing ---------------------------------------------------------------------------------------


def _draw_one(weights: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn with probability ∝ weights [S] (>= 0, some > 0): one uniform from ``rng``."""
    cum = np.cumsum(weights)
    j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return min(j, int(np.flatnonzero(weights > 0)[-1]))  # u * total rounding up to the total


def draw_from_policy(p: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """``budget`` distinct indices [budget] int64 drawn one by one from p [S], renormalised over the rest."""
    w = np.array(p, dtype=np.float64)
    if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("p must be a finite, non-negative 1-D array")
    if budget < 0 or budget > int((w > 0).sum()):
        raise ValueError(f"budget {budget} must be in 0..{int((w > 0).sum())} (instances with p > 0)")
    drawn = np.empty(budget, dtype=np.int64)
    for t in range(budget):
        drawn[t] = _draw_one(w, rng)
        w[drawn[t]] = 0.0
    return drawn


def _pool_policy(num: int, mu: float, ratios: tuple[float, float, float], policy: str) -> np.ndarray:
    """p over a pool of ``num`` instances sorted hardest first (gains 1/j^mu, j = 1..num), [num]."""
    gains = gains_from_rank(np.arange(1, num + 1), mu)
    counts = outcome_counts(num, ratios)
    if policy == "equalised":
        return equalised_policy_sorted(gains.effective, counts)[0]
    return maxmin_policy_sorted(gains, counts)[0]


def draw_budget(
    difficulty: np.ndarray,
    rng: np.random.Generator,
    *,
    budget: int,
    mu: float,
    ratios: tuple[float, float, float],
    resolve_each_draw: bool = True,
    shuffle_ties: bool = True,
    policy: Literal["paper", "equalised"] = "paper",
) -> np.ndarray:
    """The instances to ask the LLM about: ``budget`` distinct indices into ``difficulty`` [S], in draw order.

    Each draw samples one instance from the max-min policy (Definition 1 with k* of Theorem 2; ``policy=
    "equalised"``: :func:`equalised_policy_sorted`, not in the paper) over the instances not drawn yet. With
    ``resolve_each_draw`` (default, the authors' code) the gains and counts are recomputed on that smaller
    pool before every draw; otherwise p* is computed once on all of S. Deterministic for a seeded ``rng``
    (also used to shuffle difficulty ties first, if ``shuffle_ties``).

    ``budget``, ``mu`` and ``ratios`` are required keywords (no code defaults); the paper uses
    PAPER_BUDGET = 500, PAPER_MU = 10 and PAPER_RATIOS = (1, 5, 4)."""
    df = np.asarray(difficulty, dtype=np.float64)
    if df.ndim != 1:
        raise ValueError(f"difficulty must be 1-D, got shape {df.shape}")
    if not 0 <= budget <= df.size:
        raise ValueError(f"budget {budget} must be in 0..{df.size} (the number of instances)")
    if policy not in ("paper", "equalised"):
        raise ValueError(f"policy must be 'paper' or 'equalised', got {policy!r}")
    if not mu > 0:
        raise ValueError(f"mu must be > 0, got {mu}")
    outcome_counts(df.size, ratios)  # validates the ratios
    order = np.argsort(difficulty_rank(df, rng if shuffle_ties else None))  # [S] hardest first = gain order
    if not resolve_each_draw:
        p = _pool_policy(df.size, mu, ratios, policy)
        return order[draw_from_policy(p, budget, rng)]
    remaining = order.copy()
    drawn = np.empty(budget, dtype=np.int64)
    for t in range(budget):
        j = _draw_one(_pool_policy(remaining.size, mu, ratios, policy), rng)
        drawn[t] = remaining[j]
        remaining = np.delete(remaining, j)
    return drawn


# --- the pairwise distillation loss (Eq. 1) -----------------------------------------------------------------


def rank_weights(k: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """alpha [k] float32 for LLM ranks 1..k: 3 for ranks 1-5, 2 for 6-15, 1 for 16-25 (Eq. 1).

    Note: the bands and weights are read from PAPER_RANK_WEIGHTS, not passed in. This is deliberate: they
    are Eq. 1's fixed scheme, not a tuned hyperparameter, so they are not tracked in params.yaml."""
    last = PAPER_RANK_WEIGHTS[-1][0]
    if not 1 <= k <= last:
        raise ValueError(f"the LLM's top-K must have 1 <= K <= {last} items, got {k}")
    ranks = torch.arange(1, k + 1, device=device)
    alpha = torch.zeros(k, dtype=torch.float32, device=device)
    for band_end, weight in reversed(PAPER_RANK_WEIGHTS):
        alpha = torch.where(ranks <= band_end, torch.full_like(alpha, weight), alpha)
    return alpha


def _check_ids(ids: torch.Tensor, num_items: int, name: str) -> None:
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"{name} must be integer item ids")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > num_items):
        raise ValueError(f"{name} must be item ids in 1..{num_items} (0 = padding)")


def pairwise_distillation_per_row(
    student_logits: torch.Tensor, teacher_topk: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Per-row -(Eq. 1): sum_k alpha_k mean_m softplus(s(v'_m) - s(v_k)), [N] float32.

    student_logits [N, I] (item id i is column i - 1, any float dtype, any device); teacher_topk [N, K]
    the LLM's ranked item ids (1-based, 0 = padding, K <= 25); negatives [N, M] ids shared by every
    positive of the row, or [N, K, M] per positive (0 = padding). Gradients reach only the student."""
    if student_logits.dim() != 2:
        raise ValueError(f"student_logits must be [N, I], got shape {tuple(student_logits.shape)}")
    n, num_items = student_logits.shape
    if teacher_topk.dim() != 2 or teacher_topk.shape[0] != n:
        raise ValueError(f"teacher_topk must be [N={n}, K], got shape {tuple(teacher_topk.shape)}")
    k = teacher_topk.shape[1]
    if negatives.dim() == 2 and negatives.shape[0] == n:
        negatives = negatives.unsqueeze(1)  # [N, 1, M]: the same negatives for every positive
    if negatives.dim() != 3 or negatives.shape[0] != n or negatives.shape[1] not in (1, k):
        raise ValueError(f"negatives must be [N={n}, M] or [N, K={k}, M], got {tuple(negatives.shape)}")
    _check_ids(teacher_topk, num_items, "teacher_topk")
    _check_ids(negatives, num_items, "negatives")
    alpha = rank_weights(k, student_logits.device)  # [K]
    scores = student_logits.float()
    teacher_topk = teacher_topk.to(scores.device, torch.int64)
    negatives = negatives.to(scores.device, torch.int64)
    pos = scores.gather(1, (teacher_topk - 1).clamp_min(0))  # [N, K]
    m = negatives.shape[2]
    neg = scores.gather(1, (negatives - 1).clamp_min(0).reshape(n, -1)).reshape(n, -1, m)  # [N, K or 1, M]
    earlier = torch.ones(k, k, dtype=torch.bool, device=scores.device).tril(-1)  # [K, K], j < k
    repeated = ((teacher_topk.unsqueeze(2) == teacher_topk.unsqueeze(1)) & earlier).any(-1)  # [N, K]
    valid = ((teacher_topk > 0) & ~repeated).unsqueeze(-1) & (negatives > 0)  # [N, K, M]
    terms = F.softplus(neg - pos.unsqueeze(-1))  # [N, K, M], = -log sigmoid(s_pos - s_neg)
    terms = torch.where(valid, terms, torch.zeros_like(terms))
    per_positive = terms.sum(-1) / valid.sum(-1).clamp_min(1)  # [N, K]
    return (per_positive * alpha).sum(-1)


def pairwise_distillation_loss(
    student_logits: torch.Tensor, teacher_topk: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """mean_n of :func:`pairwise_distillation_per_row`: the loss to minimise (Eq. 1 maximises -loss)."""
    return pairwise_distillation_per_row(student_logits, teacher_topk, negatives).mean()


def sample_negatives(
    rng: np.random.Generator, num_items: int, teacher_topk: np.ndarray, num_negatives: int
) -> np.ndarray:
    """[N, M] int64 item ids drawn uniformly from 1..I minus the row's top-K (with replacement)."""
    topk = np.asarray(teacher_topk, dtype=np.int64)
    if topk.ndim != 2 or num_negatives < 1:
        raise ValueError("teacher_topk must be [N, K] and num_negatives >= 1")
    if topk.size and ((topk < 0).any() or (topk > num_items).any()):
        raise ValueError(f"teacher_topk must be item ids in 1..{num_items} (0 = padding)")
    n, k = topk.shape
    if num_items - k < 1:
        raise ValueError(f"no item left for negatives: {num_items} items, top-{k} excluded")
    out = rng.integers(1, num_items + 1, size=(n, num_negatives))
    clash = (out[:, :, None] == topk[:, None, :]).any(-1)  # [N, M]
    while clash.any():
        out[clash] = rng.integers(1, num_items + 1, size=int(clash.sum()))
        clash = (out[:, :, None] == topk[:, None, :]).any(-1)
    return out
