"""DVC stage: full-ranking evaluation of a trained model, CRM or E4SRec (DESIGN.md section 2), into
``metrics/<model>.json``.

The JSON records the protocol beside the numbers; ``test_history_<other>`` holds the test metrics under
the opposite history-masking setting (needed for Yelp, whose repeats make masking matter).
"""

from __future__ import annotations

import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.data.sequences import load_sequences, load_stats
from llmd4rec_core.recommenders import load_recommender
from llmd4rec_core.scoring import evaluate_by_length, protocol_record
from llmd4rec_core.seeding import pick_device, set_determinism
from stages._common import one_line_errors, stage_params

PARAMS = (
    "deterministic",
    "eval",
)
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@one_line_errors
def main(
    model: str = typer.Option(..., help="model name: reads <models_dir>/<model>/"),
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    models_dir: str = typer.Option("models", help="where the checkpoints are"),
    out: str = typer.Option("", help="metrics JSON (default metrics/<model>.json)"),
) -> None:
    params = stage_params(PARAMS, params_file)
    cfg = params.eval
    data = load_sequences(data_dir)
    stats = load_stats(data_dir)
    set_determinism(params.deterministic)
    device = pick_device()
    loaded = load_recommender(f"{models_dir}/{model}", data.num_items, device)
    metrics = evaluate_by_length(
        loaded.scorer, data, loaded.max_len, cfg.ks, cfg.batch_size, cfg.mask_history, device, model
    )
    meta = loaded.meta
    protocol = protocol_record(data, stats, cfg.ks, cfg.mask_history)
    protocol |= {"arch": meta.get("arch"), "best_epoch": meta.get("best_epoch")}
    if "params" in meta:
        protocol["loss"] = meta["params"].get("loss")
    write_json(out or f"metrics/{model}.json", {"model": model, "protocol": protocol, **metrics})
    print(f"{model}: test " + " ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items()))


if __name__ == "__main__":
    app()
