"""DLLM2Rec(SASRec) against the same teacher export, before the strategy is wired into the pipeline
(issue 5): SASRec trained with L_rec + λ_d · L_d, L_d the importance-aware ranking distillation of
DLLM2Rec (Eq. 5-10, ``llmd4rec_core/strategies/dllm2rec.py``) on the teacher's top-K of each exported
row, then evaluated on test. Same seed, batches and negatives of L_rec as plain SASRec (the L_d
negatives come from a stream of their own), so the row compares with the pipeline's SASRec directly.
No collaborative embedding distillation (Eq. 12-13): that needs the teacher's item representations in
the student, which the stage will add.

The distiller and its choices live in ``llmd4rec_core/strategies/ranking_kd.py``.

    python benchmarks/dllm2rec_probe.py --teacher logits/llmd4rec_l/round2/train.parquet \\
        --lambda-d 0.5 --out benchmarks/results/dllm2rec_probe_lambda0.5.json
"""

from __future__ import annotations

import time

import numpy as np
import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.upward import index_teacher
from llmd4rec_core.logits.schema import read_logits
from llmd4rec_core.models import build_crm
from llmd4rec_core.params import load_params
from llmd4rec_core.scoring import evaluate_by_length
from llmd4rec_core.seeding import pick_device, seed_everything
from llmd4rec_core.strategies.ranking_kd import RankingKD, candidate_table
from llmd4rec_core.training import train_crm

app = typer.Typer(add_completion=False)


@app.command()
def main(
    teacher: str = typer.Option("logits/llmd4rec_l/round2/train.parquet", help="the LLM export (train)"),
    lambda_d: float = typer.Option(0.5, help="λ_d of Eq. 11 (paper grid 0.1-1.0)"),
    k: int = typer.Option(10, help="teacher candidates per row (paper 10)"),
    shape: float = typer.Option(1.0, help="β of Eq. 6-7 (paper 1.0)"),
    gammas: tuple[float, float, float] = typer.Option((0.3, 0.5, 0.1), help="γ_p γ_c γ_o (paper)"),
    seed: int = typer.Option(0),
    params_file: str = typer.Option("params.yaml"),
    data_dir: str = typer.Option("data/processed"),
    out: str = typer.Option("", help="JSON row of this run"),
) -> None:
    params = load_params(params_file)
    crm = params.llm.crm
    cfg = getattr(params, crm)
    data = load_sequences(data_dir)
    indexed = index_teacher(read_logits(teacher), data)
    kd = RankingKD(
        indexed,
        candidate_table(indexed, k, "--k"),
        lambda_d,
        shape,
        *gammas,
        np.random.default_rng([seed, 12]),
    )
    seed_everything(seed)
    device = pick_device()
    net = build_crm(crm, cfg, data.num_items).to(device)
    start = time.perf_counter()
    result = train_crm(net, data, cfg, cfg.max_len, seed, params.eval.mask_history, 512, kd)
    seconds = time.perf_counter() - start
    mask = params.eval.mask_history
    metrics = evaluate_by_length(net, data, cfg.max_len, params.eval.ks, 512, mask, device)
    row = {
        "method": "dllm2rec (ranking distillation only)",
        "lambda_d": lambda_d,
        "k": k,
        "beta": shape,
        "gammas": list(gammas),
        "seed": seed,
        "teacher": teacher,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(seconds, 1),
        "valid": metrics["valid"],
        "test": metrics["test"],
        "curve": [{k_: r[k_] for k_ in ("epoch", "valid_ndcg@10", "train_kl")} for r in result.history],
    }
    print(
        f"DLLM2Rec λ_d={lambda_d}: valid ndcg@10 {metrics['valid']['ndcg@10']:.4f} "
        f"test ndcg@10 {metrics['test']['ndcg@10']:.4f} hr@10 {metrics['test']['hr@10']:.4f}"
    )
    if out:
        write_json(out, row)


if __name__ == "__main__":
    app()
