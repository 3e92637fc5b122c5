"""Hostile input for the logit-export reader (issue 6), as hypothesis properties.

A file written by ``write_logits`` reads back exactly; the same file truncated, with bytes flipped, with
a foreign payload, or rewritten with a wrong schema, metadata or nulls, raises a one-line
:class:`InputError` naming the file, or (a flip in bytes nobody reads) returns exactly the same export.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from hypothesis import example, given, settings

from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import (
    META_KEY,
    LogitRows,
    LogitsFile,
    compress,
    read_logits,
    read_meta,
    write_logits,
)

SETTINGS = settings(max_examples=60, deadline=None)
INT32 = st.integers(-(2**31), 2**31 - 1)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per hypothesis example."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@st.composite
def exports(draw: st.DrawFn) -> tuple[LogitRows, dict[str, Any]]:
    """Small valid exports: any ids and positions (duplicates too), 1 <= K <= I, odd metadata strings."""
    n, num_items = draw(st.integers(0, 6)), draw(st.integers(1, 12))
    top_k = draw(st.integers(1, num_items))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-30, 1.0, 1e30]))
    logits = torch.randn(n, num_items, generator=generator) * scale
    if draw(st.booleans()):
        logits = logits.round()  # ties
    ints = st.lists(INT32, min_size=n, max_size=n).map(lambda v: np.array(v, np.int32))
    rows = LogitRows(
        user_id=draw(ints),
        position=draw(ints),
        target=draw(ints),
        target_rank=draw(ints),
        **compress(logits, top_k),
    )
    meta = {
        "producer": draw(st.text(max_size=8)),
        "round": draw(st.integers(0, 2**40)),
        "split": draw(st.sampled_from(["train", "valid", "test"])),
        "params_sha256": draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
        "extra": draw(st.none() | st.floats(allow_nan=False) | st.lists(st.integers(), max_size=3)),
    }
    return rows, meta


def sorted_rows(rows: LogitRows) -> LogitRows:
    return rows.take(np.lexsort((rows.position, rows.user_id)))


def same_export(got: LogitsFile, rows: LogitRows, meta: dict[str, Any]) -> bool:
    """Equal metadata, and every array equal in value, dtype and shape."""
    want = sorted_rows(rows)
    full_meta = {"schema_version": 1, "top_k": rows.top_items.shape[1], "num_items": rows.tail_codes.shape[1]}
    if got.meta != full_meta | meta:
        return False
    for name, expected in vars(want).items():
        array = getattr(got.rows, name)
        if (
            array.dtype != expected.dtype
            or array.shape != expected.shape
            or not np.array_equal(array, expected)
        ):
            return False
    return True


def refused(read: Callable[[], object], path: Path) -> str:
    """The message of the InputError ``read`` must raise (one line, naming ``path``)."""
    try:
        result = read()
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{path}:"), message
        return message
    raise AssertionError(f"read without error: {result}")


def read_either(path: Path, data: bytes, via_source: bool) -> LogitsFile:
    """``read_logits`` from the file itself, or from a file object (as ``llmd4rec logits --rev`` does)."""
    return read_logits(path, source=io.BytesIO(data)) if via_source else read_logits(path)


def written(tmp: Path, export: tuple[LogitRows, dict[str, Any]]) -> tuple[Path, bytes]:
    path = tmp / "train.parquet"
    write_logits(path, *export)
    return path, path.read_bytes()


@SETTINGS
@given(exports(), st.booleans())
def test_round_trip_is_exact(export: tuple[LogitRows, dict[str, Any]], via_source: bool) -> None:
    """What ``write_logits`` writes reads back exactly (rows sorted by user_id, position)."""
    rows, meta = export
    with scratch() as tmp:
        path, data = written(tmp, export)
        if len(rows) == 0:
            assert "has no rows" in refused(lambda: read_either(path, data, via_source), path)
            return
        assert same_export(read_either(path, data, via_source), rows, meta)
        assert read_meta(path) == read_either(path, data, via_source).meta


@SETTINGS
@given(exports().filter(lambda e: len(e[0]) > 0), st.data())
def test_truncated_file_is_refused(export: tuple[LogitRows, dict[str, Any]], draw: st.DataObject) -> None:
    """Cut anywhere (the footer lives at the end): both readers raise InputError naming the file."""
    with scratch() as tmp:
        path, data = written(tmp, export)
        cut = draw.draw(st.integers(0, len(data) - 1))
        path.write_bytes(data[:cut])
        via_source = draw.draw(st.booleans())
        refused(lambda: read_either(path, data[:cut], via_source), path)
        refused(lambda: read_meta(path), path)


@settings(max_examples=100, deadline=None)
@given(exports().filter(lambda e: len(e[0]) > 0), st.data())
def test_flipped_bytes_are_refused_or_harmless(
    export: tuple[LogitRows, dict[str, Any]], draw: st.DataObject
) -> None:
    """1-3 bytes XOR-ed anywhere: an InputError naming the file, or exactly the same export.

    Before page checksums, flips inside data pages silently changed logits and ids (678 of 6428
    single-byte flips of a small export), and flips in the footer's Arrow-schema copy of the metadata
    changed ``producer``/``split``/``params_sha256``; nulls from flipped definition levels escaped as
    ``ArrowInvalid``, and a flipped column name as ``UnicodeDecodeError``.
    """
    rows, meta = export
    with scratch() as tmp:
        path, data = written(tmp, export)
        (tmp / "ok.parquet").write_bytes(data)
        buffer = bytearray(data)
        for _ in range(draw.draw(st.integers(1, 3))):
            buffer[draw.draw(st.integers(0, len(data) - 1))] ^= draw.draw(st.integers(1, 255))
        path.write_bytes(bytes(buffer))
        via_source = draw.draw(st.booleans())
        try:
            got = read_either(path, bytes(buffer), via_source)
        except InputError:
            refused(lambda: read_either(path, bytes(buffer), via_source), path)
        else:
            assert same_export(got, rows, meta), "a flipped byte changed the export silently"
        try:
            footer = read_meta(path)
        except InputError:
            refused(lambda: read_meta(path), path)
        else:
            assert footer == json.loads(pq.read_schema(tmp / "ok.parquet").metadata[META_KEY])


FOREIGN = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.text(min_size=1, max_size=80).map(str.encode),
    st.binary(max_size=64).map(lambda b: b"PAR1" + b + b"PAR1"),
    st.binary(max_size=64).map(lambda b: b"PAR1" + b + len(b).to_bytes(4, "little") + b"PAR1"),
)


@SETTINGS
@given(FOREIGN)
@example(b"PAR1\x00\x00\x00\x00PAR1")
@example(b"user_id,position\n1,2\n")
def test_non_parquet_payload_is_refused(payload: bytes) -> None:
    with scratch() as tmp:
        path = tmp / "train.parquet"
        path.write_bytes(payload)
        refused(lambda: read_logits(path), path)
        refused(lambda: read_meta(path), path)
        refused(lambda: read_logits(path, source=io.BytesIO(payload)), path)


def test_missing_empty_and_directory_are_refused() -> None:
    with scratch() as tmp:
        refused(lambda: read_logits(tmp / "none.parquet"), tmp / "none.parquet")
        refused(lambda: read_meta(tmp / "none.parquet"), tmp / "none.parquet")
        (tmp / "empty.parquet").write_bytes(b"")
        refused(lambda: read_logits(tmp / "empty.parquet"), tmp / "empty.parquet")
        refused(lambda: read_logits(tmp), tmp)
        refused(lambda: read_logits(tmp / "x", source=io.BytesIO(b"")), tmp / "x")


def replace_column(table: pa.Table, name: str, array: pa.Array | pa.ChunkedArray) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, array.type), array).replace_schema_metadata(
        table.schema.metadata
    )


def with_meta(table: pa.Table, raw: bytes | None) -> pa.Table:
    return table.replace_schema_metadata(None if raw is None else {META_KEY: raw})


COLUMNS = [
    "user_id",
    "position",
    "target",
    "target_rank",
    "top_items",
    "top_logits",
    "tail_min",
    "tail_step",
    "tail_codes",
]
BAD_META_VALUES = ["3", 3.5, -1, 0, True, None, 2**40, [3], {"k": 3}]


@st.composite
def schema_mutation(draw: st.DrawFn, table: pa.Table) -> tuple[str, pa.Table]:
    """A named way to make ``table`` a non-export: columns dropped/renamed/retyped/reordered/nulled, or
    the metadata missing, not JSON, not an object, incomplete, of another version, or with bad sizes."""
    meta = json.loads(table.schema.metadata[META_KEY])
    name = draw(st.sampled_from(COLUMNS))
    column = table.column(name)
    kind = draw(
        st.sampled_from(
            [
                "drop",
                "rename",
                "retype",
                "reorder",
                "null",
                "extra",
                "no_meta",
                "not_json",
                "not_object",
                "lacks",
                "version",
                "size",
            ]
        )
    )
    if kind == "drop":
        return kind, table.drop_columns([name])
    if kind == "rename":
        return kind, table.rename_columns([draw(st.text(max_size=8)) if c == name else c for c in COLUMNS])
    if kind == "retype":
        options = {
            "top_items": [
                pa.list_(pa.int32()),
                pa.list_(pa.int64(), meta["top_k"]),
                pa.large_list(pa.int32()),
            ],
            "top_logits": [pa.list_(pa.float32()), pa.list_(pa.float64(), meta["top_k"])],
            "tail_codes": [pa.binary(), pa.large_binary()],
        }.get(name, [pa.int64(), pa.float64(), pa.float32(), pa.int16(), pa.string()])
        if name in ("tail_min", "tail_step"):
            options = [pa.float64(), pa.float16(), pa.int32(), pa.string()]
        target = draw(st.sampled_from(options))
        try:
            retyped = column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            retyped = pa.nulls(len(column), target)
        return kind, replace_column(table, name, retyped)
    if kind == "reorder":
        order = draw(st.permutations(COLUMNS).filter(lambda p: list(p) != COLUMNS))
        return kind, table.select(order)
    if kind == "null":
        if pa.types.is_fixed_size_list(column.type):
            flat = column.combine_chunks()
            values = flat.flatten().to_pylist()
            values[draw(st.integers(0, len(values) - 1))] = None
            arr = pa.FixedSizeListArray.from_arrays(pa.array(values, column.type.value_type), meta["top_k"])
        else:
            values = column.to_pylist()
            values[draw(st.integers(0, len(values) - 1))] = None
            arr = pa.array(values, column.type)
        return kind, replace_column(table, name, arr)
    if kind == "extra":
        return kind, table.append_column("extra", pa.array(range(len(table)), pa.int32()))
    if kind == "no_meta":
        return kind, with_meta(table, None)
    if kind == "not_json":
        return kind, with_meta(table, draw(st.binary(max_size=20).filter(lambda b: not _is_json(b))))
    if kind == "not_object":
        value = draw(
            st.sampled_from(['"text"', "5", "[1, 2]", "null", "true", '[["producer", "m"]]', '"ab"'])
        )
        return kind, with_meta(table, value.encode())
    if kind == "lacks":
        key = draw(
            st.sampled_from(
                ["schema_version", "producer", "round", "split", "top_k", "num_items", "params_sha256"]
            )
        )
        return kind, with_meta(table, json.dumps({k: v for k, v in meta.items() if k != key}).encode())
    if kind == "version":
        version = draw(st.sampled_from([0, 2, "1", None, 1.5, [1]]))
        return kind, with_meta(table, json.dumps(meta | {"schema_version": version}).encode())
    key = draw(st.sampled_from(["top_k", "num_items"]))
    value = draw(st.sampled_from(BAD_META_VALUES) | st.integers(-5, 40).filter(lambda v: v != meta[key]))
    return kind, with_meta(table, json.dumps(meta | {key: value}).encode())


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


@settings(max_examples=100, deadline=None)
@given(exports().filter(lambda e: len(e[0]) > 0), st.data())
def test_wrong_schema_metadata_or_nulls_are_refused(
    export: tuple[LogitRows, dict[str, Any]], draw: st.DataObject
) -> None:
    """Every way of not being an export is an InputError (used to: non-object JSON metadata raised
    TypeError/ValueError from ``dict()``, a string ``top_k`` a TypeError from pyarrow, and nulls turned
    int32 columns into float64 arrays with NaN)."""
    with scratch() as tmp:
        path, _ = written(tmp, export)
        kind, table = draw.draw(schema_mutation(pq.read_table(path)))
        pq.write_table(table, path)
        message = refused(lambda: read_logits(path), path)
        if kind not in ("null",):  # nulls are data: the footer alone is a valid export
            refused(lambda: read_meta(path), path)
        assert message


def test_the_two_footer_copies_of_the_metadata_must_agree() -> None:
    """pyarrow reads the metadata from the footer's Arrow-schema copy; the plain key-value copy is
    compared with it, so an edit (or flip) in either one is an error rather than different metadata."""
    with scratch() as tmp:
        rows = LogitRows(
            user_id=np.array([1], np.int32),
            position=np.array([1], np.int32),
            target=np.array([1], np.int32),
            target_rank=np.array([1], np.int32),
            **compress(torch.tensor([[0.5, 2.0, -1.0]]), 2),
        )
        path, data = written(
            tmp, (rows, {"producer": "m", "round": 1, "split": "train", "params_sha256": "ab"})
        )
        plain = b'"split": "train"'
        assert data.count(plain) == 1  # the plain copy; the Arrow copy is base64
        path.write_bytes(data.replace(plain, b'"split": "tRain"'))  # same length: thrift stays valid
        assert "two copies" in refused(lambda: read_logits(path), path)
        assert "two copies" in refused(lambda: read_meta(path), path)
