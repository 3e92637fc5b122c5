"""Hostile input for the raw-data readers (issue 6), as hypothesis properties.

Every call either returns exactly what an independent reference parser (written here, from the format
as documented in ``llmd4rec_core/data/readers.py``) reads, or raises a one-line :class:`InputError` naming
the file; any other exception fails the test, and so does a result where the reference sees an error.
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import example, given, settings

from llmd4rec_core.data.readers import AMBIGUOUS_SPACE, SCHEMA, read_interactions, read_s3rec, read_table
from llmd4rec_core.data.sequences import SequenceData, load_sequences
from llmd4rec_core.errors import InputError
from llmd4rec_core.params import TableParams

SETTINGS = settings(max_examples=80, deadline=None)
TABLE = TableParams(path=None, sha256=None, user_col="u", item_col="i", time_col="t", rating_col="r")
NO_RATING = TableParams(path=None, sha256=None, user_col="u", item_col="i", time_col="t", rating_col=None)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Row = tuple[Any, ...]  # (user, item, timestamp, rating, row)
ERROR = "error"  # the reference's verdict for input that must raise InputError
Expected = list[Row] | str

# characters str.split() splits at, beyond the format's space, tab, \n and the \r of \r\n
SPLIT_SPACE = frozenset(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()) - set(" \t\n\r")
INT_TOKEN = re.compile(r"[+-]?[0-9]+")  # what polars casts String -> Int64 (ASCII digits, one sign)
FLOAT_TOKEN = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.I
)
HOSTILE_TOKENS = [
    "-1",
    "-0",
    "+7",
    "007",
    str(INT64_MAX),
    str(INT64_MAX + 1),
    str(INT64_MIN),
    str(INT64_MIN - 1),
    str(10**30),
    "1.0",
    "1.5",
    "1e3",
    "-2.5e-3",
    "inf",
    "NaN",
    "0x1f",
    "1_000",
    "\u0663",  # Arabic-Indic digit three
    "\uff15",  # fullwidth digit five
    "",
    "\x00",
    "x3",
    "é",
    "\U0001f600",
    "1\xa02",  # no-break space
    "1\u20282",  # Unicode line separator
    "1\r2",  # lone carriage return
    "1\x0c2",  # form feed
]


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per hypothesis example (function-scoped fixtures do not reset between them)."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def outcome(read: Callable[[Path], pl.DataFrame], path: Path) -> pl.DataFrame | str:
    """The frame, or the message of the InputError (checked: one line, names ``path``)."""
    try:
        frame = read(path)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(f"{path}:"), message
        return message
    assert frame.schema == pl.Schema(SCHEMA)
    return frame


def canonical(rows: Sequence[Row]) -> list[Row]:
    """Rows with NaN made comparable (NaN != NaN) and -0.0 folded into 0.0."""
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r) for r in rows]


def check(got: pl.DataFrame | str, expected: Expected, may_refuse: bool = False) -> None:
    """``got`` matches the reference; ``may_refuse``: an InputError is also fine where it reads rows."""
    if expected == ERROR:
        assert isinstance(got, str), f"silently accepted input the reference rejects: {got}"
    elif isinstance(got, str):
        assert may_refuse, f"refused well-formed input: {got}"
    else:
        assert canonical(got.rows()) == canonical(expected)


def id_value(token: str) -> int | None:
    """The id a token stands for, or None if it is not a valid (non-negative int64) id."""
    if not INT_TOKEN.fullmatch(token):
        return None
    value = int(token)
    return value if 0 <= value <= INT64_MAX else None


# --------------------------------------------------------------------------------------------- S3-Rec


def ref_s3rec(data: bytes) -> Expected | int:
    """Reference S3-Rec parse: rows, or the 1-based line the error must name (0: no line)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1
    if not text.strip():
        return 0
    for pos, ch in enumerate(text):
        if ch in SPLIT_SPACE or (ch == "\r" and text[pos + 1 : pos + 2] not in ("\n", "")):
            return text.count("\n", 0, pos) + 1
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    tokens = [line.split() for line in lines]
    for n, toks in enumerate(tokens, 1):
        if len(toks) < 2:
            return n
    for n, toks in enumerate(tokens, 1):
        if any(id_value(t) is None for t in toks):
            return n
    rows: list[Row] = []
    seen: set[int] = set()
    for n, toks in enumerate(tokens, 1):
        user = id_value(toks[0])
        assert user is not None
        if user in seen:
            return n
        seen.add(user)
        rows += [(user, id_value(t), pos, None, len(rows) + pos - 1) for pos, t in enumerate(toks[1:], 1)]
    return rows


