"""Pick named experiments out of `dvc exp show --json` and tabulate one metrics file of each.

    dvc exp show --json | python benchmarks/exp_metrics.py --names a,b --metrics-file metrics/x.json \
        --baseline-file metrics/sasrec.json --out grid.json

Prints valid / test NDCG@10 and HR@10 per experiment and the baseline (read from the workspace), marks
the experiment with the best VALIDATION NDCG@10 (the selection rule; test is reported, never used to
choose), and writes the same rows as JSON. Each row also carries the experiment's `distill` params.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(add_completion=False)


def named_revs(show: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, Any]]:
    """{name: rev} for the experiments called `names`, across every baseline of the exp-show JSON."""
    revs = {
        rev["name"]: rev
        for base in show
        for exp in base.get("experiments") or []
        for rev in exp["revs"]
        if rev.get("name") in names
    }
    missing = [n for n in names if n not in revs]
    if missing:
        raise SystemExit(f"dvc exp show: no experiment named {', '.join(missing)}")
    return revs


def summary(metrics: dict[str, Any]) -> dict[str, float]:
    return {f"{split} {m}": metrics[split][m] for split in ("valid", "test") for m in ("ndcg@10", "hr@10")}


@app.command()
def main(
    names: str = typer.Option(..., help="comma-separated experiment names, in table order"),
    metrics_file: str = typer.Option(..., help="metrics file to read from each experiment"),
    baseline_file: str = typer.Option(..., help="workspace metrics file of the baseline row"),
    out: str = typer.Option(..., help="JSON rows"),
) -> None:
    wanted = [n for n in names.split(",") if n]
    try:
        show = json.load(sys.stdin)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"stdin: not the JSON of `dvc exp show --json` ({exc})") from None
    revs = named_revs(show, wanted)
    rows = []
    for name in wanted:
        data = revs[name]["data"]
        if metrics_file not in data["metrics"]:
            raise SystemExit(f"{name}: no {metrics_file} in its metrics (did the run fail?)")
        rows.append(
            {
                "name": name,
                "distill": data["params"]["params.yaml"]["data"]["distill"],
                **summary(data["metrics"][metrics_file]["data"]),
            }
        )
    baseline = {"name": baseline_file, **summary(json.loads(Path(baseline_file).read_text()))}
    chosen = max(rows, key=lambda r: r["valid ndcg@10"])["name"]
    cols = ["valid ndcg@10", "valid hr@10", "test ndcg@10", "test hr@10"]
    print("| run | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for r in [baseline, *rows]:
        mark = " (chosen on valid)" if r["name"] == chosen else ""
        print(f"| {r['name']}{mark} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_text(json.dumps({"baseline": baseline, "chosen_on_valid": chosen, "rows": rows}, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    app()
