"""The ``llmd4rec`` command: every pipeline stage as a subcommand (``dvc.yaml`` calls the same code)."""

from __future__ import annotations

import typer

from stages import evaluate, export_logits, finetune_llm, kcore, logits, train_crm

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LLMD4Rec pipeline stages and tools.")
app.command("kcore", help="Acquire raw data, k-core filter, split leave-one-out.")(kcore.main)
app.command("train-crm", help="Train SASRec or GRU4Rec.")(train_crm.main)
app.command("finetune-llm", help="Fine-tune E4SRec with the downward KL from the CRM.")(finetune_llm.main)
app.command("export-logits", help="Export a model's logits to Parquet.")(export_logits.main)
app.command("evaluate", help="Full-ranking evaluation of a trained model (CRM or E4SRec).")(evaluate.main)
app.add_typer(logits.app, name="logits", help="Inspect logit exports: show one user, diff two exports.")