def check_s3rec(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    expected = ref_s3rec(data)
    got = outcome(read_s3rec, path)
    if isinstance(expected, int):
        assert isinstance(got, str), f"silently accepted input the reference rejects: {got}"
        prefix = f"{path}:{expected}:" if expected else f"{path}: "
        assert got.startswith(prefix), (got, prefix)
    else:
        check(got, expected)


ids = st.one_of(st.integers(0, 60), st.integers(0, INT64_MAX))


@st.composite
def id_token(draw: st.DrawFn) -> str:
    """A valid id, sometimes with leading zeros or a plus sign."""
    value = draw(ids)
    return draw(st.sampled_from(["", "+", "0", "00"])) + str(value)


@st.composite
def s3rec_file(draw: st.DrawFn) -> bytes:
    """A well-formed S3-Rec file: unique users, spaces/tabs between ids, \\n or \\r\\n line ends."""
    users = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    lines = []
    for user in users:
        tokens = [str(user), *draw(st.lists(id_token(), min_size=1, max_size=5))]
        seps = draw(st.lists(st.sampled_from([" ", "\t", "  ", " \t"]), min_size=len(tokens) + 1))
        edge = draw(st.sampled_from(["", " ", "\t"]))
        lines.append(edge + "".join(s + t for s, t in zip(seps[1:], tokens, strict=False)).lstrip(" \t"))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return (eol.join(lines) + draw(st.sampled_from(["", eol]))).encode()


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with 1-3 hostile edits: truncation, a replaced token, inserted/flipped/random bytes."""
    data = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "token", "insert_text", "insert_bytes", "flip"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            data = data[:at]
        elif kind == "token":
            spans = [m.span() for m in re.finditer(rb"[^ \t\r\n,]+", data)]
            if spans:
                a, b = draw(st.sampled_from(spans))
                new = draw(st.sampled_from(HOSTILE_TOKENS) | st.text(max_size=3))
                data = data[:a] + new.encode() + data[b:]
        elif kind == "insert_text":
            data = data[:at] + draw(st.text(max_size=3)).encode() + data[at:]
        elif kind == "insert_bytes":
            data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
        elif data:
            i = min(at, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    return data


S3REC_ALPHABET = st.sampled_from("0123456789 \t\n\r-+.") | st.characters(codec="utf-8")


@SETTINGS
@given(s3rec_file())
def test_s3rec_well_formed_matches_reference(data: bytes) -> None:
    """Well-formed files read exactly as the reference reads them (users, items, positions, order)."""
    expected = ref_s3rec(data)
    assert isinstance(expected, list)
    with scratch() as tmp:
        (tmp / "Beauty.txt").write_bytes(data)
        got = outcome(read_s3rec, tmp / "Beauty.txt")
        assert isinstance(got, pl.DataFrame), got
        check(got, expected)


@SETTINGS
@given(mutated(s3rec_file()))
@example(b"1 2 3\r2 4 5\r")  # classic-Mac line ends: used to become one user with five items
@example(b"1 2\x1c3 4\n")  # str.split() splits at the file separator \x1c: used to read user 1: 2, 3, 4
@example(b"1 2\xc2\xa03\n")  # a no-break space between ids
@example(b"1 2 3\n2 4 9223372036854775808\n")  # ids > 2**63 - 1
@example(b"1 2 3\n2 4 \xff\n")  # invalid UTF-8
@example(b"1 2 3\n2 4 5\x00\n")  # NUL byte
@example(b"1 2 -0\n")  # "-0" is the id 0, not negative
def test_s3rec_hostile_bytes(data: bytes) -> None:
    """Edited files: the reference's rows, or an InputError on the line the reference blames."""
    with scratch() as tmp:
        check_s3rec(tmp / "Beauty.txt", data)


@SETTINGS
@given(st.binary(max_size=48) | st.text(S3REC_ALPHABET, max_size=48).map(str.encode))
def test_s3rec_arbitrary_bytes(data: bytes) -> None:
    """Random bytes and random (digit-heavy) text: the reference's rows or an InputError."""
    with scratch() as tmp:
        check_s3rec(tmp / "Beauty.txt", data)


def test_ambiguous_space_is_every_other_split_character() -> None:
    """The reader refuses exactly the characters str.split() would silently split a line at."""
    for ch in SPLIT_SPACE:
        assert AMBIGUOUS_SPACE.search(f"1 2{ch}3"), repr(ch)
    assert AMBIGUOUS_SPACE.search("1 2\r3") and AMBIGUOUS_SPACE.search("1\r\r\n")
    assert not AMBIGUOUS_SPACE.search("1 2\t3\r\n4 5\r")


def test_missing_files_are_input_errors() -> None:
    with scratch() as tmp:
        for name, kind in [("Beauty.txt", "s3rec"), ("t.csv", "table"), ("t.parquet", "table")]:
            assert isinstance(outcome(lambda p, k=kind: read_interactions(p, k, TABLE), tmp / name), str)


# --------------------------------------------------------------------------------------------- CSV


def float_value(token: str) -> float | None:
    return float(token) if FLOAT_TOKEN.fullmatch(token) else None


def ref_times(tokens: list[Any]) -> tuple[list[int], list[int]] | None:
    """``(timestamp, row)`` of a time column of ints/floats/numeric strings, or None for an error.

    Integer tokens in the int64 range are exact; others are float64 (finite, |t| < 2**63). ``timestamp`` is
    the floor, ``row`` the file order or, if any time is fractional, the rank of (exact time, file order).
    """
    exact: list[Fraction] = []
    for t in tokens:
        if isinstance(t, int) or (isinstance(t, str) and INT_TOKEN.fullmatch(t) and id_fits(int(t))):
            value: int | float | None = int(t)
        else:
            value = float(t) if isinstance(t, float) else float_value(t) if isinstance(t, str) else None
            if value is None or not math.isfinite(value) or abs(value) >= 2.0**63:
                return None
        exact.append(Fraction(value))
    stamps = [math.floor(v) for v in exact]
    if all(v.denominator == 1 for v in exact):
        return stamps, list(range(len(exact)))
    order = sorted(range(len(exact)), key=lambda k: (exact[k], k))
    rank = [0] * len(exact)
    for r, k in enumerate(order):
        rank[k] = r
    return stamps, rank


def id_fits(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


def ref_csv(data: bytes, table: TableParams) -> Expected:
    """Reference CSV parse with the csv module (header = first record; short records padded)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ERROR
    # records end at \n, \r\n or a final \r, as for polars; any other \r is data (never a valid number)
    text = re.sub("\r(?!\n|\\Z)", "\ue000", text.removeprefix("\ufeff"))
    limit = csv.field_size_limit(2**31 - 1)
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(limit)
    if not records:
        return ERROR
    header, body = records[0], records[1:]
    wanted = [table.user_col, table.item_col, table.time_col]
    wanted += [table.rating_col] if table.rating_col else []
    if any(header.count(name) != 1 for name in wanted) or not body:
        return ERROR
    index = [header.index(name) for name in wanted]
    if not text.endswith("\n") and len(body[-1]) == len(header) + 1 and body[-1][-1] == "":
        body[-1].pop()  # polars ignores a trailing comma at the very end of the file (no value moves)
    cells = []
    for record in body:
        if len(record) > len(header):
            return ERROR
        record += [""] * (len(header) - len(record))
        cells.append([record[k] for k in index])
    users = [id_value(c[0]) for c in cells]
    items = [id_value(c[1]) for c in cells]
    times = ref_times([c[2] for c in cells])
    if None in users or None in items or times is None:
        return ERROR
    ratings: list[float | None] = [None] * len(cells)
    if table.rating_col:
        ratings = [float_value(c[3]) if c[3] else None for c in cells]
        if any(r is None and c[3] for r, c in zip(ratings, cells, strict=True)):
            return ERROR
    return list(zip(users, items, *times[:1], ratings, times[1], strict=True))


times_int = st.integers(INT64_MIN, INT64_MAX).map(str)
times_float = st.floats(-1e15, 1e15, allow_nan=False).map(repr) | st.floats(-(2.0**62), 2.0**62).map(repr)


@st.composite
def csv_file(draw: st.DrawFn, quoting: bool) -> bytes:
    """A well-formed interaction CSV: columns in any order, extra columns, ints or floats as times.

    ``quoting``: csv.writer quoting (all fields, or text cells with commas, quotes, newlines);
    otherwise no quote characters at all (the base for the byte-level edits).
    """
    extras = draw(st.lists(st.sampled_from(["x", "note", "day"]), unique=True, max_size=2))
    columns = draw(st.permutations(["u", "i", "t", "r", *extras]))
    n = draw(st.integers(1, 8))
    time = draw(st.sampled_from([times_int, times_float, times_int | times_float]))
    rating = st.none() | st.floats(-5, 5, allow_nan=False).map(repr) | st.sampled_from(["4", "nan", "inf"])
    forbidden = "\r" if quoting else ',"\r\n'  # csv.writer leaves a lone \r unquoted
    text_cell = st.text(
        st.characters(blacklist_characters=forbidden, blacklist_categories=("Cs",)), max_size=6
    )
    cell = {"u": id_token(), "i": id_token(), "t": time, "r": rating.map(lambda r: r or "")}
    rows = [[draw(cell.get(c, text_cell)) for c in columns] for _ in range(n)]
    out = io.StringIO(newline="")
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    style = csv.QUOTE_ALL if quoting and draw(st.booleans()) else csv.QUOTE_MINIMAL
    csv.writer(out, lineterminator=eol, quoting=style).writerows([columns, *rows])
    text = out.getvalue()
    if draw(st.booleans()):
        text = text.removesuffix(eol)
    return (draw(st.sampled_from(["", "\ufeff"])) + text).encode()


def check_csv(path: Path, data: bytes, table: TableParams, must_read: bool = False) -> None:
    path.write_bytes(data)
    expected = ref_csv(data, table)
    assert not must_read or expected != ERROR
    # polars is stricter than the csv module about stray quote characters; refusing those is fine
    check(outcome(lambda p: read_table(p, table), path), expected, may_refuse=not must_read and b'"' in data)


@SETTINGS
@given(csv_file(quoting=True), st.booleans())
def test_csv_well_formed_matches_reference(data: bytes, with_rating: bool) -> None:
    """Well-formed CSV (quoted cells, BOM, CRLF, mixed int/float times) reads exactly as the reference."""
    with scratch() as tmp:
        check_csv(tmp / "t.csv", data, TABLE if with_rating else NO_RATING, must_read=True)


@SETTINGS
@given(mutated(csv_file(quoting=False)), st.booleans())
@example(b"u,i,t,r\n1,2,9007199254740993,4\n1,3,1.5,4\n", True)  # 2**53 + 1 beside a fraction: exact
@example(b"u,i,t\n0,0,9223372036854775296\n0,0,0.5\n", False)  # float(t) = 2**63, yet t is an int64
@example(b"u,x,i,t\n1,5,6,7,8\n", False)  # one field too many: used to read item 6, time 7 silently
@example(b"u,i,t,r,r\n1,2,3,4,5\n", True)  # which 'r'? used to take the first silently
@example(b"u,i,t,u\n1,2,3,4\n", True)
@example(b"u,i,t,r\n1,2,3,4\n1,2,3\n", True)  # short record: missing rating cell is empty (null)
@example(b"u,i,t,r\n1,2,3,4\n1,2\n", True)  # short record missing the time
@example(b"u,i,t,r\n1,2,-5,nan\n", True)  # negative time, NaN rating: read as written
@example(b"u,i,t,r\r1,2,3,4\r", True)  # classic-Mac line ends
@example(b"u,i,t,r\n1,2,3,4\n1,2,3,\xff\n", True)
@example(b"\xef\xbb\xbfu,i,t\n1,2,3\n", False)
@example(b"u,i,t\r\n1,2,3\r\n1,2,4\r", False)  # a file cut between \r and \n
def test_csv_hostile_bytes(data: bytes, with_rating: bool) -> None:
    """Edited CSV: the reference's rows or an InputError naming the file; never a silent misread."""
    with scratch() as tmp:
        check_csv(tmp / "t.csv", data, TABLE if with_rating else NO_RATING)


@SETTINGS
@given(
    st.binary(max_size=40)
    | st.text(st.sampled_from('uit,r0123456789.-\n\r" e') | st.characters(codec="utf-8"), max_size=40).map(
        str.encode
    )
)
@example(b"")
@example(b"\n")
@example(b"u,i,t,r\n")
def test_csv_arbitrary_bytes(data: bytes) -> None:
    """Random bytes and random CSV-ish text."""
    with scratch() as tmp:
        check_csv(tmp / "t.csv", data, TABLE)


def test_csv_error_after_a_huge_quoted_field() -> None:
    """The line lookup of an error message used to raise csv.Error on a field over 131072 characters."""
    with scratch() as tmp:
        path = tmp / "t.csv"
        path.write_bytes(b'u,i,t,r\n1,2,3,"' + b"x" * 200_000 + b'"\n1,z,3,4\n')
        assert outcome(lambda p: read_table(p, TABLE), path) == f"{path}:3: item id 'z' is not an integer"


@SETTINGS
@given(csv_file(quoting=True), st.data())
def test_csv_bad_id_names_its_line(data: bytes, draw: st.DataObject) -> None:
    """A bad user id in record k names the file line where record k starts (quoted newlines counted)."""
    text = data.decode("utf-8")
    records = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    k = draw.draw(st.integers(1, len(records) - 1))
    bad = draw.draw(st.sampled_from(["-1", "x", "1.5", str(INT64_MAX + 1)]))
    col = records[0].index("u")
    records[k][col] = bad
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerows(records)
    body = out.getvalue()
    # the line where record k starts: one plus the newlines in the records before it
    before = io.StringIO(newline="")
    csv.writer(before, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerows(records[:k])
    line = before.getvalue().count("\n") + 1
    with scratch() as tmp:
        path = tmp / "t.csv"
        path.write_text(body, encoding="utf-8")
        got = outcome(lambda p: read_table(p, TABLE), path)
        assert isinstance(got, str) and got.startswith(f"{path}:{line}: user id"), (got, line)


# --------------------------------------------------------------------------------------------- Parquet

INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def int_range(t: pa.DataType) -> tuple[int, int]:
    bits = t.bit_width
    return (0, 2**bits - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@st.composite
def column(draw: st.DrawFn, n: int, role: str) -> tuple[pa.Array, list[Any] | None]:
    """A Parquet column for ``role`` and its reference values (None: the reader must refuse it).

    Reference values are ids (user/item), exact times as Fractions of a second (time), or floats/None
    (rating).
    """
    kinds = ["int", "string", "float", "bool", "null"]
    kinds += {"time": ["timestamp", "date"], "rating": ["decimal"]}.get(role, [])
    kind = draw(st.sampled_from(kinds))
    nullable = draw(st.booleans())

    def maybe_null(values: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(st.none() | values if nullable else values, min_size=n, max_size=n))

    if kind == "int":
        t = draw(st.sampled_from(INT_TYPES))
        values = maybe_null(st.integers(*int_range(t)))
        arr = pa.array(values, t)
        ok_id = all(v is not None and 0 <= v <= INT64_MAX for v in values)
        if role in ("user", "item"):
            return arr, values if ok_id else None
        if role == "time":
            good = all(v is not None and id_fits(v) for v in values)
            return arr, [Fraction(v) for v in values] if good else None
        return arr, [None if v is None else float(v) for v in values]
    if kind == "string":
        token = st.sampled_from(HOSTILE_TOKENS) | id_token() | times_float
        values = maybe_null(token)
        arr = pa.array(values, pa.string())
        if role in ("user", "item"):
            parsed = [None if v is None else id_value(v) for v in values]
            return arr, parsed if None not in parsed else None
        if role == "time":
            if None in values:
                return arr, None
            times = ref_times(values)
            return arr, None if times is None else values
        floats = [None if v is None or v == "" else float_value(v) for v in values]
        bad = any(f is None and v not in (None, "") for f, v in zip(floats, values, strict=True))
        # polars reads "" as a string, which is not a number; only nulls are missing ratings
        bad = bad or "" in values
        return arr, None if bad else floats
    if kind == "float":
        t = draw(st.sampled_from([pa.float32(), pa.float64()]))
        width = 32 if t == pa.float32() else 64
        values = maybe_null(st.floats(width=width) | st.floats(-1e6, 1e6, width=width))
        arr = pa.array(values, t)
        if role in ("user", "item"):
            return arr, None
        if role == "time":
            good = all(v is not None and math.isfinite(v) and abs(v) < 2.0**63 for v in values)
            return arr, [Fraction(v) for v in values] if good else None
        return arr, values
    if kind == "timestamp":
        unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
        tz = draw(st.sampled_from([None, "UTC", "Europe/Paris"]))
        bound = INT64_MAX // 1000 if unit == "s" else INT64_MAX  # Parquet stores seconds as ms
        ticks = maybe_null(st.integers(-bound, bound) | st.integers(-(10**12), 10**12))
        arr = pa.array(ticks, pa.timestamp(unit, tz))
        good = None not in ticks
        return arr, [Fraction(v, PER_SECOND[unit]) for v in ticks] if good else None
    if kind == "date":
        days = maybe_null(st.integers(-(2**31), 2**31 - 1) | st.integers(-30_000, 30_000))
        arr = pa.array(days, pa.date32())
        return arr, [Fraction(d * 86_400) for d in days] if None not in days else None
    if kind == "decimal":
        values = maybe_null(st.decimals(-100, 100, places=2, allow_nan=False))
        return pa.array(values, pa.decimal128(5, 2)), [None if v is None else float(v) for v in values]
    if kind == "bool":
        return pa.array(maybe_null(st.booleans()), pa.bool_()), None
    return pa.nulls(n), [None] * n if role == "rating" else None


def ref_frame(values: dict[str, list[Any] | None], n: int) -> Expected:
    """Reference rows from per-role reference values (an all-null record is an error too)."""
    if any(v is None for v in values.values()):
        return ERROR
    user, item, time = values["user"], values["item"], values["time"]
    assert user is not None and item is not None and time is not None
    rating = values.get("rating") or [None] * n
    exact = [t if isinstance(t, Fraction) else None for t in time]
    if None in exact:  # numeric strings: the CSV rules
        times = ref_times(time)
        assert times is not None
        stamps, rows = times
    else:
        stamps = [math.floor(t) for t in exact]
        if all(t.denominator == 1 for t in exact):
            rows = list(range(n))
        else:
            order = sorted(range(n), key=lambda k: (exact[k], k))
            rows = [0] * n
            for r, k in enumerate(order):
                rows[k] = r
    return list(zip(user, item, stamps, rating, rows, strict=True))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.just(n), *(column(n, r) for r in ROLES))))
@example((1, (pa.array([1]), [1]), (pa.array([2]), [2]), (pa.nulls(1), None), (pa.array([1.0]), [1.0])))
@example(
    (  # a date in the year 5.8 million: the cast to microseconds used to panic inside polars
        1,
        (pa.array([1]), [1]),
        (pa.array([2]), [2]),
        (pa.array([2**31 - 1], pa.date32()), [Fraction((2**31 - 1) * 86_400)]),
        (pa.nulls(1), [None]),  # an all-null (Null-typed) rating column: no ratings, not an error
    )
)
@example(
    (  # nanosecond times 1 ns apart: used to be cut to microseconds and fall back to file order
        2,
        (pa.array([1, 1]), [1, 1]),
        (pa.array([1, 2]), [1, 2]),
        (pa.array([1_500, 1_001], pa.timestamp("ns")), [Fraction(1_500, 10**9), Fraction(1_001, 10**9)]),
        (pa.nulls(2), [None, None]),
    )
)
def test_parquet_columns_match_reference(drawn: tuple[Any, ...]) -> None:
    """Parquet tables with every column type (ints of all widths, huge uint64, strings, floats with NaN
    and inf, dates, timestamps of every unit and time zone, decimals, nulls): reference rows or an error."""
    n, *cols = drawn
    with scratch() as tmp:
        path = tmp / "t.parquet"
        pq.write_table(pa.table({name: arr for name, (arr, _) in zip("uitr", cols, strict=True)}), path)
        values = {role: ref for role, (_, ref) in zip(ROLES, cols, strict=True)}
        check(outcome(lambda p: read_table(p, TABLE), path), ref_frame(values, n))


ROLES = ("user", "item", "time", "rating")


def valid_parquet(path: Path) -> list[Row]:
    """A small valid interaction table (written with page checksums) and its rows."""
    table = pa.table(
        {
            "u": pa.array([3, 1, 2, 1], pa.int64()),
            "i": pa.array(["7", "8", "9", "10"]),
            "t": pa.array([date(2020, 1, 2), date(2020, 1, 1), date(2020, 1, 1), date(1969, 12, 31)]),
            "r": pa.array([1.0, None, 2.5, 4.0]),
        }
    )
    pq.write_table(table, path, write_page_checksum=True)
    day = 86_400
    return [
        (3, 7, 18263 * day, 1.0, 0),
        (1, 8, 18262 * day, None, 1),
        (2, 9, 18262 * day, 2.5, 2),
        (1, 10, -day, 4.0, 3),
    ]


@SETTINGS
@given(st.data())
def test_parquet_truncated_flipped_or_foreign(draw: st.DataObject) -> None:
    """A valid table truncated anywhere is an error; with a byte flipped it is an error or the same rows
    (every page carries a CRC-32); a non-Parquet payload or an empty file is an error."""
    with scratch() as tmp:
        path = tmp / "t.parquet"
        rows = valid_parquet(path)
        data = path.read_bytes()
        kind = draw.draw(st.sampled_from(["truncate", "flip", "foreign"]))
        if kind == "truncate":
            path.write_bytes(data[: draw.draw(st.integers(0, len(data) - 1))])
            assert isinstance(outcome(lambda p: read_table(p, TABLE), path), str)
        elif kind == "flip":
            i, mask = draw.draw(st.integers(0, len(data) - 1)), draw.draw(st.integers(1, 255))
            path.write_bytes(data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :])
            got = outcome(lambda p: read_table(p, TABLE), path)
            if not isinstance(got, str):
                assert canonical(got.rows()) == canonical(rows), (i, mask, got)
        else:
            path.write_bytes(draw.draw(st.binary(max_size=64) | st.just(b"u,i,t,r\n1,2,3,4\n")))
            assert isinstance(outcome(lambda p: read_table(p, TABLE), path), str)


