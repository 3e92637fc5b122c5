"""DVC stage: round 0 of Algorithm 1 (lines 1-2): the pretrained CRM and a freshly initialised LLM.

Copies ``models/<llm.crm>/`` to ``models/llmd4rec_c/round0/`` and writes ``models/llmd4rec_l/round0/``:
new LoRA adapters, W_in and W_out (seeded) around the frozen backbone, with the CRM's item table E.
Every round t then reads round t-1 the same way, and the E4SRec baseline starts from the same LLM.
"""

from __future__ import annotations

import shutil

import typer

from llmd4rec_core.atomic import atomic_path
from llmd4rec_core.checkpoint import load_checkpoint
from llmd4rec_core.data.sequences import load_sequences, load_stats
from llmd4rec_core.data.titles import item_titles
from llmd4rec_core.llm.checkpoint import build_e4srec, save_e4srec
from llmd4rec_core.seeding import pick_device, seed_everything
from stages._common import one_line_errors, stage_params

PARAMS = ("seed", "llm")
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@one_line_errors
def main(
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    models_dir: str = typer.Option("models", help="reads <models_dir>/<llm.crm>/, writes the round0 dirs"),
) -> None:
    params = stage_params(PARAMS, params_file)
    cfg = params.llm
    data = load_sequences(data_dir)
    crm_dir = f"{models_dir}/{cfg.crm}"
    crm, _ = load_checkpoint(crm_dir, num_items=data.num_items)
    titles = (
        item_titles(data_dir, str(load_stats(data_dir).get("dataset"))) if cfg.item_text == "title" else None
    )
    seed_everything(params.seed)
    model = build_e4srec(cfg, crm.item_embeddings.weight, pick_device(), titles)
    save_e4srec(f"{models_dir}/llmd4rec_l/round0", model, cfg, titles, {"round": 0, "crm": crm_dir})
    with atomic_path(f"{models_dir}/llmd4rec_c/round0") as tmp:
        shutil.copytree(crm_dir, tmp)
    print(f"round0: {crm_dir} -> {models_dir}/llmd4rec_c/round0, new LLM -> {models_dir}/llmd4rec_l/round0")


if __name__ == "__main__":
    app()
