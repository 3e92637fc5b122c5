"""Scoring a set of instances with any recommender and compressing the scores into :class:`LogitRows`."""

from __future__ import annotations

import numpy as np
import torch

from llmd4rec_core.data.instances import Instances
from llmd4rec_core.distributed import World
from llmd4rec_core.logits.schema import LogitRows, compress
from llmd4rec_core.scoring import ItemScorer, masked_ranks, scores_by_length


def export_rows(
    scorer: ItemScorer,
    instances: Instances,
    num_items: int,
    max_len: int,
    top_k: int,
    batch_size: int,
    device: torch.device,
) -> LogitRows:
    """Top-K logits, 8-bit tail codes and the masked pessimistic target rank of every instance."""
    if not 0 < top_k <= num_items:
        raise ValueError(f"top_k {top_k} must lie in 1..{num_items} (the catalogue size)")
    n = len(instances)
    rows = LogitRows(
        user_id=instances.user_id.astype(np.int32),
        position=instances.position.astype(np.int32),
        target=instances.targets.astype(np.int32),
        target_rank=np.empty(n, np.int32),
        top_items=np.empty((n, top_k), np.int32),
        top_logits=np.empty((n, top_k), np.float32),
        tail_min=np.empty(n, np.float32),
        tail_step=np.empty(n, np.float32),
        tail_codes=np.empty((n, num_items), np.uint8),
    )
    for idx, scores in scores_by_length(scorer, instances.histories, max_len, batch_size, device, "export"):
        targets = torch.as_tensor(instances.targets[idx], device=scores.device)
        rows.target_rank[idx] = (
            masked_ranks(scores, [instances.histories[i] for i in idx], targets).cpu().numpy()
        )
        for name, block in compress(scores[:, 1:], top_k).items():
            getattr(rows, name)[idx] = block
    return rows


def export_rows_sharded(
    world: World,
    scorer: ItemScorer,
    instances: Instances,
    num_items: int,
    max_len: int,
    top_k: int,
    batch_size: int,
    device: torch.device,
) -> LogitRows | None:
    """:func:`export_rows` split over the data-parallel processes: rank r scores rows ``r::N``; rank 0
    merges the shards back into the instances' order (deterministic, whatever N) and returns them; the
    other ranks return None. The merge holds the whole export in rank 0's memory."""
    mine = world.shard(len(instances))
    rows = export_rows(scorer, instances.take(mine), num_items, max_len, top_k, batch_size, device)
    shards = world.gather_to_main(rows)
    if shards is None or not world.parallel:
        return None if shards is None else rows
    n = len(instances)
    merged = {name: np.empty((n, *a.shape[1:]), a.dtype) for name, a in vars(rows).items()}
    for rank, shard in enumerate(shards):
        for name, block in vars(shard).items():
            merged[name][np.arange(rank, n, world.size)] = block
    return LogitRows(**merged)
