"""The CRM training loop: one sequence per user, every real position a next-item target, early stopping
on validation NDCG@10 (DESIGN.md section 2: model selection uses validation NDCG@10 only)."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from llmd4rec_core.batching import bucketed_batches, left_pad
from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.evaluation import full_ranking_ranks
from llmd4rec_core.losses import recommendation_loss
from llmd4rec_core.metrics import ranking_metrics
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.params import CrmTrainParams

SELECTION_METRIC = "ndcg@10"


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch (training curve)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)  # weights of the best epoch


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def training_pairs(train: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per user: inputs s[:-1] and aligned next-item targets s[1:] (users with one item yield none)."""
    keep = [s for s in train if len(s) >= 2]
    return [s[:-1] for s in keep], [s[1:] for s in keep]


def validation_metrics(
    model: SequentialRecommender, data: SequenceData, max_len: int, mask_history: bool, eval_batch: int
) -> dict[str, float]:
    device = next(model.parameters()).device
    ranks = full_ranking_ranks(
        model, data.inputs("valid"), data.targets("valid"), max_len, eval_batch, device, desc="valid"
    )
    return ranking_metrics(ranks["masked" if mask_history else "unmasked"], [10])


def train_crm(
    model: SequentialRecommender,
    data: SequenceData,
    cfg: CrmTrainParams,
    max_len: int,
    seed: int,
    mask_history: bool,
    eval_batch: int,
) -> TrainResult:
    """Train ``model`` with ``cfg.loss`` and keep the weights of the best validation NDCG@10 epoch."""
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    inputs, targets = training_pairs(data.train)
    lengths = np.array([min(len(s), max_len) for s in inputs])
    steps_per_epoch = math.ceil(len(inputs) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.max_epochs
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup_steps, total_steps))

    result = TrainResult(best_epoch=-1, best_valid={SELECTION_METRIC: -1.0})
    bad_epochs = 0
    epochs = tqdm(range(1, cfg.max_epochs + 1), desc="train", unit="epoch")  # ETA for the whole run
    for epoch in epochs:
        model.train()
        start, total_loss, seen = time.perf_counter(), 0.0, 0
        batches = bucketed_batches(lengths, cfg.batch_size, rng)
        for idx in tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False):
            x = left_pad([inputs[i] for i in idx], max_len).to(device)  # [B, L]
            y = left_pad([targets[i] for i in idx], max_len).to(device)  # [B, L], aligned with x
            hidden = model(x)[y != 0]  # [N, d] real positions only
            loss = recommendation_loss(
                cfg.loss, hidden, y[y != 0], model.item_embeddings.weight, cfg.num_negatives, gen
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            seen += len(idx)
        train_seconds = time.perf_counter() - start
        valid = validation_metrics(model, data, max_len, mask_history, eval_batch)
        row = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "valid_ndcg@10": valid["ndcg@10"],
            "valid_hr@10": valid["hr@10"],
            "lr": sched.get_last_lr()[0],
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        }
        result.history.append(row)
        tqdm.write(
            f"epoch {epoch}: loss {row['train_loss']:.4f} valid ndcg@10 {valid['ndcg@10']:.4f} "
            f"hr@10 {valid['hr@10']:.4f} ({row['seconds']:.1f}s)"
        )
        epochs.set_postfix(valid_ndcg10=f"{valid['ndcg@10']:.4f}", best=result.best_epoch)
        if valid[SELECTION_METRIC] > result.best_valid[SELECTION_METRIC]:
            result.best_epoch, result.best_valid, bad_epochs = epoch, valid, 0
            result.state_dict = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    epochs.close()
    model.load_state_dict(result.state_dict)
    return result
