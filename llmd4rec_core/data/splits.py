"""Leave-one-out split and the processed-data directory (contract: :mod:`llmd4rec_core.data.sequences`).

Per user, in time order: the last item is the test target, the second-to-last the validation target, the
rest the training sequence, so every user needs at least 3 interactions after filtering.

:func:`write_processed` builds the whole directory in a temporary sibling and renames it into place, so a
failure never leaves a partial output. ``interactions.parquet`` is sorted by user, then time (ties in file
order). Output is byte-identical for equal input (fixed schemas, sorted JSON, no timestamps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from llmd4rec_core.atomic import atomic_path, json_text
from llmd4rec_core.data.kcore import Filtered
from llmd4rec_core.errors import InputError

MIN_INTERACTIONS = 3

SEQUENCES_SCHEMA = pa.schema(
    [
        ("user_id", pa.int32()),
        ("train_items", pa.list_(pa.int32())),
        ("valid_item", pa.int32()),
        ("test_item", pa.int32()),
    ]
)
ITEMS_SCHEMA = pa.schema([("item_id", pa.int32()), ("original_id", pa.int64())])
USERS_SCHEMA = pa.schema([("user_id", pa.int32()), ("original_id", pa.int64())])
INTERACTIONS_SCHEMA = pa.schema(
    [("user_id", pa.int32()), ("item_id", pa.int32()), ("timestamp", pa.int64()), ("rating", pa.float64())]
)


def _sequence_bounds(interactions: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """User ids (ascending) and row offsets ``[U + 1]`` of each user's block in the sorted table."""
    users = interactions["user_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    return users[starts], np.r_[starts, len(users)]


def _check_lengths(filtered: Filtered, user_ids: np.ndarray, lengths: np.ndarray) -> None:
    """Every user needs >= 3 interactions; the message names the user's original id."""
    short = np.flatnonzero(lengths < MIN_INTERACTIONS)
    if len(short):
        user = int(user_ids[short[0]])
        original = filtered.users.filter(pl.col("user_id") == user)["original_id"][0]
        raise InputError(
            f"user {original} has {int(lengths[short[0]])} interactions; "
            f"leave-one-out needs at least {MIN_INTERACTIONS}"
        )


def leave_one_out(filtered: Filtered) -> pa.Table:
    """``sequences.parquet`` as an Arrow table: train items, valid item and test item per user."""
    table = filtered.interactions
    user_ids, offsets = _sequence_bounds(table)
    _check_lengths(filtered, user_ids, np.diff(offsets))
    items = table["item_id"].to_numpy().astype(np.int32)
    ends = offsets[1:]
    train_mask = np.ones(len(items), dtype=bool)
    train_mask[ends - 1] = False
    train_mask[ends - 2] = False
    train_offsets = (offsets - 2 * np.arange(len(offsets))).astype(np.int32)
    train = pa.ListArray.from_arrays(pa.array(train_offsets), pa.array(items[train_mask]))
    columns = [
        pa.array(user_ids.astype(np.int32)),
        train,
        pa.array(items[ends - 2]),
        pa.array(items[ends - 1]),
    ]
    return pa.Table.from_arrays(columns, schema=SEQUENCES_SCHEMA)


def _repeats(filtered: Filtered) -> tuple[int, int]:
    """Interactions repeating an earlier (user, item) pair, and how many users have any."""
    table = filtered.interactions
    pairs = table.select("user_id", "item_id").unique()
    per_user = table.group_by("user_id").agg((pl.len() - pl.col("item_id").n_unique()).alias("repeats"))
    return table.height - pairs.height, int((per_user["repeats"] > 0).sum())


def _test_in_history(sequences: pa.Table) -> int:
    """Users whose test item already occurs in their test-time input (train items + valid item)."""
    frame = pl.from_arrow(sequences)
    assert isinstance(frame, pl.DataFrame)
    hit = frame.select(
        pl.col("train_items").list.contains(pl.col("test_item"))
        | (pl.col("valid_item") == pl.col("test_item"))
    ).to_series()
    return int(hit.sum())


def build_stats(
    filtered: Filtered, sequences: pa.Table, dataset: str, raw_file: str, sha256: str, k: int
) -> dict[str, Any]:
    """The ``stats.json`` content (no paths that depend on where the raw file was found)."""
    repeats, repeat_users = _repeats(filtered)
    return {
        "dataset": dataset,
        "raw_file": raw_file,
        "raw_sha256": sha256,
        "kcore": k,
        "dedup": filtered.dedup,
        "counts": {
            "raw": filtered.raw.as_dict(),
            "after_dedup": filtered.deduped.as_dict(),
            "after_kcore": filtered.kcore.as_dict(),
        },
        "kcore_iterations": filtered.iterations,
        "repeat_interactions": repeats,
        "users_with_repeats": repeat_users,
        "users_with_test_item_in_history": _test_in_history(sequences),
    }


def _interactions_table(filtered: Filtered) -> pa.Table:
    frame = filtered.interactions
    return pa.Table.from_arrays(
        [
            pa.array(frame["user_id"].to_numpy(), pa.int32()),
            pa.array(frame["item_id"].to_numpy(), pa.int32()),
            pa.array(frame["timestamp"].to_numpy(), pa.int64()),
            frame["rating"].to_arrow().cast(pa.float64()),
        ],
        schema=INTERACTIONS_SCHEMA,
    )


def _id_table(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    dense, original = schema.names
    return pa.Table.from_arrays(
        [pa.array(frame[dense].to_numpy(), pa.int32()), pa.array(frame[original].to_numpy(), pa.int64())],
        schema=schema,
    )


def write_processed(
    out_dir: str | Path, filtered: Filtered, sequences: pa.Table, stats: dict[str, Any]
) -> None:
    """Write the processed directory atomically (all files, or nothing)."""
    tables = {
        "sequences.parquet": sequences,
        "items.parquet": _id_table(filtered.items, ITEMS_SCHEMA),
        "users.parquet": _id_table(filtered.users, USERS_SCHEMA),
        "interactions.parquet": _interactions_table(filtered),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, table in tables.items():
            pq.write_table(table, tmp / name, write_page_checksum=True)  # readers verify them
        (tmp / "stats.json").write_text(json_text(stats))
