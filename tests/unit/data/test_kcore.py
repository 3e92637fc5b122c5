"""Dedup, iterative k-core (fixed point, idempotence, naive reference), time order, dense remap."""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmd4rec_core.data.kcore import dedup_earliest, kcore, process, remap_dense, resolve_dedup
from llmd4rec_core.data.readers import SCHEMA
from llmd4rec_core.errors import InputError


def frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """Reader-style frame from (user, item, timestamp) rows in file order."""
    return pl.DataFrame(
        {
            "user": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
            "rating": [float(i) for i in range(len(rows))],  # marks the file row
            "row": list(range(len(rows))),
        },
        schema=SCHEMA,
    )


def naive_kcore(pairs: list[tuple[int, int]], k: int) -> Counter[tuple[int, int]]:
    """Reference: remove one violating user or item at a time until none is left."""
    rows = Counter(pairs)
    while True:
        users, items = Counter(), Counter()
        for (u, i), c in rows.items():
            users[u] += c
            items[i] += c
        bad_users = [u for u, c in users.items() if c < k]
        bad_items = [i for i, c in items.items() if c < k]
        if not bad_users and not bad_items:
            return rows
        if bad_users:
            rows = Counter({p: c for p, c in rows.items() if p[0] != bad_users[0]})
        else:
            rows = Counter({p: c for p, c in rows.items() if p[1] != bad_items[0]})


interaction_lists = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 5)), min_size=0, max_size=80
)


@settings(max_examples=150, deadline=None)
@given(rows=interaction_lists, k=st.integers(1, 4))
def test_kcore_fixed_point_idempotent_and_matches_reference(rows: list[tuple[int, int, int]], k: int) -> None:
    core, _ = kcore(frame(rows), k)
    if core.height:
        assert core.group_by("user").len()["len"].min() >= k
        assert core.group_by("item").len()["len"].min() >= k
    again, iterations = kcore(core, k)
    assert iterations == 0 and again.equals(core)
    got = Counter(zip(core["user"].to_list(), core["item"].to_list(), strict=True))
    assert got == naive_kcore([(u, i) for u, i, _ in rows], k)


def test_kcore_cascades_and_counts_iterations() -> None:
    # k=2: items 7 and 9 have one row each -> users 3 and 4 drop to one row -> item 8 goes with them
    rows = [(1, 1, 0), (1, 2, 0), (2, 1, 0), (2, 2, 0), (3, 8, 0), (3, 9, 0), (4, 8, 0), (4, 7, 0)]
    core, iterations = kcore(frame(rows), 2)
    assert sorted(zip(core["user"], core["item"], strict=True)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert iterations == 2


def test_kcore_counts_repeats() -> None:
    rows = [(1, 5, 0), (1, 5, 1), (2, 5, 0)]
    assert kcore(frame(rows), 2)[0].height == 2  # user 1 kept thanks to the repeat; user 2 dropped


@pytest.mark.parametrize("k", [0, -3])
def test_kcore_rejects_nonpositive_k(k: int) -> None:
    with pytest.raises(InputError, match="positive"):
        kcore(frame([(1, 1, 0)]), k)


def test_dedup_keeps_earliest_time_then_first_in_file() -> None:
    rows = [(1, 5, 30), (1, 5, 10), (1, 6, 7), (1, 6, 7), (1, 5, 10), (2, 5, 1)]
    kept = dedup_earliest(frame(rows))
    assert sorted(kept.select("user", "item", "timestamp", "row").rows()) == [
        (1, 5, 10, 1),
        (1, 6, 7, 2),
        (2, 5, 1, 5),
    ]


def test_resolve_dedup() -> None:
    assert resolve_dedup("auto", "table") is True
    assert resolve_dedup("auto", "s3rec") is False
    assert resolve_dedup(True, "s3rec") is True
    assert resolve_dedup(False, "table") is False


def test_remap_dense_order_preserving_and_stable_on_ties() -> None:
    rows = [(50, 30, 5), (7, 10, 2), (50, 10, 5), (50, 99, 1), (7, 30, 2), (50, 30, 9)]
    table, users, items = remap_dense(frame(rows))
    assert users.rows() == [(1, 7), (2, 50)]
    assert items.rows() == [(1, 10), (2, 30), (3, 99)]
    assert table.schema["user_id"] == pl.Int32 and table.schema["item_id"] == pl.Int32
    # per user, time order; ties (t=5 and t=2) keep file order
    assert table.select("user_id", "item_id", "timestamp").rows() == [
        (1, 1, 2),
        (1, 2, 2),
        (2, 3, 1),
        (2, 2, 5),
        (2, 1, 5),
        (2, 2, 9),
    ]


@settings(max_examples=50, deadline=None)
@given(ids=st.lists(st.integers(0, 10**12), min_size=1, max_size=30, unique=True))
def test_remap_dense_is_monotone(ids: list[int]) -> None:
    rows = [(u, u % 7, 0) for u in ids]
    _, users, _ = remap_dense(frame(rows))
    assert users["user_id"].to_list() == list(range(1, len(ids) + 1))
    assert users["original_id"].to_list() == sorted(ids)


def test_dense_ids_unchanged_for_dense_input() -> None:
    rng = np.random.default_rng(0)
    rows = [(u, int(i), t) for u in range(1, 21) for t, i in enumerate(rng.permutation(np.arange(1, 16))[:6])]
    result = process(frame(rows), 2, dedup=False)
    assert result.users["user_id"].to_list() == result.users["original_id"].to_list()
    assert result.items["item_id"].to_list() == result.items["original_id"].to_list()


def test_process_counts_and_empty_result() -> None:
    rows = [(1, 1, 0), (1, 1, 1), (1, 2, 2), (2, 1, 0), (2, 2, 0)]
    result = process(frame(rows), 2, dedup=True)
    assert (result.raw.interactions, result.deduped.interactions, result.kcore.interactions) == (5, 4, 4)
    assert result.dedup and result.iterations == 0
    with pytest.raises(InputError, match="no interactions left after the 3-core filter"):
        process(frame(rows), 3, dedup=True)
