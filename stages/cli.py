"""The ``llmd4rec`` command: every pipeline stage as a subcommand (``dvc.yaml`` calls the same code)."""

from __future__ import annotations

import typer

from stages import (
    distill_crm,
    evaluate,
    export_logits,
    finetune_llm,
    kcore,
    logits,
    loop_init,
    report,
    train_crm,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LLMD4Rec pipeline stages and tools.")
app.command("kcore", help="Acquire raw data, k-core filter, split leave-one-out.")(kcore.main)
app.command("train-crm", help="Train SASRec or GRU4Rec.")(train_crm.main)
app.command("loop-init", help="Round 0 of Algorithm 1: pretrained CRM and a fresh LLM.")(loop_init.main)
app.command("finetune-llm", help="Fine-tune E4SRec: the baseline, or a round with the downward KL.")(
    finetune_llm.main
)
app.command("distill-crm", help="Train the CRM of a round with the upward KL from the LLM's logits.")(
    distill_crm.main
)
app.command("export-logits", help="Export a model's logits to Parquet.")(export_logits.main)
app.command("evaluate", help="Full-ranking evaluation of a trained model (CRM or E4SRec).")(evaluate.main)
app.command("report", help="Markdown + PNG report of every model, round and experiment.")(report.main)
app.add_typer(logits.app, name="logits", help="Inspect logit exports: show one user, diff two exports.")
