"""Full-ranking evaluation of a sequential recommender over all users (DESIGN.md section 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.metrics import mask_history_, ranking_metrics, target_ranks


class ItemScorer(Protocol):
    """Any model that maps left-padded histories [B, L] to scores over items [B, num_items + 1]."""

    def eval(self) -> object: ...
    def score_items(self, input_ids: torch.Tensor) -> torch.Tensor: ...


@torch.no_grad()
def full_ranking_ranks(
    model: ItemScorer,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    max_len: int,
    batch_size: int,
    device: torch.device,
    desc: str = "evaluate",
) -> dict[str, np.ndarray]:
    """Pessimistic target ranks of every user, with and without the input history masked.

    histories: U arrays of item ids (the model reads the last ``max_len``; the mask covers the whole
    history); targets: [U]. Returns {"masked": [U], "unmasked": [U]} int64. Rows are independent, so
    the result does not depend on ``batch_size``.
    """
    model.eval()
    masked, unmasked = np.empty(len(targets), np.int64), np.empty(len(targets), np.int64)
    for start in tqdm(range(0, len(targets), batch_size), desc=desc, unit="batch", leave=False):
        stop = min(start + batch_size, len(targets))
        batch_hist = histories[start:stop]
        scores = model.score_items(left_pad(batch_hist, max_len).to(device)).float()  # [B, I + 1]
        tgt = torch.as_tensor(targets[start:stop], device=device)
        unmasked[start:stop] = target_ranks(scores, tgt).cpu().numpy()
        full_history = left_pad(batch_hist, max(1, max(len(h) for h in batch_hist))).to(device)
        masked[start:stop] = target_ranks(mask_history_(scores, full_history), tgt).cpu().numpy()
    return {"masked": masked, "unmasked": unmasked}


def evaluate_splits(
    model: ItemScorer,
    data: SequenceData,
    max_len: int,
    ks: list[int],
    batch_size: int,
    mask_history: bool,
    device: torch.device,
    desc: str = "evaluate",
) -> dict[str, dict[str, float]]:
    """Validation and test metrics under the protocol, plus test under the opposite masking setting.

    Returns {"valid": {...}, "test": {...}, "test_history_masked" | "test_history_unmasked": {...}}.
    """
    chosen, other = ("masked", "unmasked") if mask_history else ("unmasked", "masked")
    out: dict[str, dict[str, float]] = {}
    for split in ("valid", "test"):
        ranks = full_ranking_ranks(
            model, data.inputs(split), data.targets(split), max_len, batch_size, device, f"{desc} {split}"
        )
        out[split] = ranking_metrics(ranks[chosen], ks)
        if split == "test":
            out[f"test_history_{other}"] = ranking_metrics(ranks[other], ks)
    return out


def protocol_record(
    data: SequenceData, stats: dict[str, Any], ks: list[int], mask_history: bool
) -> dict[str, Any]:
    """What a metrics file must say about how its numbers were produced (DESIGN.md section 2)."""
    return {
        "dataset": stats.get("dataset"),
        "raw_sha256": stats.get("raw_sha256"),
        "split": "leave-one-out (last item test, second-to-last validation, rest train)",
        "ranking": "full catalogue, padding id excluded",
        "num_items": data.num_items,
        "users": data.num_users,
        "ties": "pessimistic (rank = 1 + #other items scored >= target)",
        "history_masked": mask_history,
        "mask_value": "-inf",
        "ks": ks,
        "selection": "best validation ndcg@10",
    }
