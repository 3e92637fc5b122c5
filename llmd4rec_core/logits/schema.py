"""The logit-export Parquet format (one row per instance), its metadata, and reconstruction.

Columns (documented in the README; readable with plain polars / duckdb):

=================  ==============================  =================================================
``user_id``        int32                           dense user id (instance key, with ``position``)
``position``       int32                           index of the target in the user's full sequence
``target``         int32                           target item id (1..num_items)
``target_rank``    int32                           pessimistic rank of the target, history masked
``top_items``      fixed_size_list<int32>[K]       the K highest-scored items, best first (ties: lower id)
``top_logits``     fixed_size_list<float32>[K]     their exact logits
``tail_min``       float32                         8-bit code 0 of ``tail_codes``
``tail_step``      float32                         logit step between consecutive codes
``tail_codes``     fixed_size_binary[num_items]    every item's logit, uint8-quantised on
                                                   [row minimum, K-th logit]; byte j = item j + 1
=================  ==============================  =================================================

Rows are sorted by (user_id, position). :func:`full_logits` rebuilds a [N, num_items] logit matrix: the
dequantised codes with the top-K overwritten by their exact values. The top-K carry almost all the
probability mass at T <= 1 and the rest is within half a step of the truth, so the KL at any temperature
in (0, 1] computed from the file stays within 1 % of the full-catalogue KL (measured in docs/results.md).

File metadata key ``llmd4rec`` holds JSON: schema version, producer model, round, split, K, num_items,
SHA-256 of the producer's params, dataset and raw-data SHA-256. Files are written atomically and
deterministically (same logits -> same bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from llmd4rec_core.atomic import atomic_path
from llmd4rec_core.errors import InputError

SCHEMA_VERSION = 1
META_KEY = b"llmd4rec"
TAIL_LEVELS = 255  # uint8 codes 0..255
ROW_GROUP = 4096
REQUIRED_META = ("schema_version", "producer", "round", "split", "top_k", "num_items", "params_sha256")


def arrow_schema(top_k: int, num_items: int) -> pa.Schema:
    return pa.schema(
        [
            ("user_id", pa.int32()),
            ("position", pa.int32()),
            ("target", pa.int32()),
            ("target_rank", pa.int32()),
            ("top_items", pa.list_(pa.int32(), top_k)),
            ("top_logits", pa.list_(pa.float32(), top_k)),
            ("tail_min", pa.float32()),
            ("tail_step", pa.float32()),
            ("tail_codes", pa.binary(num_items)),
        ]
    )


@dataclass(frozen=True)
class LogitRows:
    """A block of exported rows as arrays (N rows, K top items, I items)."""

    user_id: np.ndarray  # [N] int32
    position: np.ndarray  # [N] int32
    target: np.ndarray  # [N] int32
    target_rank: np.ndarray  # [N] int32
    top_items: np.ndarray  # [N, K] int32
    top_logits: np.ndarray  # [N, K] float32
    tail_min: np.ndarray  # [N] float32
    tail_step: np.ndarray  # [N] float32
    tail_codes: np.ndarray  # [N, I] uint8

    def __len__(self) -> int:
        return len(self.user_id)

    def take(self, index: np.ndarray) -> LogitRows:
        return LogitRows(**{k: v[index] for k, v in vars(self).items()})


def compress(logits: torch.Tensor, top_k: int) -> dict[str, np.ndarray]:
    """Top-K (exact) and 8-bit tail codes of a float32 logit block [N, I] (items 1..I).

    Sorting is stable and descending, so ties keep the lower item id first (deterministic).
    """
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    order = torch.sort(logits, dim=1, descending=True, stable=True).indices[:, :top_k]  # [N, K]
    top = logits.gather(1, order)  # [N, K]
    lo = logits.min(dim=1).values  # [N]
    hi = top[:, -1]  # [N] the K-th logit
    step = ((hi - lo) / TAIL_LEVELS).clamp_min(torch.finfo(torch.float32).tiny)
    codes = torch.round((torch.minimum(logits, hi[:, None]) - lo[:, None]) / step[:, None])
    return {
        "top_items": (order + 1).to(torch.int32).cpu().numpy(),
        "top_logits": top.cpu().numpy().astype(np.float32),
        "tail_min": lo.cpu().numpy().astype(np.float32),
        "tail_step": step.cpu().numpy().astype(np.float32),
        "tail_codes": codes.clamp(0, TAIL_LEVELS).to(torch.uint8).cpu().numpy(),
    }


def full_logits(rows: LogitRows) -> torch.Tensor:
    """[N, I] float32 logits of items 1..I: dequantised tail, exact top-K."""
    codes = torch.tensor(rows.tail_codes, dtype=torch.float32)  # copies (read-only Arrow buffers)
    out = torch.tensor(rows.tail_min)[:, None] + codes * torch.tensor(rows.tail_step)[:, None]
    out.scatter_(1, torch.tensor(rows.top_items, dtype=torch.int64) - 1, torch.tensor(rows.top_logits))
    return out


def to_table(rows: LogitRows, meta: dict[str, Any]) -> pa.Table:
    n, k = rows.top_items.shape
    num_items = rows.tail_codes.shape[1]
    schema = arrow_schema(k, num_items)
    codes = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(num_items), n, [None, pa.py_buffer(np.ascontiguousarray(rows.tail_codes).tobytes())]
    )
    columns = [
        pa.array(rows.user_id, pa.int32()),
        pa.array(rows.position, pa.int32()),
        pa.array(rows.target, pa.int32()),
        pa.array(rows.target_rank, pa.int32()),
        pa.FixedSizeListArray.from_arrays(pa.array(rows.top_items.reshape(-1), pa.int32()), k),
        pa.FixedSizeListArray.from_arrays(pa.array(rows.top_logits.reshape(-1), pa.float32()), k),
        pa.array(rows.tail_min, pa.float32()),
        pa.array(rows.tail_step, pa.float32()),
        codes,
    ]
    full_meta = {"schema_version": SCHEMA_VERSION, "top_k": k, "num_items": num_items, **meta}
    schema = schema.with_metadata({META_KEY: json.dumps(full_meta, sort_keys=True).encode()})
    return pa.Table.from_arrays(columns, schema=schema)


def write_logits(path: str | Path, rows: LogitRows, meta: dict[str, Any]) -> None:
    """Atomically write ``rows`` (sorted by user_id, position) with ``meta`` to Parquet (zstd)."""
    order = np.lexsort((rows.position, rows.user_id))
    table = to_table(rows.take(order), meta)
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            row_group_size=ROW_GROUP,
            write_statistics=False,
            write_page_checksum=True,  # CRC-32 of every page: a flipped byte is an error, not new data
        )


@dataclass(frozen=True)
class LogitsFile:
    path: Path
    meta: dict[str, Any]
    rows: LogitRows


def check_schema(schema: pa.Schema, path: Path) -> dict[str, Any]:
    """The ``llmd4rec`` metadata of an export's schema, after checking the columns match it."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(f"{path}: not an llmd4rec logits export (no '{META_KEY.decode()}' metadata)")
    try:
        meta = json.loads(raw)
    except ValueError:
        raise InputError(f"{path}: '{META_KEY.decode()}' metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: '{META_KEY.decode()}' metadata is not a JSON object")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise InputError(f"{path}: metadata lacks {', '.join(missing)}")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema_version {meta['schema_version']} (this code reads {SCHEMA_VERSION})"
        )
    for key in ("top_k", "num_items"):
        value = meta[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
            raise InputError(f"{path}: metadata {key} {value!r} is not a positive integer")
    if not schema.remove_metadata().equals(arrow_schema(meta["top_k"], meta["num_items"])):
        raise InputError(f"{path}: columns do not match the logits schema (llmd4rec_core/logits/schema.py)")
    return meta


def _open(source: Any, path: Path) -> tuple[pa.Schema, pq.ParquetFile]:
    """The Arrow schema of a Parquet file (footer only) after checking its two metadata copies agree.

    pyarrow keeps the ``llmd4rec`` metadata twice in the footer: in the serialised Arrow schema (what
    ``schema.metadata`` returns) and as a plain Parquet key-value pair. The footer has no checksum, so
    a byte flipped inside either copy would otherwise pass as different (valid-looking) metadata.
    """
    try:
        parquet = pq.ParquetFile(source, page_checksum_verification=True)
        schema = parquet.schema_arrow
        plain = (parquet.metadata.metadata or {}).get(META_KEY)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # a flipped byte in a column name
        raise InputError(f"{path}: not a readable Parquet file ({exc})".splitlines()[0]) from None
    if plain is not None and plain != (schema.metadata or {}).get(META_KEY):
        raise InputError(
            f"{path}: corrupt footer (its two copies of the '{META_KEY.decode()}' metadata differ)"
        )
    return schema, parquet


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: logits file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: logits file is empty")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of an export, read from the footer only."""
    path = Path(path)
    _check_file(path)
    schema, parquet = _open(path, path)
    parquet.close()
    return check_schema(schema, path)


def read_logits(path: str | Path, source: Any = None) -> LogitsFile:
    """Read an export; ``source`` (a file object, e.g. from ``dvc.api.open``) replaces the bytes of
    ``path``, which then only names the file in messages."""
    path = Path(path)
    if source is None:
        _check_file(path)
    schema, parquet = _open(path if source is None else source, path)
    with parquet:
        meta = check_schema(schema, path)
        table = _read_table(parquet, path)
    if table.num_rows == 0:
        raise InputError(f"{path}: logits file has no rows")
    for name in table.column_names:
        if nulls := _null_count(table.column(name)):
            raise InputError(f"{path}: column {name} has {nulls} null value(s)")
    k, num_items = meta["top_k"], meta["num_items"]
    codes = table.column("tail_codes").combine_chunks()
    code_bytes = np.frombuffer(codes.buffers()[1], np.uint8)
    start = codes.offset * num_items
    rows = LogitRows(
        user_id=table.column("user_id").to_numpy(),
        position=table.column("position").to_numpy(),
        target=table.column("target").to_numpy(),
        target_rank=table.column("target_rank").to_numpy(),
        top_items=_fixed_list(table, "top_items", k),
        top_logits=_fixed_list(table, "top_logits", k),
        tail_min=table.column("tail_min").to_numpy(),
        tail_step=table.column("tail_step").to_numpy(),
        tail_codes=code_bytes[start : start + table.num_rows * num_items].reshape(-1, num_items),
    )
    return LogitsFile(path=path, meta=meta, rows=rows)


def _read_table(parquet: pq.ParquetFile, path: Path) -> pa.Table:
    """Every row group; a page whose CRC-32 does not match (or that does not decode) is an error."""
    try:
        return parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: truncated or corrupt Parquet ({exc})".splitlines()[0]) from None


def _null_count(column: pa.ChunkedArray) -> int:
    """Nulls in a column, including inside fixed-size lists (an export has none)."""
    arr = column.combine_chunks()
    inner = arr.flatten().null_count if pa.types.is_fixed_size_list(arr.type) else 0
    return arr.null_count + inner


def _fixed_list(table: pa.Table, name: str, k: int) -> np.ndarray:
    arr = table.column(name).combine_chunks()
    return arr.flatten().to_numpy().reshape(-1, k)
