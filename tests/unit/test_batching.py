"""Left padding (truncation to the most recent items) and length-bucketed batch orders."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmd4rec_core.batching import bucketed_batches, left_pad


def arrays(*seqs: list[int]) -> list[np.ndarray]:
    return [np.array(s, dtype=np.int64) for s in seqs]


# -------------------------------------------------------------------------------------------- left_pad


@pytest.mark.parametrize(
    ("seqs", "max_len", "expected"),
    [
        # width = longest (3) < max_len: left-padded with 0, items keep their order
        ([[1, 2, 3], [4]], 5, [[1, 2, 3], [0, 0, 4]]),
        # width = max_len (2) < longest (4): keep the LAST 2 items of each sequence
        ([[1, 2, 3, 4], [5, 6, 7], [8]], 2, [[3, 4], [6, 7], [0, 8]]),
        # exactly max_len long: unchanged
        ([[7, 8, 9]], 3, [[7, 8, 9]]),
        # an empty sequence becomes a row of padding
        ([[], [5, 6]], 4, [[0, 0], [5, 6]]),
        # only empty sequences: width 1 (never a zero-width tensor)
        ([[], []], 4, [[0], [0]]),
        # max_len 1: the most recent item only
        ([[1, 2, 3], [4, 5]], 1, [[3], [5]]),
    ],
)
def test_left_pad_golden(seqs: list[list[int]], max_len: int, expected: list[list[int]]) -> None:
    out = left_pad(arrays(*seqs), max_len)
    assert out.dtype == torch.int64
    assert out.tolist() == expected


def test_left_pad_no_sequences() -> None:
    out = left_pad([], 5)
    assert tuple(out.shape) == (0, 1)


def test_left_pad_does_not_modify_inputs() -> None:
    seqs = arrays([1, 2, 3, 4], [5])
    left_pad(seqs, 2)
    assert [s.tolist() for s in seqs] == [[1, 2, 3, 4], [5]]


@settings(max_examples=50, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(1, 99), max_size=12), min_size=1, max_size=8),
    max_len=st.integers(1, 10),
)
def test_left_pad_properties(seqs: list[list[int]], max_len: int) -> None:
    out = left_pad(arrays(*seqs), max_len).numpy()
    width = max(1, min(max_len, max(len(s) for s in seqs)))
    assert out.shape == (len(seqs), width)
    for row, seq in zip(out, seqs, strict=True):
        kept = seq[-width:] if seq else []
        n_pad = width - len(kept)
        assert row[:n_pad].tolist() == [0] * n_pad  # padding only on the left
        assert row[n_pad:].tolist() == kept  # then the most recent items, in order


# ----------------------------------------------------------------------------------- bucketed_batches


LENGTHS = np.array([5, 1, 3, 3, 9, 2, 2, 7, 1, 4, 6, 3, 8, 2, 5, 5, 1])


@pytest.mark.parametrize("batch_size", [1, 3, 4, 16, 17, 100])
def test_bucketed_batches_partition(batch_size: int) -> None:
    batches = bucketed_batches(LENGTHS, batch_size, np.random.default_rng(0))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(LENGTHS)))  # every index exactly once
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) == -(-len(LENGTHS) // batch_size)  # ceil(17 / batch_size)


@pytest.mark.parametrize("batch_size", [2, 4, 5])
def test_bucketed_batches_group_similar_lengths(batch_size: int) -> None:
    # sorted by length then cut: the length ranges of different batches never interleave
    batches = bucketed_batches(LENGTHS, batch_size, np.random.default_rng(3))
    spans = sorted((LENGTHS[b].min(), LENGTHS[b].max()) for b in batches)
    for (_, hi), (lo, _) in itertools.pairwise(spans):
        assert hi <= lo


def test_bucketed_batches_deterministic_for_a_seed() -> None:
    a = bucketed_batches(LENGTHS, 4, np.random.default_rng(42))
    b = bucketed_batches(LENGTHS, 4, np.random.default_rng(42))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]


def test_bucketed_batches_order_depends_on_seed() -> None:
    orders = {
        tuple(np.concatenate(bucketed_batches(LENGTHS, 4, np.random.default_rng(seed))).tolist())
        for seed in range(5)
    }
    assert len(orders) > 1  # 5 seeds do not all give the same order (each pair differs w.p. ~1)
    a = np.concatenate(bucketed_batches(LENGTHS, 4, np.random.default_rng(0)))
    b = np.concatenate(bucketed_batches(LENGTHS, 4, np.random.default_rng(1)))
    assert a.tolist() != b.tolist()


def test_bucketed_batches_batch_order_is_shuffled() -> None:
    # not always shortest-first: the order of the length buckets is itself random
    first_lengths = [
        [int(LENGTHS[b].min()) for b in bucketed_batches(LENGTHS, 4, np.random.default_rng(seed))]
        for seed in range(5)
    ]
    assert any(lengths != sorted(lengths) for lengths in first_lengths)
    assert len({tuple(lengths) for lengths in first_lengths}) > 1


def test_bucketed_batches_successive_epochs_differ() -> None:
    # one generator across epochs (as in training): the second epoch is not a replay of the first
    rng = np.random.default_rng(7)
    first = np.concatenate(bucketed_batches(LENGTHS, 4, rng)).tolist()
    second = np.concatenate(bucketed_batches(LENGTHS, 4, rng)).tolist()
    assert first != second


def test_bucketed_batches_equal_lengths_are_shuffled() -> None:
    # all lengths equal: the composition of batches itself must vary with the seed
    lengths = np.full(40, 3)
    compositions = {
        frozenset(frozenset(b.tolist()) for b in bucketed_batches(lengths, 8, np.random.default_rng(s)))
        for s in range(3)
    }
    assert len(compositions) == 3


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=0, max_size=70),
    batch_size=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_bucketed_batches_partition_property(lengths: list[int], batch_size: int, seed: int) -> None:
    batches = bucketed_batches(np.array(lengths, dtype=np.int64), batch_size, np.random.default_rng(seed))
    flat = [int(i) for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
