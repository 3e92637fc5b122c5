"""Inference cost of the deployed models, side by side in one run (issue 4: "no added inference cost").

For each checkpoint: parameter count (all, and the ones training changed) and the wall time of full-
catalogue scoring (every item, history masked) for one user at a time and for batches of users, on the
same test histories. Ratios against the first model are printed, so a noisy machine affects both sides.

    python benchmarks/latency.py models/sasrec models/llmd4rec_c/round2 models/llmd4rec_l/round2
"""

from __future__ import annotations

import time

import numpy as np
import torch
import typer

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.recommenders import load_recommender
from llmd4rec_core.scoring import masked_ranks

app = typer.Typer(add_completion=False)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(all weights incl. frozen buffers, the ones training changed: LoRA, W_in, W_out for E4SRec)."""
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    total = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in buffers)
    if not hasattr(model, "w_out"):  # a CRM: every weight is trained
        return total, sum(p.numel() for p in model.parameters())
    trained = sum(
        p.numel() for n, p in model.named_parameters() if "lora_" in n or n.startswith(("w_in", "w_out"))
    )
    return total, trained


@torch.no_grad()
def seconds_per_user(
    scorer: object, histories: list[np.ndarray], targets: np.ndarray, max_len: int, batch: int
) -> float:
    """Median over 3 passes of (time to score + rank all users) / users."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, len(histories), batch):
            hist = histories[i : i + batch]
            scores = scorer.score_items(left_pad(hist, max_len)).float()  # type: ignore[attr-defined]
            masked_ranks(scores, hist, torch.as_tensor(targets[i : i + batch]))
        times.append((time.perf_counter() - start) / len(histories))
    return float(np.median(times))


@app.command()
def main(
    models: list[str],
    data_dir: str = typer.Option("data/processed"),
    users: int = typer.Option(256, help="test users timed (the first ones)"),
) -> None:
    data = load_sequences(data_dir)
    histories = data.inputs("test")[:users]
    targets = data.targets("test")[:users]
    cpu = torch.device("cpu")
    rows = []
    for path in models:
        loaded = load_recommender(path, data.num_items, cpu)
        total, trained = parameter_counts(loaded.scorer)  # type: ignore[arg-type]
        one = seconds_per_user(loaded.scorer, histories[:64], targets[:64], loaded.max_len, 1)
        many = seconds_per_user(loaded.scorer, histories, targets, loaded.max_len, 64)
        rows.append((path, total, trained, one, many))
    print(f"threads {torch.get_num_threads()}, {users} test users, full ranking of {data.num_items} items")
    print(
        f"{'model':32} {'params':>12} {'trainable':>11} {'ms/user b=1':>12} {'ratio':>7} "
        f"{'ms/user b=64':>13} {'ratio':>7}"
    )
    base = rows[0]
    for path, total, trained, one, many in rows:
        print(
            f"{path:32} {total:12,d} {trained:11,d} {one * 1e3:12.3f} {one / base[3]:7.2f} "
            f"{many * 1e3:13.3f} {many / base[4]:7.2f}"
        )


if __name__ == "__main__":
    app()
