"""Deduplication, iterative k-core filtering and dense id remapping of an interaction frame.

Input is a reader frame (``user, item, timestamp, rating, row``, see :mod:`llmd4rec_core.data.readers`);
the interaction order is ``(timestamp, row)``: time, ties kept in file order.

- :func:`dedup_earliest` keeps the earliest interaction of each (user, item) pair.
- :func:`kcore` removes users and items with fewer than ``k`` interactions (rows, so repeats count when
  dedup is off) until nothing changes. The k-core is the unique largest sub-table where every user and
  item has >= ``k`` rows, so the removal order does not matter.
- :func:`remap_dense` numbers users and items 1..N in increasing order of their original integer id
  (0 stays padding), so already-dense files such as S3-Rec's come through with the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from llmd4rec_core.errors import InputError

ORDER = ("timestamp", "row")  # interaction order: time, ties in file order
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Counts:
    """Size of an interaction table."""

    users: int
    items: int
    interactions: int

    @classmethod
    def of(cls, frame: pl.DataFrame, user: str = "user", item: str = "item") -> Counts:
        return cls(frame[user].n_unique(), frame[item].n_unique(), frame.height)

    def as_dict(self) -> dict[str, int]:
        return {"users": self.users, "items": self.items, "interactions": self.interactions}


@dataclass(frozen=True)
class Filtered:
    """Result of :func:`process`: the dense-id table in per-user time order, id maps and bookkeeping."""

    interactions: pl.DataFrame  # user_id, item_id (Int32), timestamp (Int64), rating (Float64)
    users: pl.DataFrame  # user_id (Int32, 1..U), original_id (Int64)
    items: pl.DataFrame  # item_id (Int32, 1..I), original_id (Int64)
    raw: Counts
    deduped: Counts  # equal to ``raw`` when dedup is off
    kcore: Counts
    iterations: int  # k-core passes that removed something (0: input already a k-core)
    dedup: bool


def resolve_dedup(dedup: bool | str, kind: str) -> bool:
    """``data.dedup``: ``auto`` is on for interaction tables and off for S3-Rec files (keep repeats)."""
    if dedup == "auto":
        return kind == "table"
    return bool(dedup)


def dedup_earliest(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep the earliest interaction of each (user, item); the result is in ``(timestamp, row)`` order."""
    return frame.sort(ORDER).unique(subset=["user", "item"], keep="first", maintain_order=True)


def kcore_step(frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """One pass: drop rows whose user or item currently has fewer than ``k`` rows."""
    return frame.filter((pl.len().over("user") >= k) & (pl.len().over("item") >= k))


def kcore(frame: pl.DataFrame, k: int) -> tuple[pl.DataFrame, int]:
    """Iterate :func:`kcore_step` to a fixed point; return the table and the number of removing passes."""
    if k <= 0:
        raise InputError(f"data.kcore must be a positive integer, got {k}")
    iterations = 0
    while True:
        kept = kcore_step(frame, k)
        if kept.height == frame.height:
            return frame, iterations
        frame, iterations = kept, iterations + 1


def _id_map(frame: pl.DataFrame, column: str, dense: str) -> pl.DataFrame:
    """``dense`` (Int32, 1..N) for each distinct original id of ``column``, in increasing original order."""
    originals = frame.select(pl.col(column).unique().sort().alias("original_id"))
    if originals.height > INT32_MAX:
        raise InputError(f"too many distinct {column}s ({originals.height}) for int32 ids")
    return originals.with_row_index(dense, offset=1).with_columns(pl.col(dense).cast(pl.Int32))


def remap_dense(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Dense ids; the table is sorted by user, then ``(timestamp, row)`` (stable per-user time order)."""
    users, items = _id_map(frame, "user", "user_id"), _id_map(frame, "item", "item_id")
    table = (
        frame.join(users, left_on="user", right_on="original_id", how="left")
        .join(items, left_on="item", right_on="original_id", how="left")
        .sort(["user_id", *ORDER])
        .select("user_id", "item_id", "timestamp", "rating")
    )
    return table, users.select("user_id", "original_id"), items.select("item_id", "original_id")


def process(frame: pl.DataFrame, k: int, dedup: bool) -> Filtered:
    """Dedup (optional), k-core to a fixed point, remap ids densely; an empty result is an error."""
    raw = Counts.of(frame)
    deduped = dedup_earliest(frame) if dedup else frame
    core, iterations = kcore(deduped, k)
    if core.height == 0:
        raise InputError(f"no interactions left after the {k}-core filter ({raw.interactions} before)")
    table, users, items = remap_dense(core)
    return Filtered(table, users, items, raw, Counts.of(deduped), Counts.of(core), iterations, dedup)
