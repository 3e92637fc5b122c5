"""LLMD4Rec_C under params overrides with the teacher held fixed: the upward-KL design study of
docs/results.md (which rows to distil, T2, beta, kl_mask_history), one CRM training per call.

Exactly what the ``distill_crm`` stage does (same core calls, fresh init with ``--seed``), but against any
export and with ``--set key=value`` overrides of ``params.yaml`` (validated like the file itself), and the
test metrics evaluated right after. ``--rows-per-user K`` keeps each user's K most recent training
prefixes of the export (what ``export.instances_per_user: K`` would have written); 0 keeps all it has.

    python benchmarks/upward_sweep.py --teacher logits/llmd4rec_l/round1/train.parquet \\
        --rows-per-user 1 --set T2=0.2 --set beta=0.5 --out benchmarks/results/upward_X.json
    python benchmarks/upward_sweep.py --summarise benchmarks/results/upward_*.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from ruamel.yaml import YAML

from llmd4rec_core.atomic import write_json
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.upward import UpwardKD, index_teacher, most_recent_rows
from llmd4rec_core.logits.schema import read_logits
from llmd4rec_core.models import build_crm
from llmd4rec_core.params import Params, read_yaml
from llmd4rec_core.scoring import evaluate_by_length
from llmd4rec_core.seeding import pick_device, seed_everything
from llmd4rec_core.training import train_crm

app = typer.Typer(add_completion=False)


def overridden(params_file: str, sets: list[str]) -> Params:
    """params.yaml with ``key.sub=value`` overrides (values parsed as YAML), validated."""
    raw = read_yaml(params_file)
    for item in sets:
        key, _, value = item.partition("=")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = YAML(typ="safe", pure=True).load(value)
    return Params.model_validate(raw)


@app.command()
def main(
    teacher: str = typer.Option("", help="the LLM export (split train)"),
    sets: Annotated[list[str] | None, typer.Option("--set", help="params override key=value")] = None,
    rows_per_user: int = typer.Option(0, help="most recent export rows per user to distil (0 = all)"),
    draw_per_user: int = typer.Option(0, help="rows drawn per user and step among those (0 = all)"),
    seed: int = typer.Option(0),
    label: str = typer.Option("", help="name of the run in the table"),
    params_file: str = typer.Option("params.yaml"),
    data_dir: str = typer.Option("data/processed"),
    out: str = typer.Option("", help="JSON row of this run"),
    summarise: Annotated[list[str] | None, typer.Option(help="JSON files of earlier runs")] = None,
) -> None:
    if summarise:
        table([json.loads(Path(p).read_text()) for p in summarise])
        return
    params = overridden(params_file, sets or [])
    crm = params.llm.crm
    cfg = getattr(params, crm)
    data = load_sequences(data_dir)
    file = most_recent_rows(read_logits(teacher), data, rows_per_user)
    kd = UpwardKD(
        index_teacher(file, data),
        params.T2,
        params.beta,
        params.sample_weights,
        params.kl_mask_history,
        draw_per_user,
        np.random.default_rng([seed, file.meta.get("round") or 1]),  # as distill_crm draws
    )
    seed_everything(seed)
    device = pick_device()
    net = build_crm(crm, cfg, data.num_items).to(device)
    start = time.perf_counter()
    result = train_crm(net, data, cfg, cfg.max_len, seed, params.eval.mask_history, 512, kd)
    seconds = time.perf_counter() - start
    metrics = evaluate_by_length(
        net, data, cfg.max_len, params.eval.ks, 512, params.eval.mask_history, device
    )
    row = {
        "label": label or " ".join(sets or []),
        "sets": sets or [],
        "rows_per_user": rows_per_user,
        "draw_per_user": draw_per_user,
        "teacher_rows": len(file.rows),
        "seed": seed,
        "teacher": teacher,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / len(result.history), 1),
        "valid": metrics["valid"],
        "test": metrics["test"],
        "curve": [
            {k: r[k] for k in ("epoch", "valid_ndcg@10", "train_kl", "train_w2")} for r in result.history
        ],
    }
    print(
        f"{row['label']}: valid ndcg@10 {metrics['valid']['ndcg@10']:.4f} "
        f"test {metrics['test']['ndcg@10']:.4f}"
    )
    if out:
        write_json(out, row)


def table(rows: list[dict[str, Any]]) -> None:
    print(
        "| run | teacher rows | best / run epochs | s / epoch | valid NDCG@10 | test HR@10 | test NDCG@10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label']} | {r['teacher_rows']:,} | {r['best_epoch']} / {r['epochs_run']} | "
            f"{r['seconds_per_epoch']} | {r['valid']['ndcg@10']:.4f} | {r['test']['hr@10']:.4f} | "
            f"{r['test']['ndcg@10']:.4f} |"
        )


if __name__ == "__main__":
    app()
