"""DVC stage: choose the training instances the LLM's export scores: ``data/selection.json``
(format: llmd4rec_core/data/selection.py).

With ``distill.method: alkdrec`` it draws ALKDRec's budget from the pool (the train split's
``export.instances_per_user`` most recent prefixes per user) with the max-min policy, the difficulty of
each instance coming from the pretrained teacher CRM (``models/<llm.crm>``); only those instances are
then scored by the LLM, which is the method's saving. Any other method selects the whole pool (the file
does not depend on which one, so switching among them reruns no export). Timing goes to
``metrics/select_instances.json``.
"""

from __future__ import annotations

import time

import numpy as np
import typer

from llmd4rec_core.atomic import write_json
from llmd4rec_core.checkpoint import load_checkpoint
from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.selection import selection_record, write_selection
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.errors import InputError
from llmd4rec_core.seeding import pick_device, set_determinism
from llmd4rec_core.strategies.alkdrec import difficulty_from_target_rank, draw_budget
from llmd4rec_core.strategies.difficulty import consistency_difficulties, target_ranks
from stages._common import one_line_errors, stage_params

PARAMS = (
    "seed",
    "deterministic",
    "distill.method",
    "distill.alkdrec",
    "export.instances_per_user",
    "llm.crm",
)
SELECTION_STREAM = 0x5E1EC7  # the draw's random stream, np.random.default_rng([seed, SELECTION_STREAM]):
# distill_crm@round<t> uses [seed, t], so the constant must not be a plausible round number
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@one_line_errors
def main(
    params_file: str = typer.Option("params.yaml", help="params file"),
    data_dir: str = typer.Option("data/processed", help="output of the kcore stage"),
    models_dir: str = typer.Option("models", help="reads the teacher CRM <models_dir>/<llm.crm>/"),
    out: str = typer.Option("data/selection.json", help="the selection file"),
    timing_out: str = typer.Option("metrics/select_instances.json", help="timing JSON"),
    batch_size: int = typer.Option(512, help="instances scored at once (does not change results)"),
) -> None:
    params = stage_params(PARAMS, params_file)
    data = load_sequences(data_dir)
    pool = split_instances(data, "train", params.export.instances_per_user)
    start = time.perf_counter()
    if params.distill.method != "alkdrec":
        record = selection_record("all", pool, None, {})
    else:
        cfg = params.distill.alkdrec
        if cfg.budget > len(pool):
            raise InputError(
                f"{params_file}: distill.alkdrec.budget: {cfg.budget} exceeds the export pool's {len(pool)} "
                "instances (export.instances_per_user)"
            )
        set_determinism(params.deterministic)
        device = pick_device()
        teacher_dir = f"{models_dir}/{params.llm.crm}"
        crm, _ = load_checkpoint(teacher_dir, num_items=data.num_items)
        crm = crm.to(device).eval()
        max_len = crm.cfg.max_len
        if cfg.difficulty == "consistency":
            difficulty = consistency_difficulties(crm, pool, max_len, batch_size, device)
        else:
            difficulty = difficulty_from_target_rank(target_ranks(crm, pool, max_len, batch_size, device))
        rng = np.random.default_rng([params.seed, SELECTION_STREAM])
        try:
            drawn = draw_budget(
                difficulty,
                rng,
                budget=cfg.budget,
                mu=cfg.mu,
                ratios=tuple(cfg.ratios),  # type: ignore[arg-type]
                resolve_each_draw=cfg.resolve_each_draw,
                policy=cfg.policy,
            )
        except ValueError as exc:  # e.g. a budget beyond p*'s support when the game is solved once
            raise InputError(f"{params_file}: distill.alkdrec: {exc}") from None
        order = np.argsort(-difficulty, kind="stable")  # hardest first
        rank = np.empty(len(pool), np.int64)
        rank[order] = np.arange(1, len(pool) + 1)
        details = {
            "teacher": teacher_dir,
            "difficulty": cfg.difficulty,
            "difficulty_rank_of_drawn": [int(rank[i]) for i in drawn],  # 1 = hardest (ties by index)
        }
        record = selection_record("alkdrec", pool, drawn, details)
    seconds = time.perf_counter() - start
    write_selection(out, record)
    chosen = len(pool) if record["instances"] is None else len(record["instances"])
    write_json(timing_out, {"method": record["method"], "pool": len(pool), "selected": chosen,
                            "seconds": round(seconds, 1)})  # fmt: skip
    print(
        f"select_instances: {chosen} of {len(pool)} instances ({record['method']}) in {seconds:.1f}s -> {out}"
    )


if __name__ == "__main__":
    app()
