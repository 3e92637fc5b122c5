"""Which training instances an export scores: every one of the pool, or a drawn subset (ALKDRec asks the
LLM about a budget of instances only). Written by ``stages/select_instances.py``, read by
``stages/export_logits.py``.

File format (JSON, one object):

    {"version": 1, "method": "all" | "alkdrec", "pool": N,
     "instances": null | [[user_id, position], ...]}   # null = the whole pool; else in draw order

plus free-form ``"details"`` (the draw's parameters and difficulty ranks) for inspection. The pool is the
train split's instances of ``export.instances_per_user`` (``data/instances.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llmd4rec_core.atomic import write_json
from llmd4rec_core.data.instances import Instances
from llmd4rec_core.errors import InputError

VERSION = 1


def selection_record(
    method: str, pool: Instances, drawn: np.ndarray | None, details: dict[str, Any]
) -> dict[str, Any]:
    """The JSON object of a selection: ``drawn`` [B] indices into ``pool`` in draw order, None = all."""
    pairs = None
    if drawn is not None:
        pairs = [[int(pool.user_id[i]), int(pool.position[i])] for i in drawn]
    return {"version": VERSION, "method": method, "pool": len(pool), "instances": pairs, "details": details}


def write_selection(path: str | Path, record: dict[str, Any]) -> None:
    write_json(path, record)


def read_selection(path: str | Path) -> dict[str, Any]:
    """Parse and check a selection file's structure; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: selection file not found")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}: expected a JSON object")
    if record.get("version") != VERSION:
        raise InputError(f"{path}: version: expected {VERSION}, got {record.get('version')!r}")
    if record.get("method") not in ("all", "alkdrec"):
        raise InputError(f"{path}: method: expected 'all' or 'alkdrec', got {record.get('method')!r}")
    pool = record.get("pool")
    if not isinstance(pool, int) or isinstance(pool, bool) or pool < 0:
        raise InputError(f"{path}: pool: expected a non-negative integer, got {pool!r}")
    pairs = record.get("instances")
    if pairs is not None:
        if not isinstance(pairs, list):
            raise InputError(f"{path}: instances: expected null or a list of [user_id, position]")
        for n, pair in enumerate(pairs):
            ok = isinstance(pair, list) and len(pair) == 2
            if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
                raise InputError(f"{path}: instances[{n}]: expected [user_id, position], got {pair!r}")
    return record


def apply_selection(path: str | Path, record: dict[str, Any], pool: Instances) -> Instances:
    """The instances of ``pool`` the selection names, in its order (all of them for ``null``).

    Raises :class:`InputError` when the file was made for another pool (size, or an unknown pair)."""
    if record["pool"] != len(pool):
        raise InputError(
            f"{path}: pool: the selection was drawn from {record['pool']} instances, the export's pool has "
            f"{len(pool)} (export.instances_per_user or data/processed changed: rerun select_instances)"
        )
    if record["instances"] is None:
        return pool
    where = {(int(u), int(p)): i for i, (u, p) in enumerate(zip(pool.user_id, pool.position, strict=True))}
    index = np.empty(len(record["instances"]), dtype=np.int64)
    for n, (u, p) in enumerate(record["instances"]):
        if (u, p) not in where:
            raise InputError(
                f"{path}: instances[{n}]: (user_id {u}, position {p}) is not in the export's pool"
            )
        index[n] = where[(u, p)]
    if len(np.unique(index)) != len(index):
        raise InputError(f"{path}: instances: an instance is listed twice")
    return pool.take(index)
