"""``llmd4rec logits show|diff``: inspect logit exports (local files or versions from git revisions)."""

from __future__ import annotations

import io
from pathlib import Path

import typer

from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.inspect import diff_exports, show_user
from llmd4rec_core.logits.schema import LogitsFile, read_logits
from stages._common import one_line_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def open_export(path: str, rev: str | None) -> LogitsFile:
    """A local export, or the version of ``path`` at git revision ``rev`` through ``dvc.api.open``."""
    if rev is None:
        return read_logits(path)
    import dvc.api  # imported lazily: slow, and only needed for revisions

    try:
        with dvc.api.open(path, rev=rev, mode="rb") as fh:
            data = fh.read()
    except Exception as exc:  # dvc raises many types (missing rev, path, cache); all are input problems
        raise InputError(
            f"{path}@{rev}: cannot open through DVC ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    return read_logits(f"{path}@{rev}", source=io.BytesIO(data))


@app.command("show")
@one_line_errors
def show(
    file: str = typer.Argument(..., help="logits Parquet file"),
    user: int = typer.Option(..., "--user", help="dense user id"),
    temperature: float = typer.Option(1.0, "--temperature", help="softmax temperature T > 0"),
    top: int = typer.Option(10, "--top", help="items to list"),
    rev: str | None = typer.Option(None, "--rev", help="read the file as of this git revision (DVC)"),
    data_dir: str = typer.Option("data/processed", help="processed data, for the user's history"),
) -> None:
    export = open_export(file, rev)
    views = show_user(export, user, temperature, top)
    data = load_sequences(data_dir) if Path(data_dir, "sequences.parquet").is_file() else None
    meta = export.meta
    typer.echo(
        f"{export.path}: producer {meta['producer']} round {meta['round']} split {meta['split']}, "
        f"T = {temperature}"
    )
    for v in views:
        if data is not None:
            row = int(v.user_id) - 1
            full = [*data.train[row].tolist(), int(data.valid[row]), int(data.test[row])]
            typer.echo(f"user {v.user_id} position {v.position}: history {full[: v.position]}")
        else:
            typer.echo(f"user {v.user_id} position {v.position}")
        typer.echo(
            f"  target {v.target}: rank {v.target_rank} (history masked), p = {v.target_probability:.4g}"
        )
        for i, item in enumerate(v.top, 1):
            mark = "  <- target" if item.item == v.target else ""
            typer.echo(
                f"  {i:>3}. item {item.item:>6}  logit {item.logit:9.4f}  p {item.probability:.4g}{mark}"
            )


@app.command("diff")
@one_line_errors
def diff(
    a: str = typer.Argument(..., help="first logits file"),
    b: str = typer.Argument(..., help="second logits file (may be the same path with --rev-a/--rev-b)"),
    k: int = typer.Option(10, "-k", help="overlap@K cut-off"),
    temperature: float = typer.Option(1.0, "--temperature", help="temperature of the KL"),
    rev_a: str | None = typer.Option(None, "--rev-a", help="git revision of A (read through DVC)"),
    rev_b: str | None = typer.Option(None, "--rev-b", help="git revision of B (read through DVC)"),
) -> None:
    ea, eb = open_export(a, rev_a), open_export(b, rev_b)
    d = diff_exports(ea, eb, k, temperature)
    typer.echo(f"A = {ea.path} ({ea.meta['producer']}, round {ea.meta['round']})")
    typer.echo(f"B = {eb.path} ({eb.meta['producer']}, round {eb.meta['round']})")
    typer.echo(f"instances in both: {d.rows} (only A: {d.only_a}, only B: {d.only_b})")
    typer.echo(f"overlap@{k}: {d.overlap_at_k:.4f}")
    typer.echo(f"mean KL(A || B) at T = {temperature}: {d.mean_kl:.4f}")
    typer.echo(
        f"target rank: median A {d.median_rank_a:g}, B {d.median_rank_b:g}; "
        f"better in B {d.improved:.2%}, worse {d.worsened:.2%}"
    )
    typer.echo(f"HR@10 from ranks: A {d.hr10_a:.4f}, B {d.hr10_b:.4f}")


if __name__ == "__main__":
    app()
