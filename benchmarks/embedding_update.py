"""What the embedding update does to an LLM before any training: validation NDCG@10 of round t-1's LLM
with its own table, with round t-1's CRM table swapped in bare, and swapped in with W_in re-fitted by
least squares (``loop.refit_w_in``, llmd4rec_core/llm/embedding_update.py).

    python benchmarks/embedding_update.py --llm llmd4rec_l/round1 --crm llmd4rec_c/round1
"""

from __future__ import annotations

import torch
import typer

from llmd4rec_core.checkpoint import load_checkpoint
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.llm.checkpoint import load_e4srec
from llmd4rec_core.llm.embedding_update import update_item_table
from llmd4rec_core.metrics import ranking_metrics
from llmd4rec_core.scoring import ranks_by_length

app = typer.Typer(add_completion=False)


@app.command()
def main(
    llm: str = typer.Option("llmd4rec_l/round1", help="the LLM a round continues from"),
    crm: str = typer.Option("llmd4rec_c/round1", help="the CRM whose table the round reads"),
    data_dir: str = typer.Option("data/processed"),
    models_dir: str = typer.Option("models"),
    batch_size: int = typer.Option(64),
) -> None:
    data = load_sequences(data_dir)
    device = torch.device("cpu")
    table = load_checkpoint(f"{models_dir}/{crm}", num_items=data.num_items)[0].item_embeddings.weight
    print(f"| {llm} | residual of the fit | valid NDCG@10 | valid HR@10 |")
    print("|---|---|---|---|")
    for label, swap, refit in (
        ("own table", False, False),
        ("bare swap", True, False),
        ("re-fit W_in", True, True),
    ):
        model, _ = load_e4srec(f"{models_dir}/{llm}", device, data.num_items)
        residual = update_item_table(model, table, crm, refit) if swap else 0.0
        ranks = ranks_by_length(
            model, data.inputs("valid"), data.targets("valid"), model.max_len, batch_size, device, "valid"
        )
        m = ranking_metrics(ranks["masked"], [10])
        fit = f"{residual:.3f}" if refit else "–"
        print(f"| {label} | {fit} | {m['ndcg@10']:.4f} | {m['hr@10']:.4f} |", flush=True)


if __name__ == "__main__":
    app()
