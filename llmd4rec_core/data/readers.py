"""Parsers for raw interaction files: S3-Rec sequence text, and interaction tables (CSV or Parquet).

Every reader returns the same polars frame, one row per interaction, in file order:

- ``user``, ``item``: ``Int64`` original ids (non-negative integers),
- ``timestamp``: ``Int64``; for S3-Rec files the item's position in its line (the first item is 1),
  for tables the time column,
- ``rating``: ``Float64`` (null when there is no rating column or the cell is empty),
- ``row``: ``Int64`` secondary sort key. Sorting by ``(timestamp, row)`` is the interaction order:
  ``row`` is the file order, except for fractional times (below).

Time columns may hold integers, floats, or (Parquet only) dates/datetimes. Integral floats (``3.0``) are
taken exactly. Fractional times are floored to ``Int64`` for ``timestamp`` and their exact order is kept in
``row`` (the rank of ``(exact time, file order)``), so flooring never reorders interactions; it only drops
the fraction from the stored value. Dates and datetimes become Unix epoch seconds the same way (floored,
sub-second order kept in ``row``).

S3-Rec ids are separated by spaces or tabs and lines end in ``\n`` (or ``\r\n``); any other character
Python counts as whitespace (a lone ``\r``, form feed, Unicode spaces and line separators) is an error, as
readers disagree on whether it splits the line. A CSV record with fewer fields than the header has its
missing trailing cells read as empty (a null rating; a missing id or time is an error).

Every problem is a one-line :class:`InputError` naming the file and, where it applies, the line (for CSV
the file line, header = line 1) or the Parquet row.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from llmd4rec_core.errors import InputError
from llmd4rec_core.params import TableParams

SCHEMA = {"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64, "rating": pl.Float64, "row": pl.Int64}
PARQUET_SUFFIXES = (".parquet", ".pq")
INT64_MAX = float(2**63 - 1)
# characters str.split() splits at besides space, tab and \n (and the \r of a \r\n line end)
AMBIGUOUS_SPACE = re.compile(
    "\r(?!\n|\\Z)|[\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


@dataclass(frozen=True)
class Where:
    """Names the location of a table record in messages: ``file:LINE`` (CSV) or ``file: row N`` (Parquet)."""

    path: Path
    csv: bool

    def at(self, index: int) -> str:
        """Message prefix for the 0-based data record ``index``."""
        if self.csv:
            line = _csv_line_of_record(self.path, index)
            return f"{self.path}:{line}" if line is not None else f"{self.path}: record {index + 1}"
        return f"{self.path}: row {index + 1}"


# --------------------------------------------------------------------------------------------- S3-Rec


def _read_text(path: Path) -> str:
    """File contents as text; undecodable bytes name their line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 text") from None


def _split_lines(path: Path, text: str) -> tuple[list[list[str]], np.ndarray]:
    """Tokens of each line and their counts; blank lines (but the final newline) and item-less lines fail."""
    if not text.strip():
        raise InputError(f"{path}: empty file")
    if odd := AMBIGUOUS_SPACE.search(text):
        line = text.count("\n", 0, odd.start()) + 1
        raise InputError(f"{path}:{line}: separator {odd.group()!r} is not a space, tab or newline")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    tokens = [line.split() for line in lines]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    short = np.flatnonzero(lengths < 2)
    if len(short):
        toks = tokens[short[0]]
        what = "blank line" if not toks else f"user {toks[0]} has no items"
        raise InputError(f"{path}:{short[0] + 1}: {what}")
    return tokens, lengths


def _parse_ints(
    values: list[str], path: Path, line_of: Callable[[int], int], kinds: Callable[[int], str]
) -> np.ndarray:
    """Vectorised ``str -> Int64``; on failure report the first bad token with its line."""
    series = pl.Series(values, dtype=pl.String).cast(pl.Int64, strict=False)
    bad = series.is_null() | (series < 0)
    if bad.any():
        i = int(bad.arg_true()[0])
        problem = "is not an integer" if series[i] is None else "is negative"
        raise InputError(f"{path}:{line_of(i)}: {kinds(i)} id {values[i]!r} {problem}")
    return series.to_numpy()


def read_s3rec(path: str | Path) -> pl.DataFrame:
    """Parse an S3-Rec file (``user_id item_1 item_2 ...`` per line, items in time order)."""
    path = Path(path)
    tokens, lengths = _split_lines(path, _read_text(path))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    flat = list(itertools.chain.from_iterable(tokens))
    is_user = np.zeros(len(flat), dtype=bool)
    is_user[starts] = True
    values = _parse_ints(
        flat,
        path,
        line_of=lambda i: int(np.searchsorted(starts, i, side="right")),
        kinds=lambda i: "user" if is_user[i] else "item",
    )
    users = values[starts]
    _check_unique_users(path, users)
    positions = np.arange(len(flat), dtype=np.int64) - np.repeat(starts, lengths)
    keep = ~is_user
    n = int(keep.sum())
    return pl.DataFrame(
        {
            "user": np.repeat(users, lengths - 1),
            "item": values[keep],
            "timestamp": positions[keep],
            "rating": pl.repeat(None, n, dtype=pl.Float64, eager=True),
            "row": np.arange(n, dtype=np.int64),
        },
        schema=SCHEMA,
    )


