"""Data-parallel execution of the LLM stages on existing engines: ``torch.distributed`` process groups
(gloo on CPU, nccl on GPU) started by ``torchrun``, and torch's ``DistributedDataParallel``.

Every process draws the same global batch order; rank r trains on the rows ``r, r + N, ...`` of each
global batch and its loss is scaled so that DDP's gradient average equals the gradient of the
single-process loss on the whole batch (see :func:`shard_scale`). Validation and export score the rows
``r::N`` of their instances and gather them in the original order, so model selection and the exported
file do not depend on the number of processes beyond float rounding. Only rank 0 writes outputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist

Backend = Literal["auto", "gloo", "nccl"]


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` data-parallel processes (size 1: a plain run)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def shard(self, n: int) -> np.ndarray:
        """This rank's rows of ``n``: ``rank, rank + size, ...`` ([ceil((n - rank) / size)] int64)."""
        return np.arange(self.rank, n, self.size, dtype=np.int64)

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (a list of one without a process group)."""
        if not self.parallel:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order), None on the other ranks."""
        if not self.parallel:
            return [obj]
        out: list[Any] | None = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


def init_world(backend: Backend) -> World:
    """Join the process group ``torchrun`` describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK,
    MASTER_ADDR/PORT); without it, a one-process world. ``auto``: nccl with CUDA, else gloo."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = ("nccl" if torch.cuda.is_available() else "gloo") if backend == "auto" else backend
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(chosen)
    return World(rank=rank, size=size, local_rank=local_rank)


def device_of(world: World) -> torch.device:
    """One device per process: ``cuda:<local_rank>`` when CUDA is present, else the CPU."""
    return torch.device(f"cuda:{world.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def shard_scale(world: World, local_rows: int, batch_rows: int) -> float:
    """Factor on a rank's mean loss over its ``local_rows`` so that DDP's gradient *average* over the
    ranks equals the gradient of the mean loss over the whole batch:
    (1 / N) * sum_r N * (n_r / B) * grad(mean_r) = grad(sum_r sum_{i in r} l_i / B)."""
    return world.size * local_rows / batch_rows


def gather_in_order(world: World, n: int, local: np.ndarray) -> np.ndarray:
    """Reassemble per-row results computed on :meth:`World.shard` ``(n)`` into the original row order."""
    if not world.parallel:
        return local
    parts = world.gather(local)
    out = np.empty((n, *local.shape[1:]), dtype=local.dtype)
    for rank, part in enumerate(parts):
        out[np.arange(rank, n, world.size)] = part
    return out


def shard_list(world: World, items: Sequence[Any]) -> list[Any]:
    return [items[i] for i in world.shard(len(items))]
