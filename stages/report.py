"""``llmd4rec report``: every evaluated model in one markdown table beside the paper's Table 2, the
metrics over rounds (the paper's Figure 4) and the ablations, as ``<out>/report.md`` + PNG plots.

Reads the workspace (``metrics/`` and ``params.yaml``) or, with ``--exp-show``, the JSON printed by
``dvc exp show --json`` (every experiment side by side; runs differing only in ``seed`` are averaged).
Not a DVC stage: it only reads committed metrics, so it can compare experiments DVC keeps elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from llmd4rec_core.report.collect import group_runs, run_from_dir, runs_from_exp_show
from llmd4rec_core.report.render import render
from stages._common import one_line_errors

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@one_line_errors
def main(
    metrics_dir: str = typer.Option("metrics", help="the workspace's metrics directory"),
    params_file: str = typer.Option("params.yaml", help="the workspace's params"),
    exp_show: str = typer.Option(
        None, help="`dvc exp show --json` output file ('-' = stdin) instead of the workspace"
    ),
    out_dir: str = typer.Option("reports", help="report.md, rounds.png and models.png go here"),
) -> None:
    if exp_show is None:
        runs = [run_from_dir(metrics_dir, params_file)]
    elif exp_show == "-":
        runs = runs_from_exp_show("<stdin>", sys.stdin.read())
    else:
        runs = runs_from_exp_show(exp_show)
    groups = group_runs(runs)
    md = render(groups, Path(out_dir))
    print(f"report: {len(runs)} run(s) in {len(groups)} setting(s) -> {md}")


if __name__ == "__main__":
    app()