def test_parquet_metadata_that_is_not_utf8_is_ignored() -> None:
    """Regression (Hypothesis seed 258833852090125514562876574803152572217): a flipped footer byte left
    invalid UTF-8 in the schema metadata, which pyarrow reads and polars panicked on."""
    with scratch() as tmp:
        path = tmp / "t.parquet"
        rows = valid_parquet(path)
        table = pq.read_table(path)
        field = table.schema.field("i").with_metadata({b"note": b"\xff\xfe"})
        bad = table.cast(table.schema.set(1, field)).replace_schema_metadata({b"k": b"\xc3\x28"})
        pq.write_table(bad, path, write_page_checksum=True)
        got = outcome(lambda p: read_table(p, TABLE), path)
        assert not isinstance(got, str) and canonical(got.rows()) == canonical(rows)


def test_parquet_missing_and_repeated_columns_and_no_rows() -> None:
    with scratch() as tmp:
        path = tmp / "t.parquet"
        for table in (
            pa.table({"u": [1], "i": [2], "r": [1.0]}),
            pa.Table.from_arrays(
                [pa.array([1]), pa.array([2]), pa.array([3]), pa.array([1])], names=list("uitu")
            ),
            pa.table(
                {"u": pa.array([], pa.int64()), "i": pa.array([], pa.int64()), "t": pa.array([], pa.int64())}
            ),
            pa.table({"u": [None], "i": [None], "t": [None]}),
        ):
            pq.write_table(table, path)
            assert isinstance(outcome(lambda p: read_table(p, NO_RATING), path), str), table