def _check_unique_users(path: Path, users: np.ndarray) -> None:
    """Each user must have exactly one line (a repeated line would make positions ambiguous)."""
    repeated = np.ones(len(users), dtype=bool)
    repeated[np.unique(users, return_index=True)[1]] = False
    if repeated.any():
        line = int(np.flatnonzero(repeated)[0])
        earlier = int(np.flatnonzero(users == users[line])[0])
        raise InputError(f"{path}:{line + 1}: user {users[line]} already has a line (line {earlier + 1})")


# --------------------------------------------------------------------------------------------- tables


def _csv_line_of_record(path: Path, index: int) -> int | None:
    """File line (1-based, header = 1) where data record ``index`` starts (error path only; None if the
    csv module cannot follow the file)."""
    limit = csv.field_size_limit(2**31 - 1)  # polars reads quoted fields of any length
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            line = reader.line_num
            for i, _ in enumerate(reader):
                if i == index:
                    return line + 1
                line = reader.line_num
    except csv.Error:
        return None
    finally:
        csv.field_size_limit(limit)
    return line + 1


def _check_columns(path: Path, present: list[str], wanted: dict[str, str]) -> None:
    for role, name in wanted.items():
        if name not in present:
            listed = ", ".join(present)
            listed = listed if len(listed) <= 200 else listed[:200] + "..."
            raise InputError(f"{path}: {role} column {name!r} not found (columns: {listed})")
        if present.count(name) > 1:
            raise InputError(f"{path}: {role} column {name!r} appears {present.count(name)} times")


def _wanted_columns(table: TableParams) -> dict[str, str]:
    wanted = {"user": table.user_col, "item": table.item_col, "time": table.time_col}
    if table.rating_col is not None:
        wanted["rating"] = table.rating_col
    return wanted


