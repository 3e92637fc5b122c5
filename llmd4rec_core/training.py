"""The CRM training loop: one sequence per user, every real position a next-item target, early stopping
on validation NDCG@10 (DESIGN.md section 2: model selection uses validation NDCG@10 only).

With a :class:`BatchDistiller` (``distill.upward.UpwardKD``) the loss is Eq. 9 of LLMD4Rec,
L_rec + beta * w2 * KL (LLM -> CRM); without one it is L_rec alone. Both consume the random streams
identically, so with the same seed a distilled CRM and its baseline see the same initialisation,
batches and negatives: only the KL term differs.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from llmd4rec_core.batching import bucketed_batches, left_pad
from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.guards import check_finite
from llmd4rec_core.losses import recommendation_loss
from llmd4rec_core.metrics import ranking_metrics
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.params import CrmTrainParams
from llmd4rec_core.resume import Checkpointer, LoopState, Snapshot, capture_rng, restore_rng
from llmd4rec_core.scoring import ranks_by_length

SELECTION_METRIC = "ndcg@10"


class BatchDistiller(Protocol):
    """An extra loss term on each training batch: the upward KL of LLMD4Rec (distill/upward.py)."""

    beta: float  # the term's weight in the loss
    rng: np.random.Generator  # its own random stream (part of a resumable run's state)

    def term(
        self,
        users: np.ndarray,
        target_lengths: np.ndarray,
        states: torch.Tensor,
        targets: torch.Tensor,
        table: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


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


def training_pairs(train: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Per user: its row in ``train``, inputs s[:-1] and aligned next-item targets s[1:] (users with one
    item yield none)."""
    users = np.array([u for u, s in enumerate(train) if len(s) >= 2], dtype=np.int64)
    return users, [train[u][:-1] for u in users], [train[u][1:] for u in users]