# --------------------------------------------------------------------------------------------- processed

SEQUENCES = pa.schema(
    [
        ("user_id", pa.int32()),
        ("train_items", pa.list_(pa.int32())),
        ("valid_item", pa.int32()),
        ("test_item", pa.int32()),
    ]
)


@st.composite
def processed(draw: st.DrawFn) -> tuple[int, list[list[int]], list[int], list[int]]:
    """A valid leave-one-out data set: catalogue size, train sequences, valid and test items."""
    num_items = draw(st.integers(1, 9))
    item = st.integers(1, num_items)
    users = draw(st.integers(1, 5))
    train = draw(st.lists(st.lists(item, min_size=1, max_size=4), min_size=users, max_size=users))
    valid = draw(st.lists(item, min_size=users, max_size=users))
    test = draw(st.lists(item, min_size=users, max_size=users))
    return num_items, train, valid, test


def write_processed(
    root: Path, num_items: int, train: list[list[int]], valid: list[int], test: list[int]
) -> Path:
    """``sequences.parquet`` and ``items.parquet`` as the kcore stage lays them out (with page CRCs)."""
    root.mkdir(exist_ok=True)
    users = pa.array(range(1, len(train) + 1), pa.int32())
    table = pa.Table.from_arrays(
        [users, pa.array(train, SEQUENCES[1].type), pa.array(valid), pa.array(test)], schema=SEQUENCES
    )
    pq.write_table(table, root / "sequences.parquet", write_page_checksum=True)
    items = pa.table(
        {"item_id": pa.array(range(1, num_items + 1), pa.int32()), "original_id": pa.array(range(num_items))}
    )
    pq.write_table(items, root / "items.parquet", write_page_checksum=True)
    return root


