"""How much of a model's tempered softmax falls on the user's own history items: the measurement behind
``kl_mask_history`` (docs/results.md). Items of the history are never recommended (the evaluation masks
them), so mass there is what an unmasked KL spends its gradient on.

    python benchmarks/history_mass.py sasrec llmd4rec_l/round1 --users 2000
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
import typer

from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.kl import history_mask
from llmd4rec_core.recommenders import load_recommender
from llmd4rec_core.scoring import scores_by_length

app = typer.Typer(add_completion=False)


@app.command()
def main(
    models: Annotated[list[str], typer.Argument(help="model names under --models-dir")],
    users: int = typer.Option(2000, help="random users (their last training prefix)"),
    temperatures: Annotated[list[float] | None, typer.Option("--temperature")] = None,
    data_dir: str = typer.Option("data/processed"),
    models_dir: str = typer.Option("models"),
    seed: int = typer.Option(0),
) -> None:
    temps = temperatures or [0.2, 0.6, 1.0]
    data = load_sequences(data_dir)
    inst = split_instances(data, "train", 1)
    pick = np.random.default_rng(seed).choice(len(inst), min(users, len(inst)), replace=False)
    histories = [inst.histories[i] for i in pick]
    device = torch.device("cpu")
    print(f"{len(histories)} users, last training prefix; share of softmax(logits / T) on history items")
    print("| model | " + " | ".join(f"T = {t}" for t in temps) + " | top-1 is a history item |")
    print("|---" * (len(temps) + 2) + "|")
    for name in models:
        loaded = load_recommender(f"{models_dir}/{name}", data.num_items, device)
        mass = {t: [] for t in temps}
        top1 = []
        for idx, scores in scores_by_length(loaded.scorer, histories, loaded.max_len, 256, device):
            logits = scores[:, 1:]  # [B, I]
            mask = history_mask([histories[i] for i in idx], data.num_items, device)  # [B, I]
            for t in temps:
                mass[t].append((torch.softmax(logits / t, dim=-1) * mask).sum(-1))
            top1.append(mask.gather(1, logits.argmax(-1, keepdim=True)).float()[:, 0])
        cells = [f"{torch.cat(mass[t]).mean():.3f}" for t in temps]
        print(f"| {name} | " + " | ".join(cells) + f" | {torch.cat(top1).mean():.3f} |")


if __name__ == "__main__":
    app()
