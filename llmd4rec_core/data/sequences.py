"""The processed-data contract between the k-core stage and every model/evaluation stage.

``data/processed/`` (written by ``stages/kcore.py``) holds:

- ``sequences.parquet``: one row per user, sorted by ``user_id``
  ``user_id: int32`` (dense, 1-based) | ``train_items: list<int32>`` (time order) |
  ``valid_item: int32`` (second-to-last) | ``test_item: int32`` (last)
- ``items.parquet``: ``item_id: int32`` (dense, 1..num_items) | ``original_id: int64``
- ``users.parquet``: ``user_id: int32`` | ``original_id: int64``
- ``interactions.parquet``: the filtered table in time order, ``user_id, item_id: int32``,
  ``timestamp: int64`` (position in line for S3-Rec files), ``rating: float64`` (null without a column)
- ``stats.json``: counts before and after dedup / k-core, the raw file's SHA-256.

Item id 0 is reserved for padding everywhere.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llmd4rec_core.errors import InputError

Split = Literal["valid", "test"]


@dataclass(frozen=True)
class SequenceData:
    """Leave-one-out sequences of all users. Items are 1..num_items; 0 is padding."""

    num_items: int
    user_ids: np.ndarray  # [U] int64
    train: list[np.ndarray]  # U arrays of int64, each user's training items in time order
    valid: np.ndarray  # [U] int64 validation target (second-to-last item)
    test: np.ndarray  # [U] int64 test target (last item)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    def inputs(self, split: Split) -> list[np.ndarray]:
        """Input histories for predicting ``split``: train items (valid), train + valid item (test)."""
        if split == "valid":
            return self.train
        return [np.append(t, v) for t, v in zip(self.train, self.valid, strict=True)]

    def targets(self, split: Split) -> np.ndarray:
        return self.valid if split == "valid" else self.test


SEQUENCE_COLUMNS = {"user_id", "train_items", "valid_item", "test_item"}


def _read(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path, page_checksum_verification=True)  # pages written with a CRC-32
        _ = table.column_names  # decodes the names: a corrupt one raises UnicodeDecodeError here
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable Parquet: {exc}".splitlines()[0]) from None
    return table


def _check_types(table: pa.Table, path: Path) -> None:
    """Integer id columns (``train_items`` a list of them) without nulls."""
    for name in sorted(SEQUENCE_COLUMNS):
        column = table.column(name)
        kind = column.type
        if name == "train_items":
            if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
                raise InputError(f"{path}: train_items has type {kind}; expected a list of item ids")
            kind = kind.value_type
        if not pa.types.is_integer(kind):
            raise InputError(f"{path}: {name} has type {column.type}; expected integer ids")
        nulls = column.null_count
        if name == "train_items":
            nulls += column.combine_chunks().flatten().null_count
        if nulls:
            raise InputError(f"{path}: {name} has {nulls} null value(s)")


def load_sequences(processed_dir: str | Path) -> SequenceData:
    """Read ``sequences.parquet`` and ``items.parquet``; a malformed file is a one-line InputError."""
    processed_dir = Path(processed_dir)
    seq_path, items_path = processed_dir / "sequences.parquet", processed_dir / "items.parquet"
    for path in (seq_path, items_path):
        if not path.is_file():
            raise InputError(f"{path}: not found (run the kcore stage first)")
    table = _read(seq_path)
    try:
        num_items = pq.read_metadata(items_path).num_rows
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{items_path}: unreadable Parquet: {exc}".splitlines()[0]) from None
    missing = SEQUENCE_COLUMNS - set(table.column_names)
    if missing:
        raise InputError(f"{seq_path}: missing column(s) {', '.join(sorted(missing))}")
    _check_types(table, seq_path)
    if table.num_rows == 0:
        raise InputError(f"{seq_path}: no users")
    items = table.column("train_items").combine_chunks()
    offsets = items.offsets.to_numpy()
    flat = items.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = offsets - offsets[0]  # a sliced list array starts at its own offset
    user_ids = table.column("user_id").to_numpy().astype(np.int64)
    valid = table.column("valid_item").to_numpy().astype(np.int64)
    test = table.column("test_item").to_numpy().astype(np.int64)
    for name, ids in (("train_items", flat), ("valid_item", valid), ("test_item", test)):
        if ids.size and (ids.min() < 1 or ids.max() > num_items):
            raise InputError(f"{seq_path}: {name}: item ids must lie in 1..{num_items} (items.parquet rows)")
    if not np.array_equal(user_ids, np.arange(1, len(user_ids) + 1)):
        row = int(np.flatnonzero(user_ids != np.arange(1, len(user_ids) + 1))[0])
        raise InputError(
            f"{seq_path}: row {row + 1}: user_id {user_ids[row]}; expected {row + 1} (dense, sorted)"
        )
    return SequenceData(
        num_items=num_items,
        user_ids=user_ids,
        train=[flat[a:b] for a, b in itertools.pairwise(offsets)],
        valid=valid,
        test=test,
    )


def load_stats(processed_dir: str | Path) -> dict[str, Any]:
    """``stats.json`` of a processed-data directory (dataset name, raw SHA-256, counts)."""
    path = Path(processed_dir) / "stats.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read stats ({exc})") from None
