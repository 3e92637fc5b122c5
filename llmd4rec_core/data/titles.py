"""Item titles for prompts with ``llm.item_text: title`` (registered side files, e.g. Beauty's)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from llmd4rec_core.data.sources import locate_side_file
from llmd4rec_core.errors import InputError

TITLE_FILES = {"beauty": "beauty_titles"}  # dataset -> SIDE_FILES entry (tsv: s3rec_item_id, asin, title)


def item_titles(processed_dir: str | Path, dataset: str) -> list[str]:
    """Titles indexed by dense item id (index 0 = padding, ""); items without a title get ""."""
    if dataset not in TITLE_FILES:
        raise InputError(f"llm.item_text: title: no item titles registered for dataset {dataset!r}")
    path = locate_side_file(TITLE_FILES[dataset])
    try:
        table = pl.read_csv(path, separator="\t", quote_char=None, infer_schema=False)
        mapping = dict(zip(table["s3rec_item_id"].cast(pl.Int64), table["title"].fill_null(""), strict=True))
    except (pl.exceptions.PolarsError, KeyError) as exc:
        raise InputError(f"{path}: unreadable title table ({exc})".splitlines()[0]) from None
    original = pq.read_table(Path(processed_dir) / "items.parquet").column("original_id").to_pylist()
    return [""] + [mapping.get(o, "") for o in original]
