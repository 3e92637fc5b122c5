"""Fine-tuning E4SRec with the downward distillation of LLMD4Rec (Eq. 5):

    L = CE(y_l, target) + gamma * mean_n( w1_n * KL(softmax(y_c / T1) || softmax(y_l / T1)) )

y_c comes from the frozen CRM, computed on the fly for the same prefix (exact, full catalogue; cheap
next to the LLM); with ``kl_mask_history`` both distributions leave out the prefix's own items.
w1 (Eq. 4) uses the target's pessimistic, history-masked rank under each model.
Model selection: validation NDCG@10 after each epoch; the best epoch's trainable weights are restored.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llmd4rec_core.batching import bucketed_batches, left_pad
from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.distill.kl import history_mask, sample_weight, weighted_kl
from llmd4rec_core.distributed import World, gather_in_order, shard_scale
from llmd4rec_core.guards import check_finite
from llmd4rec_core.llm.e4srec import E4SRec
from llmd4rec_core.metrics import ranking_metrics
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.params import LLMParams
from llmd4rec_core.resume import Checkpointer, LoopState, Snapshot, capture_rng, restore_rng
from llmd4rec_core.scoring import masked_ranks, ranks_by_length
from llmd4rec_core.training import SELECTION_METRIC, TrainResult, warmup_cosine


@dataclass(frozen=True)
class DownwardKD:
    """The CRM -> LLM distillation settings of Eq. 5 (teacher None or gamma 0: plain E4SRec)."""

    teacher: SequentialRecommender | None
    temperature: float  # T1
    gamma: float
    sample_weights: bool  # Eq. 4 weights, else w1 = 1
    mask_history: bool  # kl_mask_history: both distributions over the items outside the prefix


def validation_ndcg(
    model: E4SRec, data: SequenceData, mask_history: bool, batch_size: int, world: World | None = None
) -> dict[str, float]:
    """Validation HR/NDCG@10; with several processes each scores its shard of users (same result)."""
    world = world or World()
    device = model.w_in.weight.device
    histories, targets = data.inputs("valid"), data.targets("valid")
    mine = world.shard(len(targets))
    ranks = ranks_by_length(
        model, [histories[i] for i in mine], targets[mine], model.max_len, batch_size, device, "valid"
    )
    chosen = gather_in_order(world, len(targets), ranks["masked" if mask_history else "unmasked"])
    return ranking_metrics(chosen, [10])


def finetune_e4srec(
    model: E4SRec,
    data: SequenceData,
    cfg: LLMParams,
    kd: DownwardKD,
    seed: int,
    mask_history: bool,
    eval_batch: int,
    checkpointer: Checkpointer | None = None,
    label: str = "finetune_llm",
    world: World | None = None,
) -> TrainResult:
    """Train LoRA, W_in and W_out (E and the backbone stay frozen); keep the best validation epoch.

    ``checkpointer`` snapshots the run and resumes it exactly (resume.py); ``label`` (the DVC stage)
    names the place of a non-finite loss or gradient, which stops training (guards.py). ``world``: the
    data-parallel processes (distributed.py); each trains on its shard of every batch under DDP.
    """
    ckpt = checkpointer or Checkpointer.disabled()
    world = world or World()
    device = model.w_in.weight.device
    rng = np.random.default_rng(seed)
    inst = split_instances(data, "train", cfg.instances_per_user)
    lengths = np.array([min(len(h), cfg.max_items) for h in inst.histories])
    steps_per_epoch = math.ceil(len(inst) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = round(cfg.warmup_ratio * total_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup_steps, total_steps))
    distill = kd.teacher is not None and kd.gamma > 0
    if kd.teacher is not None:
        kd.teacher.eval()
    net: torch.nn.Module = model
    if world.parallel:  # gradients are averaged across the processes during backward
        device_ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    state = LoopState(best_valid={SELECTION_METRIC: -1.0})
    best_weights: dict[str, torch.Tensor] = {}
    snap = ckpt.latest()
    if snap is not None:
        model.load_state_dict(snap.model, strict=False)
        opt.load_state_dict(snap.optimizer)
        sched.load_state_dict(snap.scheduler)
        restore_rng(snap, {}, {"batches": rng})
        state, best_weights = snap.loop, snap.best
        if world.parallel:  # each process continues its own dropout streams; rank 0 holds the sums
            torch.set_rng_state(snap.torch_rng[f"rank{world.rank}/torch"])
            if torch.cuda.is_available():
                torch.cuda.set_rng_state(snap.torch_rng[f"rank{world.rank}/cuda"])
            if world.rank > 0:
                state.sums, state.seen = dict.fromkeys(state.sums, 0.0), 0

    def snapshot() -> Snapshot:  # a collective with several processes: every rank calls it
        torch_rng, numpy_rng = capture_rng({}, {"batches": rng})
        loop = copy.deepcopy(state)
        if world.parallel:
            cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
            parts = world.gather((torch.get_rng_state(), cuda, state.sums, state.seen))
            for rank, (cpu_state, cuda_state, _, _) in enumerate(parts):
                torch_rng[f"rank{rank}/torch"] = cpu_state
                if cuda_state is not None:
                    torch_rng[f"rank{rank}/cuda"] = cuda_state
            loop.sums = {k: sum(part[2][k] for part in parts) for k in state.sums}  # all ranks' rows
            loop.seen = sum(part[3] for part in parts)
        optim, schedule = opt.state_dict(), sched.state_dict()
        weights = model.trainable_state()
        return Snapshot(weights, best_weights, optim, schedule, torch_rng, numpy_rng, loop)

    bar = tqdm(total=total_steps, desc="finetune", unit="step", initial=state.global_step)  # whole-run ETA
    while state.epoch <= cfg.epochs:
        epoch = state.epoch
        model.train()
        start = time.perf_counter()
        if state.step_in_epoch == 0:
            state.batch_rng, state.seen, state.train_seconds = rng.bit_generator.state, 0, 0.0
            state.sums = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "w1": 0.0}
        else:  # resumed inside the epoch: replay its batch order, skip the batches already applied
            rng.bit_generator.state = state.batch_rng
        batches = bucketed_batches(lengths, cfg.batch_size, rng)
        sums = state.sums
        for step, batch in enumerate(batches):
            if step < state.step_in_epoch:
                continue
            idx = batch[world.shard(len(batch))]  # this process's rows of the global batch
            scale = shard_scale(world, len(idx), len(batch))
            if len(idx) == 0:  # fewer rows than processes: run one row with weight 0 (DDP needs a backward)
                idx, scale = batch[:1], 0.0
            histories = [inst.histories[i] for i in idx]
            targets = torch.as_tensor(inst.targets[idx], device=device)
            logits = net(model.template.batch(histories))  # [b, I]
            ce = F.cross_entropy(logits, targets - 1)
            loss, kl, w_mean = ce, torch.zeros(()), 1.0
            if distill:
                assert kd.teacher is not None
                with torch.no_grad():
                    teacher_max_len = kd.teacher.cfg.max_len
                    crm_scores = kd.teacher.score_items(
                        left_pad(histories, teacher_max_len).to(device)
                    ).float()
                    weights = None
                    if kd.sample_weights:
                        pad = torch.full_like(crm_scores[:, :1], float("-inf"))
                        r_l = masked_ranks(torch.cat([pad, logits.detach()], 1), histories, targets)
                        r_c = masked_ranks(crm_scores, histories, targets)
                        weights = sample_weight(student_rank=r_l, teacher_rank=r_c)  # Eq. 4
                        w_mean = float(weights.mean())
                exclude = history_mask(histories, data.num_items, device) if kd.mask_history else None
                kl = weighted_kl(crm_scores[:, 1:], logits, kd.temperature, weights, exclude)
                loss = ce + kd.gamma * kl
            opt.zero_grad(set_to_none=True)
            (loss * scale if world.parallel else loss).backward()
            check_finite(loss, trainable, f"{label}: epoch {epoch}, step {state.global_step + 1}")
            opt.step()
            sched.step()
            rows = len(idx) if scale else 0
            for key, value in (("loss", loss), ("ce", ce), ("kl", kl)):
                sums[key] += value.item() * rows
            sums["w1"] += w_mean * rows
            state.seen += rows
            state.step_in_epoch, state.global_step = step + 1, state.global_step + 1
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
            if ckpt.due(state.global_step) and state.step_in_epoch < len(batches):
                state.train_seconds += time.perf_counter() - start
                start = time.perf_counter()
                ckpt.save(snapshot())
        train_seconds = state.train_seconds + time.perf_counter() - start
        valid = validation_ndcg(model, data, mask_history, eval_batch, world)
        per_rank = world.gather(sums)  # each process summed its own rows
        totals = {k: sum(part[k] for part in per_rank) for k in sums}
        row = {
            "epoch": epoch,
            **{f"train_{k}": v / len(inst) for k, v in totals.items()},
            "valid_ndcg@10": valid["ndcg@10"],
            "valid_hr@10": valid["hr@10"],
            "lr": sched.get_last_lr()[0],
            "train_seconds": train_seconds,
            "seconds": train_seconds + time.perf_counter() - start,
        }
        state.history.append(row)
        tqdm.write(
            f"epoch {epoch}: loss {row['train_loss']:.4f} "
            f"(ce {row['train_ce']:.4f} kl {row['train_kl']:.4f} w1 {row['train_w1']:.3f}) "
            f"valid ndcg@10 {valid['ndcg@10']:.4f} hr@10 {valid['hr@10']:.4f} ({row['seconds']:.0f}s)"
        )
        if valid[SELECTION_METRIC] > state.best_valid[SELECTION_METRIC]:
            state.best_epoch, state.best_valid = epoch, valid
            best_weights = model.trainable_state()
        state.epoch, state.step_in_epoch = epoch + 1, 0
        if state.epoch <= cfg.epochs:
            ckpt.save(snapshot())
    bar.close()
    model.load_state_dict(best_weights, strict=False)
    return TrainResult(state.best_epoch, state.best_valid, state.history, best_weights)