def validation_metrics(
    model: SequentialRecommender, data: SequenceData, max_len: int, mask_history: bool, eval_batch: int
) -> dict[str, float]:
    device = next(model.parameters()).device
    ranks = ranks_by_length(
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
    kd: BatchDistiller | None = None,
    checkpointer: Checkpointer | None = None,
    label: str = "train_crm",
) -> TrainResult:
    """Train ``model`` with ``cfg.loss`` (plus ``kd``'s Eq. 9 term) and keep the weights of the best
    validation NDCG@10 epoch.

    ``checkpointer`` snapshots the run (resume.py) and resumes it from its latest valid snapshot, with
    exactly the result of an uninterrupted run. ``label`` (the DVC stage) names the place of a
    non-finite loss or gradient, which stops training (guards.py).
    """
    ckpt = checkpointer or Checkpointer.disabled()
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    numpy_gens = {"batches": rng} | ({"distiller": kd.rng} if kd is not None else {})
    users, inputs, targets = training_pairs(data.train)
    lengths = np.array([min(len(s), max_len) for s in inputs])  # what the model reads
    target_lengths = np.array([len(t) for t in targets])  # where a teacher position lands after padding
    steps_per_epoch = math.ceil(len(inputs) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.max_epochs
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup_steps, total_steps))

    state = LoopState(best_valid={SELECTION_METRIC: -1.0})
    best_weights: dict[str, torch.Tensor] = {}
    snap = ckpt.latest()
    if snap is not None:
        model.load_state_dict(snap.model)
        opt.load_state_dict(snap.optimizer)
        sched.load_state_dict(snap.scheduler)
        restore_rng(snap, {"negatives": gen}, numpy_gens)
        state, best_weights = snap.loop, snap.best

    def snapshot() -> Snapshot:
        torch_rng, numpy_rng = capture_rng({"negatives": gen}, numpy_gens)
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        optim, schedule = opt.state_dict(), sched.state_dict()
        return Snapshot(weights, best_weights, optim, schedule, torch_rng, numpy_rng, copy.deepcopy(state))

    zero = {"loss": 0.0, "rec": 0.0, "kl": 0.0, "w2": 0.0, "kl_rows": 0.0}
    epochs = tqdm(total=cfg.max_epochs, desc="train", unit="epoch", initial=state.epoch - 1)
    stopped = state.bad_epochs >= cfg.patience
    while state.epoch <= cfg.max_epochs and not stopped:
        epoch = state.epoch
        model.train()
        start = time.perf_counter()
        if state.step_in_epoch == 0:
            state.batch_rng, state.sums = rng.bit_generator.state, dict(zero)
            state.seen, state.train_seconds = 0, 0.0
        else:  # resumed inside the epoch: replay its batch order, skip the batches already applied
            rng.bit_generator.state = state.batch_rng
        batches = bucketed_batches(lengths, cfg.batch_size, rng)
        sums = state.sums
        for step, idx in enumerate(tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False)):
            if step < state.step_in_epoch:
                continue
            x = left_pad([inputs[i] for i in idx], max_len).to(device)  # [B, L]
            y = left_pad([targets[i] for i in idx], max_len).to(device)  # [B, L], aligned with x
            states = model(x)  # [B, L, d]
            table = model.item_embeddings.weight  # [I + 1, d]
            rec = recommendation_loss(cfg.loss, states[y != 0], y[y != 0], table, cfg.num_negatives, gen)
            loss = rec
            if kd is not None:
                kl, w2 = kd.term(users[idx], target_lengths[idx], states, y, table)
                loss = rec + kd.beta * kl  # Eq. 9
                sums["kl"] += kl.item() * len(idx)
                sums["w2"] += float(w2.sum())
                sums["kl_rows"] += len(w2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            check_finite(loss, model.parameters(), f"{label}: epoch {epoch}, step {state.global_step + 1}")
            opt.step()
            sched.step()
            sums["loss"] += loss.item() * len(idx)
            sums["rec"] += rec.item() * len(idx)
            state.seen += len(idx)
            state.step_in_epoch, state.global_step = step + 1, state.global_step + 1
            if ckpt.due(state.global_step) and state.step_in_epoch < len(batches):
                state.train_seconds += time.perf_counter() - start
                start = time.perf_counter()
                ckpt.save(snapshot())
        train_seconds = state.train_seconds + time.perf_counter() - start
        valid = validation_metrics(model, data, max_len, mask_history, eval_batch)
        seen = state.seen
        row = {
            "epoch": epoch,
            "train_loss": sums["loss"] / max(seen, 1),
            **(
                {
                    "train_rec": sums["rec"] / max(seen, 1),
                    "train_kl": sums["kl"] / max(seen, 1),
                    "train_w2": sums["w2"] / max(sums["kl_rows"], 1),
                }
                if kd is not None
                else {}
            ),
            "valid_ndcg@10": valid["ndcg@10"],
            "valid_hr@10": valid["hr@10"],
            "lr": sched.get_last_lr()[0],
            "train_seconds": train_seconds,
            "seconds": train_seconds + time.perf_counter() - start,
        }
        state.history.append(row)
        tqdm.write(
            f"epoch {epoch}: loss {row['train_loss']:.4f} valid ndcg@10 {valid['ndcg@10']:.4f} "
            f"hr@10 {valid['hr@10']:.4f} ({row['seconds']:.1f}s)"
        )
        if valid[SELECTION_METRIC] > state.best_valid[SELECTION_METRIC]:
            state.best_epoch, state.best_valid, state.bad_epochs = epoch, valid, 0
            best_weights = copy.deepcopy(model.state_dict())
        else:
            state.bad_epochs += 1
            stopped = state.bad_epochs >= cfg.patience
        epochs.update()
        epochs.set_postfix(valid_ndcg10=f"{valid['ndcg@10']:.4f}", best=state.best_epoch)
        state.epoch, state.step_in_epoch = epoch + 1, 0
        if not stopped and state.epoch <= cfg.max_epochs:
            ckpt.save(snapshot())
    epochs.close()
    model.load_state_dict(best_weights)
    return TrainResult(state.best_epoch, state.best_valid, state.history, best_weights)
