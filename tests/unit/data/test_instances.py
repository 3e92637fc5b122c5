"""Prefix -> next-item instances: keys, histories and targets, per split."""

from __future__ import annotations

import numpy as np
import pytest

from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.sequences import SequenceData

DATA = SequenceData(
    num_items=9,
    user_ids=np.array([1, 2]),
    train=[np.array([4, 5, 6, 7]), np.array([8])],
    valid=np.array([1, 2]),
    test=np.array([3, 9]),
)


def test_train_instances_are_the_most_recent_prefixes() -> None:
    inst = split_instances(DATA, "train", 2)
    assert inst.user_id.tolist() == [1, 1] and inst.position.tolist() == [2, 3]
    assert [h.tolist() for h in inst.histories] == [[4, 5], [4, 5, 6]] and inst.targets.tolist() == [6, 7]
    every = split_instances(DATA, "train", 0)  # all prefixes with >= 1 history item; user 2 has none
    assert every.position.tolist() == [1, 2, 3] and every.targets.tolist() == [5, 6, 7]


def test_valid_and_test_are_one_per_user_keyed_by_position() -> None:
    valid = split_instances(DATA, "valid", 1)
    assert valid.position.tolist() == [4, 1] and valid.targets.tolist() == [1, 2]
    test = split_instances(DATA, "test", 1)
    assert test.position.tolist() == [5, 2] and [h.tolist() for h in test.histories] == [
        [4, 5, 6, 7, 1],
        [8, 2],
    ]


def test_negative_per_user_is_refused() -> None:
    with pytest.raises(ValueError, match="per_user must be >= 0"):
        split_instances(DATA, "train", -1)
