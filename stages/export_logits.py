"""DVC stage: score a set of instances with a trained model (CRM or E4SRec) and export the logits to
Parquet (schema: llmd4rec_core/logits/schema.py and the README): ``logits/<model>/<split>.parquet``.

``--split train`` exports each user's ``export.instances_per_user`` most recent training prefixes (the
teacher signal of the upward KL), or with ``--selection`` only the instances that file names (ALKDRec's
budget: ``stages/select_instances.py``); ``valid`` / ``test`` one instance per user.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.selection import apply_selection, read_selection
from llmd4rec_core.data.sequences import load_sequences, load_stats
from llmd4rec_core.distributed import device_of, init_world
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.export import export_rows_sharded
from llmd4rec_core.logits.schema import write_logits
from llmd4rec_core.params import round_index
from llmd4rec_core.recommenders import load_recommender
from llmd4rec_core.seeding import set_determinism
from stages._common import one_line_errors, stage_params
from stages._launch import relaunch_under_torchrun

PARAMS = ("deterministic", "export", "distributed")
SPLITS = ("train", "valid", "test")
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@one_line_errors
def main(
    model: str = typer.Option(..., help="model name: reads <models_dir>/<model>/"),
    split: str = typer.Option("train", help="train | valid | test"),
    round_name: str = typer.Option(None, "--round", help="LLMD4Rec round of the producer, e.g. round1"),
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    models_dir: str = typer.Option("models", help="where the checkpoints are"),
    out: str = typer.Option("", help="Parquet file (default logits/<model>/<split>.parquet)"),
    timing_out: str = typer.Option("", help="timing JSON (default metrics/export_<model>_<split>.json)"),
    selection: str = typer.Option("", help="train split: score only the instances of this selection file"),
) -> None:
    if split not in SPLITS:
        raise InputError(f"--split: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if selection and split != "train":
        raise InputError(f"--selection: applies to the train split only, not {split!r}")
    chosen = read_selection(selection) if selection else None
    params = stage_params(PARAMS, params_file)
    relaunch_under_torchrun(params.distributed.nproc, "stages.export_logits")
    world = init_world(params.distributed.backend)
    cfg = params.export
    data = load_sequences(data_dir)
    stats = load_stats(data_dir)
    if cfg.top_k > data.num_items:
        raise InputError(
            f"{params_file}: export.top_k: {cfg.top_k} exceeds the catalogue's {data.num_items} items"
        )
    set_determinism(params.deterministic)
    device = device_of(world)
    loaded = load_recommender(f"{models_dir}/{model}", data.num_items, device)
    pool = split_instances(data, split, cfg.instances_per_user)  # type: ignore[arg-type]
    instances = pool if chosen is None else apply_selection(selection, chosen, pool)
    start = time.perf_counter()
    rows = export_rows_sharded(
        world, loaded.scorer, instances, data.num_items, loaded.max_len, cfg.top_k, cfg.batch_size, device
    )
    seconds = time.perf_counter() - start
    if rows is None:  # not rank 0: rank 0 merged the shards and writes the file
        return
    meta = {
        "producer": model,
        "producer_arch": loaded.meta.get("arch"),
        "round": None if round_name is None else round_index(round_name, "--round"),
        "split": split,
        "params_sha256": loaded.config_sha256,
        "dataset": stats.get("dataset"),
        "raw_sha256": stats.get("raw_sha256"),
    }
    path = out or f"logits/{model}/{split}.parquet"
    write_logits(path, rows, meta)

    size = Path(path).stat().st_size
    timing = {"rows": len(rows), "seconds": round(seconds, 1), "bytes": size, "forward_passes": len(rows)}
    timing |= {"pool": len(pool), "selection": None if chosen is None else chosen["method"]}
    timing["processes"] = world.size
    write_json(timing_out or f"metrics/export_{model}_{split}.json", timing)
    print(f"{model} {split}: {len(rows)} rows in {seconds:.0f}s -> {path} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    app()
