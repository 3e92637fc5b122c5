"""The ``llmd4rec`` command: every pipeline stage as a subcommand (``dvc.yaml`` calls the same code)."""

from __future__ import annotations

import typer

from stages import evaluate, kcore, train_crm

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LLMD4Rec pipeline stages and tools.")
app.command("kcore", help="Acquire raw data, k-core filter, split leave-one-out.")(kcore.main)
app.command("train-crm", help="Train SASRec or GRU4Rec.")(train_crm.main)
app.command("evaluate", help="Full-ranking evaluation of a trained CRM.")(evaluate.main)
