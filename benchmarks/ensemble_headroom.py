"""How much a CRM could gain from an LLM teacher at most, read off a log-linear ensemble of the two:
NDCG@10 of alpha * log softmax(y_a) + (1 - alpha) * log softmax(y_b) on a split, history masked.

Distillation moves the student towards the teacher's distribution; a student that ends up as good as the
two models' ensemble is the usual best case, so the ensemble's gain over the CRM bounds what the upward
KL can be expected to deliver (docs/results.md).

    python benchmarks/ensemble_headroom.py sasrec llmd4rec_l/round1 --split valid
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
import typer

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.metrics import ranking_metrics
from llmd4rec_core.recommenders import load_recommender
from llmd4rec_core.scoring import masked_ranks

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model_a: str = typer.Argument(..., help="e.g. sasrec"),
    model_b: str = typer.Argument(..., help="e.g. llmd4rec_l/round1"),
    split: str = typer.Option("valid", help="valid | test"),
    alphas: Annotated[list[float] | None, typer.Option("--alpha")] = None,
    data_dir: str = typer.Option("data/processed"),
    models_dir: str = typer.Option("models"),
    batch_size: int = typer.Option(256),
) -> None:
    grid = alphas or [0.0, 0.25, 0.5, 0.75, 1.0]
    data = load_sequences(data_dir)
    device = torch.device("cpu")
    a = load_recommender(f"{models_dir}/{model_a}", data.num_items, device)
    b = load_recommender(f"{models_dir}/{model_b}", data.num_items, device)
    histories, targets = data.inputs(split), data.targets(split)
    order = np.argsort([len(h) for h in histories], kind="stable")  # similar lengths share a batch
    ranks: dict[float, list[np.ndarray]] = {alpha: [] for alpha in grid}
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = [histories[i] for i in idx]
            log_a = torch.log_softmax(a.scorer.score_items(left_pad(batch, a.max_len)).float()[:, 1:], -1)
            log_b = torch.log_softmax(b.scorer.score_items(left_pad(batch, b.max_len)).float()[:, 1:], -1)
            target = torch.as_tensor(targets[idx])
            for alpha in grid:
                mix = alpha * log_a + (1 - alpha) * log_b  # [B, I]
                scores = torch.cat([torch.full_like(mix[:, :1], float("-inf")), mix], dim=1)
                ranks[alpha].append(masked_ranks(scores, batch, target).numpy())
    print(f"| alpha ({model_a}) | {split} NDCG@10 | {split} HR@10 |")
    print("|---|---|---|")
    for alpha in grid:
        m = ranking_metrics(np.concatenate(ranks[alpha]), [10])
        print(f"| {alpha} | {m['ndcg@10']:.4f} | {m['hr@10']:.4f} |")


if __name__ == "__main__":
    app()
