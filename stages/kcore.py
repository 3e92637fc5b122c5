"""DVC stage ``kcore``: raw interactions -> dedup -> k-core -> dense ids -> leave-one-out ``data/processed``.

Reads ``params.data`` only. The raw file is found in ``--raw-dir``, else ``$LLMD4REC_DATA_MIRROR``, else
downloaded (see :mod:`llmd4rec_core.data.sources`). Bad input exits with code 2 and one ``error:`` line.
"""

from __future__ import annotations

import typer

from llmd4rec_core.data.kcore import Counts, Filtered, process, resolve_dedup
from llmd4rec_core.data.readers import read_interactions
from llmd4rec_core.data.sources import get_dataset, locate
from llmd4rec_core.data.splits import build_stats, leave_one_out, write_processed
from stages._common import one_line_errors, stage_params

PARAMS = ("data",)

app = typer.Typer(add_completion=False, help=__doc__)


def _fmt(counts: Counts) -> str:
    return f"{counts.users:,} users / {counts.items:,} items / {counts.interactions:,} interactions"


def _summary(name: str, path: str, filtered: Filtered, k: int, stats: dict[str, object]) -> str:
    return "\n".join(
        [
            f"kcore: {name} from {path}",
            f"  raw:          {_fmt(filtered.raw)}",
            f"  after dedup:  {_fmt(filtered.deduped)}" + ("" if filtered.dedup else " (dedup off)"),
            f"  after {k}-core: {_fmt(filtered.kcore)} ({filtered.iterations} removing passes)",
            f"  repeats kept: {stats['repeat_interactions']:,}; "
            f"users with test item in history: {stats['users_with_test_item_in_history']:,}",
        ]
    )


@app.command()
@one_line_errors
def main(params_file: str = "params.yaml", out: str = "data/processed", raw_dir: str = "data/raw") -> None:
    """Filter the configured dataset and write the processed directory ``out``."""
    data = stage_params(PARAMS, params_file).data
    dataset = get_dataset(data)
    path, sha256 = locate(dataset.file, raw_dir)
    frame = read_interactions(path, dataset.kind, data.table)
    filtered = process(frame, data.kcore, resolve_dedup(data.dedup, dataset.kind))
    sequences = leave_one_out(filtered)
    stats = build_stats(filtered, sequences, dataset.name, dataset.file.rel_path, sha256, data.kcore)
    write_processed(out, filtered, sequences, stats)
    print(_summary(dataset.name, str(path), filtered, data.kcore, stats))
    print(f"  wrote {out}")


if __name__ == "__main__":
    app()
