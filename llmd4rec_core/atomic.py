"""Atomic output helpers: write to a temporary sibling, then rename, so no half-written file survives."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``.

    Works for files and directories. On any exception the temporary path is removed and ``target`` is
    left as it was. A directory being replaced is first renamed aside, so at every moment ``target`` is
    either the complete old or the complete new version (never a mix).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp_target = tmp / target.name
    try:
        yield tmp_target
        if not tmp_target.exists():
            raise FileNotFoundError(f"atomic write produced nothing for {target}")
        if target.is_dir() and not target.is_symlink():
            os.replace(target, tmp / "previous")  # removed with tmp below
        os.replace(tmp_target, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def json_text(obj: Any) -> str:
    """``obj`` as sorted, indented JSON with a final newline (byte-stable for equal inputs)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as :func:`json_text`."""
    with atomic_path(target) as tmp:
        tmp.write_text(json_text(obj))
