"""DVC stage: LLMD4Rec_C round t (Algorithm 1, lines 8-9): train the CRM with the upward KL (Eq. 6-9),
or, with ``distill.method``, with another LLM -> CRM strategy from the same LLM (the curve's ``train_kl``
then holds that strategy's term): ``dllm2rec``, DLLM2Rec's ranking distillation
(strategies/ranking_kd.py) plus its collaborative embedding distillation from the LLM's item head
(strategies/embedding_kd.py, baked into a plain item table before saving); ``alkdrec``, ALKDRec's pairwise
distillation (strategies/pairwise_kd.py) on the export of its drawn instances only; ``none``, L_rec alone.

The teacher is round t's LLM, read from its exported logits ``logits/llmd4rec_l/round<t>/train.parquet``.
The CRM (``llm.crm``, trained with that model's params section) starts from a fresh initialisation with
the pretraining seed, or from round t-1's CRM with ``loop.crm_warm_start``. Writes
``models/llmd4rec_c/round<t>/`` (same architecture, size and inference cost as the pretrained CRM), the curve
``metrics/curves/llmd4rec_c_round<t>.tsv`` and wall-clock facts in ``metrics/train_llmd4rec_c_round<t>.json``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.checkpoint import load_checkpoint, save_checkpoint
from llmd4rec_core.curves import write_curve
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.upward import UpwardKD, index_teacher
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import read_logits
from llmd4rec_core.models import build_crm
from llmd4rec_core.params import load_params, round_index
from llmd4rec_core.seeding import pick_device, seed_everything, set_determinism
from llmd4rec_core.strategies.embedding_kd import (
    bake_item_table,
    install_collaborative_table,
    teacher_item_representations,
)
from llmd4rec_core.strategies.pairwise_kd import PairwiseKD
from llmd4rec_core.strategies.ranking_kd import RankingKD, candidate_table
from llmd4rec_core.training import BatchDistiller, train_crm
from stages._common import one_line_errors, stage_params
from stages._resume import run_checkpointer

app = typer.Typer(add_completion=False, help=__doc__)


def declared_params(crm: str) -> tuple[str, ...]:
    """The params keys this stage reads when ``llm.crm`` is ``crm`` (dvc.yaml lists exactly these)."""
    return (
        "seed",
        "deterministic",
        "T2",
        "beta",
        "sample_weights",
        "kl_mask_history",
        "distill",
        "loop.crm_warm_start",
        "loop.kl_rows_per_user",
        "llm.crm",
        crm,
        "eval.mask_history",
    )


@app.command()
@one_line_errors
def main(
    round_name: str = typer.Option(..., "--round", help="round to train, e.g. round1"),
    prev: str = typer.Option(..., help="the round it continues from, e.g. round0"),
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    models_dir: str = typer.Option("models", help="reads llmd4rec_c/<prev>/, writes llmd4rec_c/<round>/"),
    logits_dir: str = typer.Option("logits", help="reads llmd4rec_l/<round>/train.parquet"),
    llm_dir: str = typer.Option(
        "", help="round t's LLM (dllm2rec's item head; default <models_dir>/llmd4rec_l/<round>)"
    ),
    metrics_dir: str = typer.Option("metrics", help="curves/ and train_llmd4rec_c_<round>.json go here"),
    valid_batch_size: int = typer.Option(512, help="users per validation batch (does not change results)"),
    checkpoint_dir: str = typer.Option(
        "checkpoints", envvar="LLMD4REC_CHECKPOINT_DIR", help="resumable snapshots (resume.py); '' = none"
    ),
    checkpoint_every: int = typer.Option(0, help="also snapshot every N steps (0: at each epoch's end)"),
) -> None:
    t = round_index(round_name, "--round")
    if t < 1 or round_index(prev, "--prev") != t - 1:
        raise InputError(f"--prev {prev}: round {round_name} continues from round{t - 1}")
    crm_name = load_params(params_file).llm.crm
    params = stage_params(declared_params(crm_name), params_file)
    cfg = getattr(params, crm_name)
    data = load_sequences(data_dir)
    prev_dir = f"{models_dir}/llmd4rec_c/{prev}"
    previous, prev_meta = load_checkpoint(prev_dir, num_items=data.num_items)
    if prev_meta["arch"] != crm_name:
        raise InputError(f"{prev_dir}/config.json: arch {prev_meta['arch']!r} but llm.crm is {crm_name!r}")
    teacher_path = f"{logits_dir}/llmd4rec_l/{round_name}/train.parquet"
    teacher = index_teacher(read_logits(teacher_path), data)
    if params.distill.method == "alkdrec" and len(teacher.file.rows) > params.distill.alkdrec.budget:
        raise InputError(
            f"{teacher_path}: {len(teacher.file.rows)} rows, more than distill.alkdrec.budget "
            f"({params.distill.alkdrec.budget}): not an export of select_instances' ALKDRec draw"
        )
    label = f"distill_crm@{round_name}"
    inputs = [data_dir, prev_dir, teacher_path]
    method = params.distill.method
    embedding = method == "dllm2rec" and params.distill.dllm2rec.embedding_alpha > 0
    llm_path = llm_dir or f"{models_dir}/llmd4rec_l/{round_name}"
    if embedding:
        teacher_items = teacher_item_representations(llm_path, data.num_items)  # [I, D]
        inputs.append(llm_path)
    declared = declared_params(crm_name)
    ckpt = run_checkpointer(label, declared, params_file, inputs, checkpoint_dir, checkpoint_every)
    seed_everything(params.seed)
    set_determinism(params.deterministic)
    device = pick_device()
    net = build_crm(crm_name, cfg, data.num_items)
    if params.loop.crm_warm_start:
        net.load_state_dict(previous.state_dict())
    net = net.to(device)
    if embedding:
        d = params.distill.dllm2rec
        install_collaborative_table(net, teacher_items, d.embedding_alpha, d.projector_hidden, params.seed)
    stream = np.random.default_rng([params.seed, t])  # the term's own: L_rec's batches, negatives unchanged
    kd: BatchDistiller | None = None
    if method == "llmd4rec":
        kd = UpwardKD(
            teacher,
            params.T2,
            params.beta,
            params.sample_weights,
            params.kl_mask_history,
            params.loop.kl_rows_per_user,
            stream,
        )
    elif method == "dllm2rec":
        d = params.distill.dllm2rec
        top = candidate_table(teacher, d.top_k, "distill.dllm2rec.top_k")
        kd = RankingKD(teacher, top, d.lambda_d, d.beta, d.gamma_p, d.gamma_c, d.gamma_o, stream)
    elif method == "alkdrec":
        a = params.distill.alkdrec
        top = candidate_table(teacher, a.top_k, "distill.alkdrec.top_k")
        kd = PairwiseKD(teacher, top, a.lambda_kd, a.num_negatives, stream)
    start = time.perf_counter()
    result = train_crm(
        net, data, cfg, cfg.max_len, params.seed, params.eval.mask_history, valid_batch_size, kd, ckpt, label
    )
    seconds = time.perf_counter() - start
    bake_item_table(net)  # a plain item table again (no-op unless embedding distillation)
    distill: dict[str, object] = {"method": method, "round": t}
    if method == "llmd4rec":
        distill |= {"T2": params.T2, "beta": params.beta, "sample_weights": params.sample_weights}
        distill |= {"kl_mask_history": params.kl_mask_history}
    elif method == "dllm2rec":
        distill |= params.distill.dllm2rec.model_dump() | ({"teacher_items": llm_path} if embedding else {})
    elif method == "alkdrec":
        distill |= params.distill.alkdrec.model_dump()
    distill |= {
        "teacher": teacher_path,
        "teacher_rows": len(teacher.file.rows),
        "warm_start": params.loop.crm_warm_start,
        "kl_rows_per_user": params.loop.kl_rows_per_user,
    }
    extra = {"best_epoch": result.best_epoch, "best_valid": result.best_valid, "params": cfg.model_dump()}
    save_checkpoint(f"{models_dir}/llmd4rec_c/{round_name}", crm_name, net, extra | {"distill": distill})
    name = f"llmd4rec_c_{round_name}"
    write_curve(f"{metrics_dir}/curves/{name}.tsv", result.history)
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
    write_json(f"{metrics_dir}/train_{name}.json", timing)
    ckpt.finish()
    best = result.best_valid["ndcg@10"]
    print(f"{name}: best epoch {result.best_epoch}/{epochs}, valid ndcg@10 {best:.4f}, {seconds:.0f}s")


if __name__ == "__main__":
    app()
