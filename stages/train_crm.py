"""DVC stage: train a conventional recommender (SASRec or GRU4Rec) on the processed data.

Reads ``data/processed``; writes ``models/<model>/`` (safetensors + config.json, deterministic content),
the training curve ``metrics/curves/<model>.tsv`` (DVC plot) and wall-clock facts in
``metrics/train_<model>.json``. Early stopping and model selection use validation NDCG@10.
"""

from __future__ import annotations

import time

import torch
import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.checkpoint import save_checkpoint
from llmd4rec_core.curves import write_curve
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.errors import InputError
from llmd4rec_core.models import ARCHITECTURES, build_crm
from llmd4rec_core.seeding import pick_device, seed_everything, set_determinism
from llmd4rec_core.training import train_crm
from stages._common import one_line_errors, stage_params
from stages._resume import run_checkpointer

app = typer.Typer(add_completion=False, help=__doc__)


def declared_params(model: str) -> tuple[str, ...]:
    """The params keys this stage reads for ``model`` (dvc.yaml lists exactly these)."""
    return ("seed", "deterministic", model, "eval.mask_history")


@app.command()
@one_line_errors
def main(
    model: str = typer.Option(..., help="which CRM: sasrec | gru4rec"),
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    out_dir: str = typer.Option("models", help="checkpoints go to <out_dir>/<model>/"),
    metrics_dir: str = typer.Option("metrics", help="curves/<model>.tsv and train_<model>.json go here"),
    valid_batch_size: int = typer.Option(512, help="users per validation batch (does not change results)"),
    checkpoint_dir: str = typer.Option(
        "checkpoints", envvar="LLMD4REC_CHECKPOINT_DIR", help="resumable snapshots (resume.py); '' = none"
    ),
    checkpoint_every: int = typer.Option(0, help="also snapshot every N steps (0: at each epoch's end)"),
) -> None:
    if model not in ARCHITECTURES:
        raise InputError(f"--model: unknown model {model!r}; choose one of {', '.join(ARCHITECTURES)}")
    params = stage_params(declared_params(model), params_file)
    cfg = getattr(params, model)
    data = load_sequences(data_dir)
    label = f"train_crm@{model}"
    ckpt = run_checkpointer(
        label, declared_params(model), params_file, [data_dir], checkpoint_dir, checkpoint_every
    )
    seed_everything(params.seed)
    set_determinism(params.deterministic)
    device = pick_device()
    net = build_crm(model, cfg, data.num_items).to(device)
    start = time.perf_counter()
    result = train_crm(
        net,
        data,
        cfg,
        cfg.max_len,
        params.seed,
        params.eval.mask_history,
        valid_batch_size,
        None,
        ckpt,
        label,
    )
    seconds = time.perf_counter() - start
    extra = {"best_epoch": result.best_epoch, "best_valid": result.best_valid, "params": cfg.model_dump()}
    save_checkpoint(f"{out_dir}/{model}", model, net, extra)
    write_curve(f"{metrics_dir}/curves/{model}.tsv", result.history)
    epochs = len(result.history)
    timing = {
        "train_seconds": round(seconds, 1),
        "epochs_run": epochs,
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": round(sum(r["train_seconds"] for r in result.history) / epochs, 2),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "resumed_from_step": ckpt.resumed_from,
    }
    write_json(f"{metrics_dir}/train_{model}.json", timing)
    ckpt.finish()
    print(
        f"{model}: best epoch {result.best_epoch}/{epochs}, "
        f"valid ndcg@10 {result.best_valid['ndcg@10']:.4f}, {seconds:.0f}s"
    )


if __name__ == "__main__":
    app()
