"""Fine-tuning E4SRec with the downward distillation of LLMD4Rec (Eq. 5):

    L = CE(y_l, target) + gamma * mean_n( w1_n * KL(softmax(y_c / T1) || softmax(y_l / T1)) )

y_c comes from the frozen CRM, computed on the fly for the same prefix (exact, full catalogue; cheap
next to the LLM); with ``kl_mask_history`` both distributions leave out the prefix's own items.
w1 (Eq. 4) uses the target's pessimistic, history-masked rank under each model.
Model selection: validation NDCG@10 after each epoch; the best epoch's trainable weights are restored.
"""

from __future__ import annotations

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
from llmd4rec_core.llm.e4srec import E4SRec
from llmd4rec_core.metrics import ranking_metrics
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.params import LLMParams
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
    model: E4SRec, data: SequenceData, mask_history: bool, batch_size: int
) -> dict[str, float]:
    device = model.w_in.weight.device
    ranks = ranks_by_length(
        model, data.inputs("valid"), data.targets("valid"), model.max_len, batch_size, device, "valid"
    )
    return ranking_metrics(ranks["masked" if mask_history else "unmasked"], [10])


def finetune_e4srec(
    model: E4SRec,
    data: SequenceData,
    cfg: LLMParams,
    kd: DownwardKD,
    seed: int,
    mask_history: bool,
    eval_batch: int,
) -> TrainResult:
    """Train LoRA, W_in and W_out (E and the backbone stay frozen); keep the best validation epoch."""
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

    result = TrainResult(best_epoch=-1, best_valid={SELECTION_METRIC: -1.0})
    bar = tqdm(total=total_steps, desc="finetune", unit="step")  # ETA over the whole run
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        start = time.perf_counter()
        sums = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "w1": 0.0}
        for idx in bucketed_batches(lengths, cfg.batch_size, rng):
            histories = [inst.histories[i] for i in idx]
            targets = torch.as_tensor(inst.targets[idx], device=device)
            logits = model(model.template.batch(histories))  # [B, I]
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
            loss.backward()
            opt.step()
            sched.step()
            for key, value in (("loss", loss), ("ce", ce), ("kl", kl)):
                sums[key] += value.item() * len(idx)
            sums["w1"] += w_mean * len(idx)
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        train_seconds = time.perf_counter() - start
        valid = validation_ndcg(model, data, mask_history, eval_batch)
        row = {
            "epoch": epoch,
            **{f"train_{k}": v / len(inst) for k, v in sums.items()},
            "valid_ndcg@10": valid["ndcg@10"],
            "valid_hr@10": valid["hr@10"],
            "lr": sched.get_last_lr()[0],
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        }
        result.history.append(row)
        tqdm.write(
            f"epoch {epoch}: loss {row['train_loss']:.4f} "
            f"(ce {row['train_ce']:.4f} kl {row['train_kl']:.4f} w1 {row['train_w1']:.3f}) "
            f"valid ndcg@10 {valid['ndcg@10']:.4f} hr@10 {valid['hr@10']:.4f} ({row['seconds']:.0f}s)"
        )
        if valid[SELECTION_METRIC] > result.best_valid[SELECTION_METRIC]:
            result.best_epoch, result.best_valid = epoch, valid
            result.state_dict = model.trainable_state()
    bar.close()
    model.load_state_dict(result.state_dict, strict=False)
    return result
