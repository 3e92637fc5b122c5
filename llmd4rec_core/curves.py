"""Training curves as TSV (one row per epoch), the format DVC plots read."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from llmd4rec_core.atomic import atomic_path


def write_curve(path: str | os.PathLike[str], rows: Sequence[dict[str, float]], digits: int = 6) -> None:
    """Atomically write ``rows`` (same keys each) as a tab-separated table, floats rounded."""
    if not rows:
        raise ValueError("no rows to write")
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {k: round(v, digits) if isinstance(v, float) else v for k, v in r.items()} for r in rows
        )