def load_outcome(root: Path) -> SequenceData | str:
    """The loaded data, or the InputError message (one line, naming one of the two files)."""
    try:
        return load_sequences(root)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith((f"{root / 'sequences.parquet'}:", f"{root / 'items.parquet'}:")), message
        return message


def same_data(
    got: SequenceData, num_items: int, train: list[list[int]], valid: list[int], test: list[int]
) -> bool:
    return (
        got.num_items == num_items
        and got.user_ids.tolist() == list(range(1, len(train) + 1))
        and [t.tolist() for t in got.train] == train
        and got.valid.tolist() == valid
        and got.test.tolist() == test
        and all(a.dtype == np.int64 for a in (got.user_ids, got.valid, got.test, *got.train))
    )


@SETTINGS
@given(processed())
def test_processed_round_trip(data: tuple[int, list[list[int]], list[int], list[int]]) -> None:
    with scratch() as tmp:
        got = load_outcome(write_processed(tmp / "processed", *data))
        assert isinstance(got, SequenceData) and same_data(got, *data)


def sequence_mutations(num_items: int, n: int) -> st.SearchStrategy[tuple[str, dict[str, pa.Array]]]:
    """Named replacements of ``sequences.parquet`` columns that make it invalid."""
    bad_item = st.sampled_from([0, -1, num_items + 1, 2**31 - 1, -(2**31)])
    big = st.sampled_from([2**40, -(2**40), 2**63 - 1])

    def one(values: list[Any], at: int, value: Any) -> list[Any]:
        return [value if k == at else v for k, v in enumerate(values)]

    at = st.integers(0, n - 1)
    users = list(range(1, n + 1))
    return st.one_of(
        st.tuples(at, bad_item).map(
            lambda a: ("valid out of range", {"valid_item": pa.array(one([1] * n, *a), pa.int32())})
        ),
        st.tuples(at, big).map(
            lambda a: ("test int64 huge", {"test_item": pa.array(one([1] * n, *a), pa.int64())})
        ),
        st.tuples(at, bad_item).map(
            lambda a: (
                "train out of range",
                {"train_items": pa.array(one([[1]] * n, a[0], [1, a[1]]), pa.list_(pa.int32()))},
            )
        ),
        at.map(lambda a: ("null valid", {"valid_item": pa.array(one([1] * n, a, None), pa.int32())})),
        at.map(lambda a: ("null user", {"user_id": pa.array(one(users, a, None), pa.int32())})),
        at.map(
            lambda a: ("null list", {"train_items": pa.array(one([[1]] * n, a, None), pa.list_(pa.int32()))})
        ),
        at.map(
            lambda a: (
                "null in list",
                {"train_items": pa.array(one([[1]] * n, a, [1, None]), pa.list_(pa.int32()))},
            )
        ),
        st.permutations(users)
        .filter(lambda p: list(p) != users)
        .map(lambda p: ("users unsorted", {"user_id": pa.array(p, pa.int32())})),
        st.sampled_from([[u - 1 for u in users], [u + 1 for u in users], [1] * n if n > 1 else [7]]).map(
            lambda u: ("users not dense", {"user_id": pa.array(u, pa.int32())})
        ),
        st.just(("string ids", {"valid_item": pa.array(["1"] * n)})),
        st.just(("float ids", {"test_item": pa.array([1.0] * n)})),
        st.just(("list of strings", {"train_items": pa.array([["1"]] * n)})),
        st.just(("items not a list", {"train_items": pa.array([1] * n, pa.int32())})),
        st.just(("bool user", {"user_id": pa.array([True] * n)})),
    )


