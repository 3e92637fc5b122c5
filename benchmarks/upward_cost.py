"""Cost of one CRM training step's upward KL (forward + backward) beside the step's model and L_rec,
measured side by side on the same batches, for a given number of teacher rows per user.

    python benchmarks/upward_cost.py --teacher logits/all_prefixes.parquet --rows-per-user 0
    python benchmarks/upward_cost.py --teacher logits/all_prefixes.parquet --rows-per-user 0 --draw 1
"""

from __future__ import annotations

import time

import numpy as np
import torch
import typer

from llmd4rec_core.batching import bucketed_batches, left_pad
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.upward import UpwardKD, index_teacher, most_recent_rows
from llmd4rec_core.logits.schema import read_logits
from llmd4rec_core.losses import recommendation_loss
from llmd4rec_core.models import build_crm
from llmd4rec_core.params import load_params
from llmd4rec_core.training import training_pairs

app = typer.Typer(add_completion=False)


@app.command()
def main(
    teacher: str = typer.Option(..., help="an LLM export (split train)"),
    rows_per_user: int = typer.Option(0, help="most recent export rows per user (0 = all)"),
    draw: int = typer.Option(0, help="rows drawn per user and step (loop.kl_rows_per_user; 0 = all)"),
    batches: int = typer.Option(30, help="training batches timed"),
    params_file: str = typer.Option("params.yaml"),
    data_dir: str = typer.Option("data/processed"),
) -> None:
    params = load_params(params_file)
    cfg = params.sasrec
    data = load_sequences(data_dir)
    file = most_recent_rows(read_logits(teacher), data, rows_per_user)
    kd = UpwardKD(
        index_teacher(file, data), params.T2, params.beta, True, True, draw, np.random.default_rng(0)
    )
    net = build_crm("sasrec", cfg, data.num_items)
    users, inputs, targets = training_pairs(data.train)
    lengths = np.array([min(len(s), cfg.max_len) for s in inputs])
    target_lengths = np.array([len(t) for t in targets])
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    chosen = bucketed_batches(lengths, cfg.batch_size, rng)[:batches]
    model_s = kl_s = 0.0
    rows = 0
    for idx in chosen:
        x = left_pad([inputs[i] for i in idx], cfg.max_len)
        y = left_pad([targets[i] for i in idx], cfg.max_len)
        start = time.perf_counter()
        states = net(x)
        table = net.item_embeddings.weight
        rec = recommendation_loss(cfg.loss, states[y != 0], y[y != 0], table, cfg.num_negatives, gen)
        rec.backward(retain_graph=True)
        middle = time.perf_counter()
        kl, w2 = kd.term(users[idx], target_lengths[idx], states, y, table)
        kl.backward()
        model_s += middle - start
        kl_s += time.perf_counter() - middle
        rows += len(w2)
    n = len(chosen)
    print(
        f"{len(file.rows):,} teacher rows, draw {draw}: per batch of {cfg.batch_size} users, model + L_rec "
        f"{1000 * model_s / n:.0f} ms, upward KL {1000 * kl_s / n:.0f} ms ({rows / n:.0f} teacher rows)"
    )


if __name__ == "__main__":
    app()
