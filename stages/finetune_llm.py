"""DVC stage: fine-tune E4SRec (LoRA, W_in, W_out), as the plain baseline or as round t of Algorithm 1.

``--name e4srec``: the E4SRec baseline, CE only (Eq. 5 with gamma = 0), ``llm.epochs`` from the round-0
LLM. ``--round round<t> --prev round<t-1>``: LLMD4Rec_L round t (lines 4-7): continue from round t-1's
LLM, refresh its item table E from round t-1's CRM (``embedding_update``), and train with the downward KL
from that frozen CRM (Eq. 2-5) for ``llm.epochs`` (round 1) or ``loop.llm_epochs`` (later rounds).
Writes the checkpoint (peft adapters + heads, safetensors), the curve ``metrics/curves/<name>.tsv`` and
wall-clock facts in ``metrics/train_<name>.json`` (``<name>`` = ``llmd4rec_l_round<t>`` for rounds).
"""

from __future__ import annotations

import time

import torch
import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.checkpoint import load_checkpoint
from llmd4rec_core.curves import write_curve
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distributed import device_of, init_world
from llmd4rec_core.errors import InputError
from llmd4rec_core.llm.checkpoint import load_e4srec, save_e4srec
from llmd4rec_core.llm.embedding_update import update_item_table
from llmd4rec_core.llm.finetune import DownwardKD, finetune_e4srec
from llmd4rec_core.params import round_index
from llmd4rec_core.seeding import seed_everything, set_determinism
from stages._common import one_line_errors, stage_params
from stages._launch import relaunch_under_torchrun
from stages._resume import run_checkpointer

BASELINE_PARAMS = ("seed", "deterministic", "llm", "distributed", "eval.mask_history")
ROUND_PARAMS = (
    "seed",
    "deterministic",
    "T1",
    "gamma",
    "sample_weights",
    "embedding_update",
    "kl_mask_history",
    "llm",
    "loop.llm_epochs",
    "loop.refit_w_in",
    "distributed",
    "eval.mask_history",
)
app = typer.Typer(add_completion=False, help=__doc__)


def declared_params(round_name: str | None) -> tuple[str, ...]:
    """The params keys this stage reads (dvc.yaml lists exactly these)."""
    return BASELINE_PARAMS if round_name is None else ROUND_PARAMS


@app.command()
@one_line_errors
def main(
    name: str = typer.Option("e4srec", help="baseline model name (ignored with --round)"),
    round_name: str = typer.Option(None, "--round", help="LLMD4Rec round to train, e.g. round2"),
    prev: str = typer.Option(None, help="the round it continues from, e.g. round1 (with --round)"),
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    models_dir: str = typer.Option("models", help="checkpoints: llmd4rec_{l,c}/round<t>/, <name>/"),
    metrics_dir: str = typer.Option("metrics", help="curves/<name>.tsv and train_<name>.json go here"),
    valid_batch_size: int = typer.Option(64, help="prompts per validation batch"),
    checkpoint_dir: str = typer.Option(
        "checkpoints", envvar="LLMD4REC_CHECKPOINT_DIR", help="resumable snapshots (resume.py); '' = none"
    ),
    checkpoint_every: int = typer.Option(100, help="also snapshot every N optimizer steps (0: epoch ends)"),
) -> None:
    if (round_name is None) != (prev is None):
        raise InputError("--round and --prev go together")
    params = stage_params(declared_params(round_name), params_file)
    relaunch_under_torchrun(params.distributed.nproc, "stages.finetune_llm")
    world = init_world(params.distributed.backend)
    data = load_sequences(data_dir)
    device = device_of(world)
    cfg = params.llm
    if round_name is None:
        start_dir, out, label = f"{models_dir}/llmd4rec_l/round0", f"{models_dir}/{name}", name
        teacher, epochs, distill = None, cfg.epochs, {"gamma": 0.0}
        stage, inputs = f"finetune_{name}", [data_dir, start_dir]
    else:
        t = round_index(round_name, "--round")
        if t < 1 or round_index(prev, "--prev") != t - 1:
            raise InputError(f"--prev {prev}: round {round_name} continues from round{t - 1}")
        start_dir, out = f"{models_dir}/llmd4rec_l/{prev}", f"{models_dir}/llmd4rec_l/{round_name}"
        label = f"llmd4rec_l_{round_name}"
        teacher_dir = f"{models_dir}/llmd4rec_c/{prev}"
        teacher, _ = load_checkpoint(teacher_dir, num_items=data.num_items)
        stage, inputs = f"finetune_llm@{round_name}", [data_dir, start_dir, teacher_dir]
        epochs = cfg.epochs if t == 1 else params.loop.llm_epochs
        distill = {"T1": params.T1, "gamma": params.gamma, "sample_weights": params.sample_weights}
        distill["kl_mask_history"] = params.kl_mask_history
        distill |= {"teacher": teacher_dir, "round": t}
        if t > 1:  # round 1's table already is round 0's CRM table: the switch cannot change it
            distill["embedding_update"] = params.embedding_update
    declared = declared_params(round_name)
    ckpt = run_checkpointer(
        stage, declared, params_file, inputs, checkpoint_dir, checkpoint_every, world.is_main, world.size
    )
    seed_everything(params.seed)
    set_determinism(params.deterministic)
    model, meta = load_e4srec(start_dir, device, data.num_items, trainable=True)
    if teacher is not None and params.embedding_update:
        refit = params.loop.refit_w_in
        residual = update_item_table(
            model, teacher.item_embeddings.weight, teacher_dir, refit
        )  # Alg. 1, l. 4-5
        if t > 1:
            distill |= {"refit_w_in": refit, "refit_residual": round(residual, 6) if refit else None}
    kd = (
        DownwardKD(teacher.to(device), params.T1, params.gamma, params.sample_weights, params.kl_mask_history)
        if teacher is not None
        else DownwardKD(None, 1.0, 0.0, False, False)
    )
    run_cfg = cfg.model_copy(update={"epochs": epochs})
    if world.rank > 0:  # each process its own dropout stream (rank 0 keeps the single-process one)
        torch.manual_seed(params.seed + world.rank)
    start = time.perf_counter()
    result = finetune_e4srec(
        model, data, run_cfg, kd, params.seed, params.eval.mask_history, valid_batch_size, ckpt, stage, world
    )
    seconds = time.perf_counter() - start
    if not world.is_main:
        return
    extra = {
        "best_epoch": result.best_epoch,
        "best_valid": result.best_valid,
        "distill": distill,
        "started_from": start_dir,
    }
    save_e4srec(out, model, run_cfg, meta.get("titles"), extra)
    write_curve(f"{metrics_dir}/curves/{label}.tsv", result.history)
    timing = {
        "train_seconds": round(seconds, 1),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": round(sum(r["train_seconds"] for r in result.history) / len(result.history), 1),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "processes": world.size,
        "resumed_from_step": ckpt.resumed_from,
    }
    write_json(f"{metrics_dir}/train_{label}.json", timing)
    ckpt.finish()
    best = result.best_valid["ndcg@10"]
    print(f"{label}: best epoch {result.best_epoch}, valid ndcg@10 {best:.4f}, {seconds:.0f}s")


if __name__ == "__main__":
    app()