@SETTINGS
@given(processed().flatmap(lambda d: st.tuples(st.just(d), sequence_mutations(d[0], len(d[1])))))
def test_processed_bad_columns_are_refused(drawn: tuple[Any, tuple[str, dict[str, pa.Array]]]) -> None:
    """Out-of-range, huge or null ids, non-dense users, wrong types: InputError naming sequences.parquet.

    Before: a null user_id loaded as -2**63 and a null train list as an empty one; float ids were
    truncated (1.5 -> 1), string and bool ids cast, unsorted users accepted, all silently; a non-digit
    string id raised ValueError, a non-list train_items AttributeError."""
    data, (_, replaced) = drawn
    with scratch() as tmp:
        root = write_processed(tmp / "processed", *data)
        table = pq.read_table(root / "sequences.parquet")
        for name, array in replaced.items():
            table = table.set_column(table.schema.get_field_index(name), name, array)
        pq.write_table(table, root / "sequences.parquet")
        got = load_outcome(root)
        assert isinstance(got, str) and got.startswith(str(root / "sequences.parquet")), got


@SETTINGS
@given(processed(), st.data())
def test_processed_files_truncated_flipped_foreign_or_missing(
    data: tuple[int, list[list[int]], list[int], list[int]], draw: st.DataObject
) -> None:
    """Either file cut short, replaced by foreign bytes, missing, stripped of a column or with bytes
    flipped: InputError, or (a harmless flip) exactly the same data."""
    with scratch() as tmp:
        root = write_processed(tmp / "processed", *data)
        path = root / draw.draw(st.sampled_from(["sequences.parquet", "items.parquet"]))
        raw = path.read_bytes()
        kind = draw.draw(st.sampled_from(["truncate", "flip", "foreign", "missing", "drop column"]))
        if kind == "truncate":
            path.write_bytes(raw[: draw.draw(st.integers(0, len(raw) - 1))])
        elif kind == "flip":
            buffer = bytearray(raw)
            for _ in range(draw.draw(st.integers(1, 3))):
                buffer[draw.draw(st.integers(0, len(raw) - 1))] ^= draw.draw(st.integers(1, 255))
            path.write_bytes(bytes(buffer))
        elif kind == "foreign":
            path.write_bytes(draw.draw(st.binary(max_size=64) | st.just(b"PAR1PAR1")))
        elif kind == "missing":
            path.unlink()
        elif path.name == "sequences.parquet":
            table = pq.read_table(path)
            pq.write_table(table.drop_columns([draw.draw(st.sampled_from(table.column_names))]), path)
        else:
            return  # items.parquet: only its row count is read
        got = load_outcome(root)
        if kind == "flip" and not isinstance(got, str):
            assert same_data(got, *data), "a flipped byte changed the data silently"
        else:
            assert isinstance(got, str), got


def test_processed_without_users_is_refused() -> None:
    """Zero users used to load as an empty data set."""
    with scratch() as tmp:
        root = write_processed(tmp / "processed", 3, [[1]], [1], [1])
        pq.write_table(pq.read_table(root / "sequences.parquet").slice(0, 0), root / "sequences.parquet")
        assert load_outcome(root) == f"{root / 'sequences.parquet'}: no users"
