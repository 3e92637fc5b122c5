"""Readers: S3-Rec text and interaction tables (CSV, Parquet); every bad input names file and line."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmd4rec_core.data.readers import SCHEMA, read_interactions, read_s3rec, read_table
from llmd4rec_core.errors import InputError
from llmd4rec_core.params import TableParams

TABLE = TableParams(path=None, sha256=None, user_col="u", item_col="i", time_col="t", rating_col="r")
NO_RATING = TableParams(path=None, sha256=None, user_col="u", item_col="i", time_col="t", rating_col=None)


def text_file(tmp_path: Path, content: str, name: str = "Beauty.txt") -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def error_of(fn: Callable[[], object]) -> str:
    with pytest.raises(InputError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------------------------- S3-Rec


def test_s3rec_parse(tmp_path: Path) -> None:
    df = read_s3rec(text_file(tmp_path, "1 5 6 5\n3 7 8\n"))
    assert df.schema == pl.Schema(SCHEMA)
    assert df["user"].to_list() == [1, 1, 1, 3, 3]
    assert df["item"].to_list() == [5, 6, 5, 7, 8]
    assert df["timestamp"].to_list() == [1, 2, 3, 1, 2]  # position in the line
    assert df["row"].to_list() == [0, 1, 2, 3, 4]
    assert df["rating"].null_count() == 5


@pytest.mark.parametrize("content", ["1 5 6\n2 7 8", "1 5 6\r\n2 7 8\r\n", "1  5\t6 \n2 7 8\n"])
def test_s3rec_line_endings_and_spacing(tmp_path: Path, content: str) -> None:
    df = read_s3rec(text_file(tmp_path, content))
    assert df["item"].to_list() == [5, 6, 7, 8]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1 2 3\n" * 16 + "17 1 x3 4\n", "Beauty.txt:17: item id 'x3' is not an integer"),
        ("1 2 3\nu2 4 5\n", "Beauty.txt:2: user id 'u2' is not an integer"),
        ("1 2 3\n2 4 -5\n", "Beauty.txt:2: item id '-5' is negative"),
        ("1 2 3\n-2 4 5\n", "Beauty.txt:2: user id '-2' is negative"),
        ("1 2 3\n2 4 5.0\n", "Beauty.txt:2: item id '5.0' is not an integer"),
        ("1 2 3\n2 99999999999999999999\n", "Beauty.txt:2: item id '99999999999999999999' is not an integer"),
        ("1 2 3\n\n2 4 5\n", "Beauty.txt:2: blank line"),
        ("1 2 3\n  \n2 4 5\n", "Beauty.txt:2: blank line"),
        ("1 2 3\n2 4 5\n\n", "Beauty.txt:3: blank line"),
        ("1 2 3\n2\n3 4 5\n", "Beauty.txt:2: user 2 has no items"),
        ("", "Beauty.txt: empty file"),
        ("\n\n", "Beauty.txt: empty file"),
        ("9 2 3\n2 4 5\n2 6 7\n9 1 1\n", "Beauty.txt:3: user 2 already has a line (line 2)"),
    ],
)
def test_s3rec_errors(tmp_path: Path, content: str, expected: str) -> None:
    assert expected in error_of(lambda: read_s3rec(text_file(tmp_path, content)))


def test_s3rec_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "Beauty.txt"
    path.write_bytes(b"1 2 3\n2 \xff 4\n")
    assert "Beauty.txt:2: not valid UTF-8" in error_of(lambda: read_s3rec(path))


@pytest.mark.needs_data
@pytest.mark.parametrize("name", ["Beauty.txt", "Yelp.txt"])
def test_s3rec_parse_is_fast(mirror_file: Callable[[str], Path], name: str) -> None:
    path = mirror_file(name)
    start = time.perf_counter()
    df = read_s3rec(path)
    assert time.perf_counter() - start < 2.0
    assert df.height == {"Beauty.txt": 198_502, "Yelp.txt": 316_354}[name]


# --------------------------------------------------------------------------------------------- CSV


def test_csv_parse(tmp_path: Path) -> None:
    path = text_file(tmp_path, "x,u,i,r,t\na,2,10,4.5,100\nb,1,11,,90\nc,2,12,3,100\n", "t.csv")
    df = read_table(path, TABLE)
    assert df.schema == pl.Schema(SCHEMA)
    assert df.rows() == [(2, 10, 100, 4.5, 0), (1, 11, 90, None, 1), (2, 12, 100, 3.0, 2)]
    assert read_table(path, NO_RATING)["rating"].null_count() == 3


def test_csv_integral_float_times_are_exact(tmp_path: Path) -> None:
    path = text_file(tmp_path, "u,i,t\n1,1,1260759144.0\n1,2,5\n", "t.csv")
    assert read_table(path, NO_RATING)["timestamp"].to_list() == [1260759144, 5]


def test_csv_fractional_times_keep_exact_order(tmp_path: Path) -> None:
    path = text_file(tmp_path, "u,i,t\n1,1,7.9\n1,2,7.2\n1,3,7.9\n1,4,6.5\n", "t.csv")
    df = read_table(path, NO_RATING)
    assert df["timestamp"].to_list() == [7, 7, 7, 6]  # floored
    assert df.sort("timestamp", "row")["item"].to_list() == [4, 2, 1, 3]  # exact time, then file order


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("u,i,t,r\n1,2,3,4\n1,x3,3,4\n", "t.csv:3: item id 'x3' is not an integer"),
        ("u,i,t,r\n1,2,3,4\n1,2,3,4\n-1,2,3,4\n", "t.csv:4: user id -1 is negative"),
        ("u,i,t,r\n1,2,3,4\n,2,3,4\n", "t.csv:3: user id is missing"),
        ("u,i,t,r\n1,2,3,4\n\n1,2,3,4\n", "t.csv:3: blank line"),
        ('u,i,t,r\n1,2,3,"multi\nline"\n1,2,3,4\n1,z,3,4\n', "t.csv:5: item id 'z' is not an integer"),
        ("u,i,t,r\n1,2,3,4\n1,2,3,good\n", "t.csv:3: rating 'good' is not a number"),
        ("u,i,t,r\n1,2,3,4\n1,2,soon,4\n", "t.csv:3: time 'soon' is not a number"),
        ("u,i,t,r\n1,2,3,4\n1,2,,4\n", "t.csv:3: time is missing"),
        ("u,i,t,r\n1,2,3,4\n1,2,inf,4\n", "t.csv:3: time 'inf' is not a finite number"),
        ("u,i,time,r\n1,2,3,4\n", "t.csv: time column 't' not found"),
        ("u,i,t\n1,2,3\n", "t.csv: rating column 'r' not found"),
        ("u,i,t,r\n", "t.csv: no interactions"),
        ("", "t.csv: empty file"),
        ("u,i,t,r\n1,2,3,4,5\n", "t.csv: cannot parse CSV"),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, expected: str) -> None:
    assert expected in error_of(lambda: read_table(text_file(tmp_path, content, "t.csv"), TABLE))


@pytest.mark.needs_data
def test_movielens_csv(mirror_file: Callable[[str], Path]) -> None:
    cols = {"user_col": "userId", "item_col": "movieId", "time_col": "timestamp", "rating_col": "rating"}
    ml = TableParams(path=None, sha256=None, **cols)
    start = time.perf_counter()
    df = read_interactions(mirror_file("raw/ml-latest-small/ratings.csv"), "table", ml)
    assert time.perf_counter() - start < 2.0
    assert (df.height, df["user"].n_unique(), df["item"].n_unique()) == (100_004, 671, 9_066)
    assert df["rating"].null_count() == 0


# --------------------------------------------------------------------------------------------- Parquet


def parquet_file(tmp_path: Path, columns: dict[str, pa.Array]) -> Path:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_parse(tmp_path: Path) -> None:
    path = parquet_file(
        tmp_path,
        {
            "u": pa.array([3, 1], pa.int32()),
            "i": pa.array(["7", "8"]),
            "t": pa.array([datetime(2020, 1, 2), datetime(2020, 1, 1)], pa.timestamp("s")),
            "r": pa.array([1.0, None]),
        },
    )
    df = read_table(path, TABLE)
    assert df.schema == pl.Schema(SCHEMA)
    assert df.rows() == [(3, 7, 1577923200, 1.0, 0), (1, 8, 1577836800, None, 1)]


def test_parquet_subsecond_datetimes_keep_order(tmp_path: Path) -> None:
    times = [datetime(2020, 1, 1, 0, 0, 0, 900), datetime(2020, 1, 1, 0, 0, 0, 100), datetime(2019, 12, 31)]
    path = parquet_file(tmp_path, {"u": [1, 1, 1], "i": [1, 2, 3], "t": pa.array(times, pa.timestamp("us"))})
    df = read_table(path, NO_RATING)
    assert df["timestamp"].to_list() == [1577836800, 1577836800, 1577750400]
    assert df.sort("timestamp", "row")["item"].to_list() == [3, 2, 1]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"u": [1], "i": [2], "time": [3], "r": [1.0]}, "t.parquet: time column 't' not found"),
        ({"u": [1.0], "i": [2], "t": [3], "r": [1.0]}, "t.parquet: user id column has type Float64"),
        ({"u": [1, 2], "i": [2, -2], "t": [3, 3], "r": [1.0, 1.0]}, "t.parquet: row 2: item id -2 is"),
        ({"u": [1, None], "i": [2, 2], "t": [3, 3], "r": [1.0, 1.0]}, "t.parquet: row 2: user id is missing"),
        ({"u": [1], "i": [2], "t": [True], "r": [1.0]}, "t.parquet: time column has type Boolean"),
    ],
)
def test_parquet_errors(tmp_path: Path, columns: dict[str, list[object]], expected: str) -> None:
    path = parquet_file(tmp_path, {k: pa.array(v) for k, v in columns.items()})
    assert expected in error_of(lambda: read_table(path, TABLE))


def test_parquet_unreadable(tmp_path: Path) -> None:
    path = text_file(tmp_path, "u,i,t\n1,2,3\n", "t.parquet")
    assert "t.parquet: unreadable Parquet file" in error_of(lambda: read_table(path, TABLE))
