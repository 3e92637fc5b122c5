"""Prefix -> next-item instances (paper section 3.3): what the LLM trains on and what an export scores.

An instance is keyed by ``(user_id, position)``: ``position`` is the 0-based index of the target in the
user's full sequence ``train_items + [valid_item, test_item]``; its history is every item before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from llmd4rec_core.data.sequences import SequenceData

InstanceSplit = Literal["train", "valid", "test"]


@dataclass(frozen=True)
class Instances:
    user_index: np.ndarray  # [N] int64 row of the user in SequenceData
    user_id: np.ndarray  # [N] int64
    position: np.ndarray  # [N] int64 target index in the user's full sequence (= history length)
    histories: list[np.ndarray]  # N arrays: every item before the target, time order
    targets: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, index: np.ndarray) -> Instances:
        """The instances at ``index`` (in that order)."""
        return Instances(
            self.user_index[index],
            self.user_id[index],
            self.position[index],
            [self.histories[i] for i in index],
            self.targets[index],
        )


def split_instances(data: SequenceData, split: InstanceSplit, per_user: int) -> Instances:
    """Instances of ``split``. Train: each user's ``per_user`` most recent training prefixes with at least
    one history item (``per_user = 0``: all of them), oldest first; valid / test: one per user."""
    if per_user < 0:
        raise ValueError(f"per_user must be >= 0, got {per_user}")
    users, positions, histories, targets = [], [], [], []
    if split == "train":
        for u, seq in enumerate(data.train):
            first = 1 if per_user == 0 else max(1, len(seq) - per_user)
            for t in range(first, len(seq)):
                users.append(u)
                positions.append(t)
                histories.append(seq[:t])
                targets.append(seq[t])
    else:
        histories = data.inputs(split)
        users = list(range(data.num_users))
        positions = [len(h) for h in histories]
        targets = list(data.targets(split))
    user_index = np.asarray(users, dtype=np.int64)
    return Instances(
        user_index=user_index,
        user_id=data.user_ids[user_index] if len(user_index) else np.zeros(0, np.int64),
        position=np.asarray(positions, dtype=np.int64),
        histories=list(histories),
        targets=np.asarray(targets, dtype=np.int64),
    )
