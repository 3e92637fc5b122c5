"""Looking into logit exports: one user's ranking (``logits show``) and two exports compared
(``logits diff``). Probabilities come from the reconstructed full-catalogue logits at temperature T."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmd4rec_core.distill.kl import tempered_kl
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import LogitsFile, full_logits


@dataclass(frozen=True)
class RankedItem:
    item: int
    logit: float
    probability: float  # softmax(logits / T) over the whole catalogue


@dataclass(frozen=True)
class InstanceView:
    user_id: int
    position: int
    target: int
    target_rank: int
    target_probability: float
    top: list[RankedItem]


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise InputError(f"--temperature: must be > 0, got {temperature}")


def show_user(export: LogitsFile, user_id: int, temperature: float, top: int) -> list[InstanceView]:
    """Every exported instance of ``user_id`` with its ``top`` items and their probabilities at T."""
    check_temperature(temperature)
    index = np.flatnonzero(export.rows.user_id == user_id)
    if index.size == 0:
        raise InputError(
            f"{export.path}: user {user_id} has no rows "
            f"(users {export.rows.user_id.min()}..{export.rows.user_id.max()})"
        )
    rows = export.rows.take(index)
    logits = full_logits(rows)  # [n, I]
    probs = torch.softmax(logits / temperature, dim=1)
    top = min(top, logits.shape[1])
    views = []
    for r in range(len(rows)):
        best = torch.sort(logits[r], descending=True, stable=True).indices[:top]
        views.append(
            InstanceView(
                user_id=int(rows.user_id[r]),
                position=int(rows.position[r]),
                target=int(rows.target[r]),
                target_rank=int(rows.target_rank[r]),
                target_probability=float(probs[r, rows.target[r] - 1]),
                top=[RankedItem(int(i) + 1, float(logits[r, i]), float(probs[r, i])) for i in best],
            )
        )
    return views


@dataclass(frozen=True)
class ExportDiff:
    rows: int  # instances present in both
    only_a: int
    only_b: int
    overlap_at_k: float  # mean |topK_a ∩ topK_b| / K
    mean_kl: float  # mean KL(p_a || p_b) at the temperature
    median_rank_a: float
    median_rank_b: float
    improved: float  # share of instances whose target rank is better in b
    worsened: float
    hr10_a: float
    hr10_b: float


def diff_exports(a: LogitsFile, b: LogitsFile, k: int, temperature: float, batch: int = 1024) -> ExportDiff:
    """Compare two exports instance by instance (matched on user_id, position)."""
    check_temperature(temperature)
    if a.meta["num_items"] != b.meta["num_items"]:
        raise InputError(
            f"{b.path}: num_items {b.meta['num_items']} differs from {a.path}'s {a.meta['num_items']}"
        )
    if not 0 < k <= min(a.meta["top_k"], b.meta["top_k"]):
        raise InputError(f"-k: must lie in 1..{min(a.meta['top_k'], b.meta['top_k'])} (the exports' top_k)")
    key_a = a.rows.user_id.astype(np.int64) << 32 | a.rows.position.astype(np.int64)
    key_b = b.rows.user_id.astype(np.int64) << 32 | b.rows.position.astype(np.int64)
    common, ia, ib = np.intersect1d(key_a, key_b, assume_unique=True, return_indices=True)
    if common.size == 0:
        raise InputError(f"{a.path} and {b.path} share no instance (user_id, position)")
    ra, rb = a.rows.take(ia), b.rows.take(ib)
    overlap = np.array(
        [len(np.intersect1d(x[:k], y[:k])) for x, y in zip(ra.top_items, rb.top_items, strict=True)]
    )
    kls = []
    for start in range(0, len(common), batch):
        sl = np.arange(start, min(start + batch, len(common)))
        kls.append(tempered_kl(full_logits(ra.take(sl)), full_logits(rb.take(sl)), temperature))
    rank_a, rank_b = ra.target_rank.astype(np.float64), rb.target_rank.astype(np.float64)
    return ExportDiff(
        rows=int(common.size),
        only_a=int(len(key_a) - common.size),
        only_b=int(len(key_b) - common.size),
        overlap_at_k=float(overlap.mean() / k),
        mean_kl=float(torch.cat(kls).double().mean()),
        median_rank_a=float(np.median(rank_a)),
        median_rank_b=float(np.median(rank_b)),
        improved=float((rank_b < rank_a).mean()),
        worsened=float((rank_b > rank_a).mean()),
        hr10_a=float((rank_a <= 10).mean()),
        hr10_b=float((rank_b <= 10).mean()),
    )
