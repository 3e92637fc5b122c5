"""Full-ranking evaluation of any recommender over all users (DESIGN.md section 2): batched
full-catalogue scoring in length order (rows of similar length share a batch, which matters for the LLM
recommender whose cost grows with the input), pessimistic target ranks, metrics, and the protocol record.

Rows are independent, so results do not depend on the order or the batch size beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.metrics import mask_history_, ranking_metrics, target_ranks


class ItemScorer(Protocol):
    """Maps left-padded histories [B, L] to scores over items [B, num_items + 1] (column 0 = padding)."""

    def eval(self) -> object: ...
    def score_items(self, input_ids: torch.Tensor) -> torch.Tensor: ...


@torch.no_grad()
def scores_by_length(
    model: ItemScorer,
    histories: Sequence[np.ndarray],
    max_len: int,
    batch_size: int,
    device: torch.device,
    desc: str = "score",
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(row indices [B], scores [B, num_items + 1] float32)`` over all rows, shortest first."""
    model.eval()
    lengths = np.array([min(len(h), max_len) for h in histories])
    order = np.argsort(lengths, kind="stable")
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        idx = order[start : start + batch_size]
        scores = model.score_items(left_pad([histories[i] for i in idx], max_len).to(device)).float()
        yield idx, scores


def masked_ranks(
    scores: torch.Tensor, histories: Sequence[np.ndarray], targets: torch.Tensor
) -> torch.Tensor:
    """Pessimistic target ranks with each row's whole history masked (DESIGN.md section 2). Returns [B]."""
    history = left_pad(histories, max(1, max(len(h) for h in histories))).to(scores.device)
    return target_ranks(mask_history_(scores.clone(), history), targets)


def ranks_by_length(
    model: ItemScorer,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    max_len: int,
    batch_size: int,
    device: torch.device,
    desc: str = "evaluate",
) -> dict[str, np.ndarray]:
    """{"masked": [N], "unmasked": [N]} pessimistic target ranks, in the order of ``histories``."""
    masked, unmasked = np.empty(len(targets), np.int64), np.empty(len(targets), np.int64)
    for idx, scores in scores_by_length(model, histories, max_len, batch_size, device, desc):
        tgt = torch.as_tensor(targets[idx], device=scores.device)
        unmasked[idx] = target_ranks(scores, tgt).cpu().numpy()
        masked[idx] = masked_ranks(scores, [histories[i] for i in idx], tgt).cpu().numpy()
    return {"masked": masked, "unmasked": unmasked}


def evaluate_by_length(
    model: ItemScorer,
    data: SequenceData,
    max_len: int,
    ks: list[int],
    batch_size: int,
    mask_history: bool,
    device: torch.device,
    desc: str = "evaluate",
) -> dict[str, dict[str, float]]:
    """Validation and test metrics under the protocol (DESIGN.md section 2), plus test under the opposite
    masking setting: {"valid", "test", "test_history_unmasked" | "test_history_masked"}."""
    chosen, other = ("masked", "unmasked") if mask_history else ("unmasked", "masked")
    out: dict[str, dict[str, float]] = {}
    for split in ("valid", "test"):
        ranks = ranks_by_length(
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