def _read_csv(path: Path, wanted: dict[str, str]) -> pl.DataFrame:
    """The wanted CSV columns as strings (validated later), renamed to their roles."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise InputError(f"{path}: empty file")
    try:
        # the header as written (polars renames repeated names, which would hide them)
        header = [
            name or "" for name in pl.read_csv(path, has_header=False, n_rows=1, infer_schema=False).row(0)
        ]
        _check_columns(path, header, wanted)
        names = list(dict.fromkeys(wanted.values()))
        # every column (as text): with a projection polars ignores records with too many fields
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(
            f"{path}: cannot parse CSV: {(str(exc) or type(exc).__name__).splitlines()[0]}"
        ) from None
    # polars reads a quoted empty cell ("") as an empty string, an unquoted one as null: both are empty
    empty = {name: pl.when(pl.col(name) != "").then(pl.col(name)) for name in names}
    return frame.select(empty[name].alias(role) for role, name in wanted.items())


def _read_parquet(path: Path, wanted: dict[str, str]) -> pl.DataFrame:
    """The wanted Parquet columns, renamed to their roles."""
    try:
        names = pq.read_schema(path).names
        _check_columns(path, names, wanted)
        table = pq.read_table(
            path, columns=list(dict.fromkeys(wanted.values())), page_checksum_verification=True
        )
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path}: unreadable Parquet file: {(str(exc) or type(exc).__name__).splitlines()[0]}"
        ) from None
    # rebuilt without schema/field metadata: nothing here reads it, and polars panics (pyo3 PanicException,
    # not an Exception) on metadata that is not valid UTF-8, e.g. after one flipped footer byte
    bare = pa.Table.from_arrays(table.columns, names=table.column_names)
    frame = pl.from_arrow(bare)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(pl.col(name).alias(role) for role, name in wanted.items())


def _first_bad(bad: pl.Series) -> int | None:
    """Index of the first ``True`` in ``bad`` (None if there is none)."""
    return int(bad.arg_true()[0]) if bad.any() else None


def _ids(col: pl.Series, role: str, where: Where) -> pl.Series:
    """Validate an id column (integers >= 0; digit strings accepted) and return it as ``Int64``."""
    if col.dtype != pl.String and not col.dtype.is_integer():
        raise InputError(f"{where.path}: {role} id column has type {col.dtype}; expected integers")
    ids = col.cast(pl.Int64, strict=False)
    if (i := _first_bad(ids.is_null())) is not None:
        problem = "is missing" if col[i] is None else f"{str(col[i])!r} is not an integer"
        raise InputError(f"{where.at(i)}: {role} id {problem}")
    if (i := _first_bad(ids < 0)) is not None:
        raise InputError(f"{where.at(i)}: {role} id {ids[i]} is negative")
    return ids


def _floats(col: pl.Series, what: str, where: Where) -> pl.Series:
    """Numbers (int, float or numeric string) as ``Float64``; nulls stay null, non-numbers are errors."""
    if col.dtype not in (pl.String, pl.Null) and not col.dtype.is_numeric():
        raise InputError(f"{where.path}: {what} column has type {col.dtype}; expected numbers")
    values = col.cast(pl.Float64, strict=False)
    if (i := _first_bad(values.is_null() & col.is_not_null())) is not None:
        raise InputError(f"{where.at(i)}: {what} {str(col[i])!r} is not a number")
    return values


def _float_times(col: pl.Series, where: Where, exact: pl.Series) -> pl.Series:
    """A time column that is not all integers, as finite ``Float64`` within the Int64 range (the rows
    ``exact`` are int64 integers, taken as they are)."""
    values = _floats(col, "time", where)
    if (i := _first_bad(values.is_null())) is not None:
        raise InputError(f"{where.at(i)}: time is missing")
    if (i := _first_bad((~values.is_finite() | (values.abs() >= INT64_MAX)) & ~exact)) is not None:
        raise InputError(f"{where.at(i)}: time {str(col[i])!r} is not a finite number in the int64 range")
    return values


def _exact_order(timestamp: pl.Series, within: pl.Series, whole: bool) -> tuple[pl.Series, pl.Series]:
    """``(timestamp, row)``: ``row`` is the file order if every time is whole (``whole``), otherwise the
    rank of ``(timestamp, within, file order)``, ``within`` ordering the times that share a second."""
    n = len(timestamp)
    file_order = np.arange(n, dtype=np.int64)
    if whole:
        return timestamp, pl.Series("row", file_order)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((file_order, within.to_numpy(), timestamp.to_numpy()))] = file_order
    return timestamp, pl.Series("row", rank)


def _times(col: pl.Series, where: Where) -> tuple[pl.Series, pl.Series]:
    """``(timestamp Int64, row Int64)`` from a time column; see the module docstring for floats/dates."""
    if col.dtype == pl.Date:
        col = col.cast(pl.Datetime("ms"))  # days * 86_400_000 fits in int64 for any date32
    if isinstance(col.dtype, pl.Datetime):
        unit = col.dtype.time_unit or "us"  # the column's own unit: a coarser one would merge times
        ticks, per_second = col.dt.epoch(unit), {"ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
        if (i := _first_bad(ticks.is_null())) is not None:
            raise InputError(f"{where.at(i)}: time is missing")
        within = ticks % per_second
        return _exact_order(ticks // per_second, within, whole=not (within != 0).any())
    as_int = None
    if col.dtype == pl.String or col.dtype.is_integer():
        as_int = col.cast(pl.Int64, strict=False)
        if as_int.null_count() == 0:
            return _exact_order(as_int, as_int, whole=True)
    # integers among fractional times stay exact (a float64 holds 53 bits); within a second the float
    # orders them: an integer t shares its second only with floats in [t, t + 1), and float(t) is exact
    # whenever such a float exists
    exact = as_int.is_not_null() if as_int is not None else pl.repeat(False, len(col), eager=True)
    values = _float_times(col, where, exact)
    values = values.zip_with(~exact, pl.zeros(len(values), pl.Float64, eager=True))
    floored = values.floor()
    timestamp, whole = floored.cast(pl.Int64), bool((values == floored).all())
    if as_int is not None:
        timestamp, values = as_int.zip_with(exact, timestamp), as_int.cast(pl.Float64).zip_with(exact, values)
    return _exact_order(timestamp, values, whole)


def _table_frame(raw: pl.DataFrame, where: Where) -> pl.DataFrame:
    """Validate role-named columns and build the standard reader frame."""
    blank = raw.select(pl.all_horizontal(pl.all().is_null())).to_series()
    if (i := _first_bad(blank)) is not None:
        raise InputError(f"{where.at(i)}: blank line or empty record")
    user, item = _ids(raw["user"], "user", where), _ids(raw["item"], "item", where)
    timestamp, row = _times(raw["time"], where)
    no_rating = pl.repeat(None, raw.height, dtype=pl.Float64, eager=True)
    return pl.DataFrame(
        {
            "user": user,
            "item": item,
            "timestamp": timestamp,
            "rating": _floats(raw["rating"], "rating", where) if "rating" in raw.columns else no_rating,
            "row": row,
        },
        schema=SCHEMA,
    )


def read_table(path: str | Path, table: TableParams) -> pl.DataFrame:
    """Parse an interaction table: Parquet if the name ends in ``.parquet``/``.pq``, otherwise CSV."""
    path = Path(path)
    wanted = _wanted_columns(table)
    is_parquet = path.suffix.lower() in PARQUET_SUFFIXES
    raw = _read_parquet(path, wanted) if is_parquet else _read_csv(path, wanted)
    if raw.height == 0:
        raise InputError(f"{path}: no interactions (the table has no rows)")
    return _table_frame(raw, Where(path, csv=not is_parquet))


def read_interactions(path: str | Path, kind: str, table: TableParams) -> pl.DataFrame:
    """Dispatch on the dataset kind: ``s3rec`` text or an interaction ``table``."""
    return read_s3rec(path) if kind == "s3rec" else read_table(path, table)
