"""LLMD4Rec_C against SASRec over several seeds, with the teacher held fixed (issue 4 acceptance).

For each seed, trains the CRM twice from the same initialisation, batches and negatives (the seed):
once plain (the SASRec baseline, exactly what ``train_crm`` does) and once with the upward KL from an
exported LLM (exactly what ``distill_crm`` does), then evaluates both on the test split. Only the CRM's
seed varies: the teacher export is the pipeline's (one LLM run), so the spread measures the CRM noise the
distillation gain must stand above. Prints a table and writes JSON rows. Runs one process per seed:

    OMP_NUM_THREADS=1 python benchmarks/crm_seeds.py --seed 1 --out benchmarks/results/crm_seed1.json
    python benchmarks/crm_seeds.py --summarise benchmarks/results/crm_seed1.json \\
        --summarise benchmarks/results/crm_seed2.json --pipeline   # + the pipeline's seed 0
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.upward import UpwardKD, index_teacher
from llmd4rec_core.logits.schema import read_logits
from llmd4rec_core.models import build_crm
from llmd4rec_core.params import load_params
from llmd4rec_core.scoring import evaluate_by_length
from llmd4rec_core.seeding import pick_device, seed_everything
from llmd4rec_core.training import train_crm

app = typer.Typer(add_completion=False)


@app.command()
def main(
    seed: int = typer.Option(None, help="the CRM seed to run"),
    teacher: str = typer.Option("logits/llmd4rec_l/round2/train.parquet", help="the LLM export"),
    params_file: str = typer.Option("params.yaml"),
    data_dir: str = typer.Option("data/processed"),
    out: str = typer.Option(None, help="JSON rows of this seed"),
    summarise: Annotated[
        list[str] | None, typer.Option(help="JSON files of earlier runs to tabulate")
    ] = None,
    pipeline: bool = typer.Option(False, help="with --summarise: add the pipeline's own seed (metrics/)"),
    distilled_only: bool = typer.Option(
        False, help="train only LLMD4Rec_C (plain SASRec of that seed measured before: its code is unchanged)"
    ),
) -> None:
    if summarise:
        rows = [row for path in summarise for row in json.loads(Path(path).read_text())]
        if pipeline:
            rows += pipeline_rows(params_file)
        table(rows)
        return
    if seed is None:
        raise typer.BadParameter("give --seed (or --summarise FILES)")
    params = load_params(params_file)
    if params.loop.crm_warm_start:
        raise typer.BadParameter("loop.crm_warm_start: this study trains both CRMs from a fresh init")
    crm = params.llm.crm
    cfg = getattr(params, crm)
    data = load_sequences(data_dir)
    device = pick_device()
    kd = UpwardKD(
        index_teacher(file := read_logits(teacher), data),
        params.T2,
        params.beta,
        params.sample_weights,
        params.kl_mask_history,
        params.loop.kl_rows_per_user,
        np.random.default_rng([seed, file.meta.get("round") or 1]),  # as distill_crm draws
    )
    rows = []
    runs = (("sasrec", None), ("llmd4rec_c", kd))
    for name, distill in runs[1:] if distilled_only else runs:
        seed_everything(seed)
        net = build_crm(crm, cfg, data.num_items).to(device)
        start = time.perf_counter()
        result = train_crm(net, data, cfg, cfg.max_len, seed, params.eval.mask_history, 512, distill)
        seconds = time.perf_counter() - start
        metrics = evaluate_by_length(
            net, data, cfg.max_len, params.eval.ks, 512, params.eval.mask_history, device
        )
        rows.append(
            {
                "seed": seed,
                "model": name,
                "teacher": teacher,
                "best_epoch": result.best_epoch,
                "train_seconds": round(seconds, 1),
                "valid": metrics["valid"],
                "test": metrics["test"],
            }
        )
        print(
            f"seed {seed} {name}: test ndcg@10 {metrics['test']['ndcg@10']:.4f} ({seconds:.0f}s)", flush=True
        )
    if out:
        write_json(out, rows)


def pipeline_rows(params_file: str) -> list[dict[str, Any]]:
    """The committed pipeline's SASRec and final-round LLMD4Rec_C as rows of its seed."""
    params = load_params(params_file)
    final = f"metrics/llmd4rec_c/round{params.T_max}.json"
    rows = []
    for name, path in (("sasrec", f"metrics/{params.llm.crm}.json"), ("llmd4rec_c", final)):
        metrics = json.loads(Path(path).read_text())
        rows.append({"seed": params.seed, "model": name, "teacher": "pipeline", "test": metrics["test"]})
    return rows


def table(rows: list[dict[str, Any]]) -> None:
    rows = sorted(rows, key=lambda r: r["seed"])
    seeds = sorted({r["seed"] for r in rows})
    print(f"seeds: {seeds}")
    for metric in ("ndcg@10", "hr@10", "ndcg@20", "hr@20"):
        stats = {}
        for model in ("sasrec", "llmd4rec_c"):
            values = [r["test"][metric] for r in rows if r["model"] == model]
            stats[model] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        gain = (stats["llmd4rec_c"][0] / stats["sasrec"][0] - 1) * 100
        paired = [
            (a["test"][metric] / b["test"][metric] - 1) * 100
            for a in rows
            for b in rows
            if a["model"] == "llmd4rec_c" and b["model"] == "sasrec" and a["seed"] == b["seed"]
        ]
        print(
            f"{metric}: SASRec {stats['sasrec'][0]:.4f} ± {stats['sasrec'][1]:.4f} | "
            f"LLMD4Rec_C {stats['llmd4rec_c'][0]:.4f} ± {stats['llmd4rec_c'][1]:.4f} | "
            f"gain {gain:+.1f} % (per seed {', '.join(f'{p:+.1f}' for p in paired)})"
        )


if __name__ == "__main__":
    app()
