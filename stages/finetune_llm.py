"""DVC stage: fine-tune E4SRec (LoRA, W_in, W_out) with the downward KL from the CRM (Eq. 5).

Reads ``data/processed`` and the CRM checkpoint (its item table E feeds W_in, Eq. 1; its logits are the
KL teacher, Eq. 3). Writes ``models/<name>/`` (peft adapters + heads, safetensors), the curve
``metrics/curves/<name>.tsv`` and wall-clock facts in ``metrics/train_<name>.json``.
"""

from __future__ import annotations

import time

import torch
import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.checkpoint import load_checkpoint
from llmd4rec_core.curves import write_curve
from llmd4rec_core.data.sequences import load_sequences, load_stats
from llmd4rec_core.data.titles import item_titles
from llmd4rec_core.llm.checkpoint import build_e4srec, save_e4srec
from llmd4rec_core.llm.finetune import DownwardKD, finetune_e4srec
from llmd4rec_core.seeding import pick_device, seed_everything
from stages._common import one_line_errors, stage_params

PARAMS = ("seed", "T1", "gamma", "sample_weights", "llm", "eval.mask_history")
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@one_line_errors
def main(
    name: str = typer.Option("e4srec", help="model name: writes <out_dir>/<name>/"),
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    crm_dir: str = typer.Option("", help="CRM checkpoint (default models/<llm.crm>)"),
    out_dir: str = typer.Option("models", help="checkpoints go to <out_dir>/<name>/"),
    metrics_dir: str = typer.Option("metrics", help="curves/<name>.tsv and train_<name>.json go here"),
    valid_batch_size: int = typer.Option(64, help="prompts per validation batch"),
) -> None:
    params = stage_params(PARAMS, params_file)
    cfg = params.llm
    data = load_sequences(data_dir)
    crm, _ = load_checkpoint(crm_dir or f"{out_dir}/{cfg.crm}", num_items=data.num_items)
    titles = (
        item_titles(data_dir, str(load_stats(data_dir).get("dataset"))) if cfg.item_text == "title" else None
    )
    seed_everything(params.seed)
    device = pick_device()
    model = build_e4srec(cfg, crm.item_embeddings.weight, device, titles)
    kd = DownwardKD(crm.to(device), params.T1, params.gamma, params.sample_weights)
    start = time.perf_counter()
    result = finetune_e4srec(model, data, cfg, kd, params.seed, params.eval.mask_history, valid_batch_size)
    seconds = time.perf_counter() - start
    extra = {
        "best_epoch": result.best_epoch,
        "best_valid": result.best_valid,
        "distill": {"T1": params.T1, "gamma": params.gamma, "sample_weights": params.sample_weights},
    }
    save_e4srec(f"{out_dir}/{name}", model, cfg, titles, extra)
    write_curve(f"{metrics_dir}/curves/{name}.tsv", result.history)
    timing = {
        "train_seconds": round(seconds, 1),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": round(sum(r["train_seconds"] for r in result.history) / len(result.history), 1),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    write_json(f"{metrics_dir}/train_{name}.json", timing)
    print(
        f"{name}: best epoch {result.best_epoch}, "
        f"valid ndcg@10 {result.best_valid['ndcg@10']:.4f}, {seconds:.0f}s"
    )


if __name__ == "__main__":
    app()
