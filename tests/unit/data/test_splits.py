"""Leave-one-out split, processed-directory contract, stats, atomicity; data acceptance tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from llmd4rec_core.data import splits
from llmd4rec_core.data.kcore import Filtered, process
from llmd4rec_core.data.readers import SCHEMA, read_s3rec, read_table
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.data.splits import build_stats, leave_one_out, write_processed
from llmd4rec_core.errors import InputError
from llmd4rec_core.params import TableParams

FILES = ("sequences.parquet", "items.parquet", "users.parquet", "interactions.parquet", "stats.json")


def filtered(rows: list[tuple[int, int, int]], k: int = 1, dedup: bool = False) -> Filtered:
    """Run dedup + k-core + remap on (user, item, timestamp) rows."""
    df = pl.DataFrame(
        {
            "user": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
            "rating": [None] * len(rows),
            "row": list(range(len(rows))),
        },
        schema=SCHEMA,
    )
    return process(df, k, dedup)


# user 20: items 5, 7, 5, 9 (5 repeats, test 9 not in history); user 10: 3, 5, 3 (test 3 in history)
ROWS = [(20, 5, 1), (10, 3, 1), (20, 7, 2), (10, 5, 2), (20, 5, 3), (10, 3, 3), (20, 9, 4)]


def test_leave_one_out() -> None:
    f = filtered(ROWS)
    seq = leave_one_out(f)
    assert seq.schema == splits.SEQUENCES_SCHEMA
    # dense ids: users 10 -> 1, 20 -> 2; items 3 -> 1, 5 -> 2, 7 -> 3, 9 -> 4
    assert seq.to_pylist() == [
        {"user_id": 1, "train_items": [1], "valid_item": 2, "test_item": 1},
        {"user_id": 2, "train_items": [2, 3], "valid_item": 2, "test_item": 4},
    ]


def test_short_user_names_original_id() -> None:
    rows = [(7, 1, 0), (7, 2, 1), (7, 3, 2), (42, 1, 0), (42, 2, 1)]
    with pytest.raises(InputError, match="user 42 has 2 interactions; leave-one-out needs at least 3"):
        leave_one_out(filtered(rows))


def test_stats() -> None:
    f = filtered(ROWS)
    stats = build_stats(f, leave_one_out(f), "table", "x.csv", "ab" * 32, 1)
    assert stats["repeat_interactions"] == 2 and stats["users_with_repeats"] == 2
    assert stats["users_with_test_item_in_history"] == 1
    assert stats["counts"]["after_kcore"] == {"users": 2, "items": 4, "interactions": 7}
    assert (stats["kcore"], stats["dedup"], stats["kcore_iterations"]) == (1, False, 0)
    assert (stats["dataset"], stats["raw_file"], stats["raw_sha256"]) == ("table", "x.csv", "ab" * 32)


def test_test_item_equal_to_valid_item_counts_as_in_history() -> None:
    f = filtered([(1, 1, 0), (1, 2, 1), (1, 2, 2)])
    assert build_stats(f, leave_one_out(f), "t", "x", "", 1)["users_with_test_item_in_history"] == 1


def write(out: Path, f: Filtered) -> None:
    seq = leave_one_out(f)
    write_processed(out, f, seq, build_stats(f, seq, "table", "x.csv", "00", 1))


def test_write_processed_contract_and_determinism(tmp_path: Path) -> None:
    f = filtered(ROWS)
    write(tmp_path / "a", f)
    write(tmp_path / "b", f)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    out = tmp_path / "a"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert pq.read_schema(out / "sequences.parquet").remove_metadata() == splits.SEQUENCES_SCHEMA
    assert pq.read_schema(out / "items.parquet").remove_metadata() == splits.ITEMS_SCHEMA
    assert pq.read_schema(out / "users.parquet").remove_metadata() == splits.USERS_SCHEMA
    assert pq.read_schema(out / "interactions.parquet").remove_metadata() == splits.INTERACTIONS_SCHEMA
    assert pq.read_table(out / "items.parquet").to_pylist()[-1] == {"item_id": 4, "original_id": 9}
    inter = [tuple(r.values())[:3] for r in pq.read_table(out / "interactions.parquet").to_pylist()]
    assert inter[:3] == [(1, 1, 1), (1, 2, 2), (1, 1, 3)]
    data = load_sequences(out)
    assert data.num_items == 4 and data.user_ids.tolist() == [1, 2]
    assert data.inputs("test")[1].tolist() == [2, 3, 2] and data.test.tolist() == [1, 4]
    assert json.loads((out / "stats.json").read_text())["repeat_interactions"] == 2


def test_write_processed_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = filtered(ROWS)
    out = tmp_path / "processed"
    write(out, f)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def failing_write(table: object, path: Path, **options: object) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        Path(path).write_bytes(b"partial")

    monkeypatch.setattr(splits.pq, "write_table", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write(out, filtered([*ROWS[:-1], (20, 8, 5)]))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old output untouched
    assert [p.name for p in tmp_path.iterdir()] == ["processed"]  # no temporary left


# --------------------------------------------------------------------------------------------- data


@pytest.mark.needs_data
def test_movielens_acceptance(mirror_file: Callable[[str], Path]) -> None:
    cols = {"user_col": "userId", "item_col": "movieId", "time_col": "timestamp", "rating_col": "rating"}
    ml = TableParams(path=None, sha256=None, **cols)
    f = process(read_table(mirror_file("raw/ml-latest-small/ratings.csv"), ml), 5, dedup=True)
    assert (f.kcore.interactions, f.kcore.users, f.kcore.items) == (90_072, 671, 3_496)
    assert f.interactions["rating"].null_count() == 0


S3REC = {  # file: (repeat interactions, users whose test item is in their history)
    "Beauty.txt": (0, 0),
    "Sports_and_Outdoors.txt": (0, 0),
    "Toys_and_Games.txt": (0, 0),
    "Yelp.txt": (11_830, 2_027),
    "LastFM.txt": (0, 0),
}


@pytest.mark.needs_data
@pytest.mark.parametrize("name", list(S3REC))
def test_s3rec_files_pass_through_unchanged(mirror_file: Callable[[str], Path], name: str) -> None:
    path = mirror_file(name)
    f = process(read_s3rec(path), 5, dedup=False)
    seq = leave_one_out(f)
    stats = build_stats(f, seq, name, name, "", 5)
    assert (stats["repeat_interactions"], stats["users_with_test_item_in_history"]) == S3REC[name]
    assert f.raw == f.kcore and f.iterations == 0
    lines = {int(line.split()[0]): line.split()[1:] for line in path.read_text().splitlines()}
    assert f.users["original_id"].to_list() == f.users["user_id"].to_list() == sorted(lines)
    assert f.items["original_id"].to_list() == f.items["item_id"].to_list()
    got = {
        int(u): [str(i) for i in np.r_[train, valid, test]]
        for u, train, valid, test in zip(*(seq.column(c).to_pylist() for c in seq.column_names), strict=True)
    }
    assert got == lines
