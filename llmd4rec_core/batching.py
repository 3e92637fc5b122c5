"""Turning variable-length histories into left-padded id tensors, and length-bucketed batch orders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def left_pad(seqs: Sequence[np.ndarray], max_len: int) -> torch.Tensor:
    """Keep the last ``max_len`` items of each sequence and left-pad with 0 to the batch's longest.

    Returns [B, L] int64 with L = min(max_len, longest sequence) (at least 1).
    """
    width = max(1, min(max_len, max((len(s) for s in seqs), default=1)))
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = seq[-width:]
        if len(tail):
            out[row, width - len(tail) :] = tail
    return torch.from_numpy(out)


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of indices with similar lengths (little padding), in random order.

    Indices are shuffled, stably sorted by length, cut into batches, and the batch order is shuffled,
    so every epoch sees different batch compositions among sequences of equal length.
    """
    perm = rng.permutation(len(lengths))
    order = perm[np.argsort(lengths[perm], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
