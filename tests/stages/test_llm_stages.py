"""loop_init -> finetune_llm (baseline and rounds) -> export_logits -> distill_crm -> evaluate -> logits
show/diff on tiny data with a tiny offline decoder, and bad inputs: each one line on stderr, exit code 2,
nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from tiny import tiny_backbone, tiny_processed, write_params
from typer.testing import CliRunner

from llmd4rec_core.logits.schema import read_logits
from llmd4rec_core.params import load_params
from stages import (
    distill_crm,
    evaluate,
    export_logits,
    finetune_llm,
    logits,
    loop_init,
    select_instances,
    train_crm,
)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_backbone(tmp_path_factory.mktemp("backbone"), "qwen2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, backbone: Path) -> Path:
    """A tiny project with SASRec trained and E4SRec fine-tuned (shared by the read-only tests)."""
    import os

    os.environ["TQDM_DISABLE"] = "1"
    root = tmp_path_factory.mktemp("project")
    tiny_processed(root)
    write_params(root, {("llm", "backbone"): str(backbone)})
    crm_args = ["--model", "sasrec", "--out-dir", root / "models", "--metrics-dir", root / "metrics"]
    assert invoke(train_crm.app, root, *crm_args).exit_code == 0
    assert invoke(loop_init.app, root, "--models-dir", root / "models").exit_code == 0
    for extra in ([], ["--round", "round1", "--prev", "round0"]):
        result = run_finetune(root, *extra)
        assert result.exit_code == 0, result.output
    return root


def invoke(app: Any, root: Path, *args: Any) -> Any:
    common = ["--params-file", str(root / "params.yaml"), "--data-dir", str(root / "processed")]
    return CliRunner().invoke(app, [*map(str, args), *common])


def run_finetune(root: Path, *extra: Any) -> Any:
    return invoke(
        finetune_llm.app, root, "--models-dir", root / "models", "--metrics-dir", root / "metrics", *extra
    )


def run_export(
    root: Path,
    out: Path,
    model: str = "llmd4rec_l/round1",
    split: str = "train",
    selection: Path | None = None,
) -> Any:
    chosen = [] if selection is None else ["--selection", selection]
    return invoke(
        export_logits.app, root, "--model", model, "--split", split, "--round", "round1",
        "--models-dir", root / "models", "--out", out, "--timing-out", out.with_suffix(".json"), *chosen,
    )  # fmt: skip


def run_select(root: Path, out: Path) -> Any:
    return invoke(
        select_instances.app, root, "--models-dir", root / "models", "--out", out,
        "--timing-out", out.with_suffix(".timing.json"),
    )  # fmt: skip


def run_distill(root: Path, round_name: str, prev: str, models: Path, logits_dir: Path) -> Any:
    return invoke(
        distill_crm.app, root, "--round", round_name, "--prev", prev, "--models-dir", models,
        "--logits-dir", logits_dir, "--metrics-dir", root / "metrics",
    )  # fmt: skip


def assert_one_line_error(result: Any, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr, result.stderr


def test_finetune_writes_adapters_heads_and_curve(trained: Path) -> None:
    models = trained / "models"
    for name in ("e4srec", "llmd4rec_l/round1", "llmd4rec_l/round0"):
        assert {p.name for p in (models / name).iterdir()} == {"adapter", "heads.safetensors", "config.json"}
    baseline = json.loads((models / "e4srec" / "config.json").read_text())
    assert baseline["arch"] == "e4srec" and baseline["distill"] == {"gamma": 0.0}
    assert baseline["started_from"].endswith("llmd4rec_l/round0")
    round1 = json.loads((models / "llmd4rec_l" / "round1" / "config.json").read_text())
    assert round1["distill"]["T1"] == 0.6 and round1["distill"]["gamma"] == 1.0
    assert round1["distill"]["teacher"].endswith("llmd4rec_c/round0") and round1["distill"]["round"] == 1
    # round 0 is the pretrained CRM, copied, and both LLMs start from the same initialisation
    crm0 = models / "llmd4rec_c" / "round0" / "model.safetensors"
    assert crm0.read_bytes() == (models / "sasrec" / "model.safetensors").read_bytes()
    for name in ("e4srec", "llmd4rec_l/round1"):
        curve = (trained / "metrics" / "curves" / f"{name.replace('/', '_')}.tsv").read_text().splitlines()
        assert len(curve) == 3 and "train_kl" in curve[0]
    assert "\t0.0\t" in (trained / "metrics" / "curves" / "e4srec.tsv").read_text()  # no KL for the baseline


def test_two_rounds_continue_and_update_embeddings(trained: Path, tmp_path: Path, backbone: Path) -> None:
    """Round 1 export -> distill_crm -> round 2 LLM reads round 1's CRM table and continues round 1's LLM."""
    models = tmp_path / "models"
    shutil.copytree(trained / "models", models)
    logits_dir = tmp_path / "logits"
    assert run_export(trained, logits_dir / "llmd4rec_l" / "round1" / "train.parquet").exit_code == 0
    result = run_distill(trained, "round1", "round0", models, logits_dir)
    assert result.exit_code == 0, result.output
    crm1 = json.loads((models / "llmd4rec_c" / "round1" / "config.json").read_text())
    used = load_params(trained / "params.yaml")
    assert (
        crm1["arch"] == "sasrec" and crm1["distill"]["T2"] == used.T2 and crm1["distill"]["teacher_rows"] > 0
    )
    assert crm1["distill"]["kl_mask_history"] is used.kl_mask_history
    sasrec = load_file(models / "sasrec" / "model.safetensors")
    crm1_weights = load_file(models / "llmd4rec_c" / "round1" / "model.safetensors")
    assert {k: v.shape for k, v in crm1_weights.items()} == {k: v.shape for k, v in sasrec.items()}
    curve = (trained / "metrics" / "curves" / "llmd4rec_c_round1.tsv").read_text().splitlines()
    assert "train_kl" in curve[0] and "train_w2" in curve[0]

    for update in (True, False):
        write_params(trained, {("llm", "backbone"): str(backbone), ("embedding_update",): update})
        result = invoke(
            finetune_llm.app, trained, "--round", "round2", "--prev", "round1",
            "--models-dir", models, "--metrics-dir", tmp_path / "metrics",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        heads = load_file(models / "llmd4rec_l" / "round2" / "heads.safetensors")
        source = crm1_weights if update else sasrec
        assert torch.equal(heads["item_table"], source["item_embeddings.weight"])
        meta = json.loads((models / "llmd4rec_l" / "round2" / "config.json").read_text())
        assert meta["started_from"].endswith("llmd4rec_l/round1") and meta["llm"]["epochs"] == 1
        if update:  # W_in was re-fitted to the new table (llm/embedding_update.py) and the fit recorded
            assert meta["distill"]["refit_w_in"] is True and 0 <= meta["distill"]["refit_residual"] < 1
    write_params(trained, {("llm", "backbone"): str(backbone)})


@pytest.mark.parametrize("method", ["dllm2rec", "none"])
def test_distill_method_switches_the_upward_strategy(
    trained: Path, tmp_path: Path, backbone: Path, method: str
) -> None:
    """distill.method: DLLM2Rec's ranking distillation on the same export, or L_rec alone, which with the
    pretraining seed and a fresh init is exactly the pretrained SASRec again."""
    models = tmp_path / "models"
    shutil.copytree(trained / "models", models)
    logits_dir = tmp_path / "logits"
    assert run_export(trained, logits_dir / "llmd4rec_l" / "round1" / "train.parquet").exit_code == 0
    edit = {("llm", "backbone"): str(backbone), ("distill", "method"): method}
    write_params(trained, edit | {("distill", "dllm2rec", "top_k"): 3})
    try:
        result = run_distill(trained, "round1", "round0", models, logits_dir)
    finally:
        write_params(trained, {("llm", "backbone"): str(backbone)})
    assert result.exit_code == 0, result.output
    meta = json.loads((models / "llmd4rec_c" / "round1" / "config.json").read_text())
    assert meta["distill"]["method"] == method and "T2" not in meta["distill"]
    weights = load_file(models / "llmd4rec_c" / "round1" / "model.safetensors")
    sasrec = load_file(models / "sasrec" / "model.safetensors")
    same = all(torch.equal(weights[k], sasrec[k]) for k in sasrec)
    if method == "none":
        assert (
            same and "train_kl" not in (trained / "metrics" / "curves" / "llmd4rec_c_round1.tsv").read_text()
        )
    else:
        assert not same and meta["distill"]["top_k"] == 3 and meta["distill"]["lambda_d"] > 0
        curve = (trained / "metrics" / "curves" / "llmd4rec_c_round1.tsv").read_text().splitlines()
        assert "train_kl" in curve[0] and len(curve) > 1
        # embedding distillation was on (alpha > 0) and is baked away: a plain SASRec checkpoint
        assert meta["distill"]["embedding_alpha"] > 0 and meta["distill"]["teacher_items"].endswith("round1")
        assert set(weights) == set(sasrec) and meta["arch"] == "sasrec"


def test_selection_of_all_exports_exactly_the_plain_export(trained: Path, tmp_path: Path) -> None:
    assert run_select(trained, tmp_path / "selection.json").exit_code == 0
    record = json.loads((tmp_path / "selection.json").read_text())
    assert record["method"] == "all" and record["instances"] is None
    assert run_export(trained, tmp_path / "plain.parquet").exit_code == 0
    assert run_export(trained, tmp_path / "all.parquet", selection=tmp_path / "selection.json").exit_code == 0
    assert (tmp_path / "plain.parquet").read_bytes() == (tmp_path / "all.parquet").read_bytes()


def test_alkdrec_exports_only_its_budget_and_distils_from_it(
    trained: Path, tmp_path: Path, backbone: Path
) -> None:
    """select_instances draws the budget with the teacher CRM's difficulty; the export scores only those
    instances (its timing says so); distill_crm trains with Eq. 1 on them."""
    models = tmp_path / "models"
    shutil.copytree(trained / "models", models)
    edit = {("llm", "backbone"): str(backbone), ("distill", "method"): "alkdrec"}
    write_params(trained, edit | {("distill", "alkdrec", "budget"): 6, ("distill", "alkdrec", "top_k"): 3})
    logits_dir = tmp_path / "logits"
    export = logits_dir / "llmd4rec_l" / "round1" / "train.parquet"
    try:
        assert run_select(trained, tmp_path / "selection.json").exit_code == 0
        result = run_export(trained, export, selection=tmp_path / "selection.json")
        assert result.exit_code == 0, result.output
        distilled = run_distill(trained, "round1", "round0", models, logits_dir)
        assert run_select(trained, tmp_path / "again.json").exit_code == 0
        write_params(trained, {**edit, ("distill", "alkdrec", "budget"): 10**6})
        too_big = run_select(trained, tmp_path / "big.json")
    finally:
        write_params(trained, {("llm", "backbone"): str(backbone)})
    record = json.loads((tmp_path / "selection.json").read_text())
    assert record["method"] == "alkdrec" and len(record["instances"]) == 6
    assert (
        len({tuple(p) for p in record["instances"]}) == 6 and record["details"]["difficulty"] == "consistency"
    )
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "selection.json").read_bytes()  # seeded
    rows = read_logits(export).rows
    assert sorted(zip(rows.user_id.tolist(), rows.position.tolist(), strict=True)) == sorted(
        tuple(p) for p in record["instances"]
    )
    timing = json.loads(export.with_suffix(".json").read_text())
    assert timing["forward_passes"] == 6 and timing["pool"] == record["pool"] > 6
    assert timing["selection"] == "alkdrec"
    assert distilled.exit_code == 0, distilled.output
    meta = json.loads((models / "llmd4rec_c" / "round1" / "config.json").read_text())
    assert meta["distill"]["method"] == "alkdrec" and meta["distill"]["teacher_rows"] == 6
    assert_one_line_error(too_big, "distill.alkdrec.budget: 1000000 exceeds the export pool")
    assert not (tmp_path / "big.json").exists()


def test_export_is_deterministic_and_evaluation_agrees(trained: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = run_export(trained, tmp_path / f"{name}.parquet")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    export = read_logits(tmp_path / "a.parquet")
    assert export.meta["producer"] == "llmd4rec_l/round1" and export.meta["round"] == 1
    assert export.meta["top_k"] == 5
    assert len(export.rows) == len(set(zip(export.rows.user_id, export.rows.position, strict=True)))
    timing = json.loads((tmp_path / "a.json").read_text())
    assert timing["rows"] == len(export.rows) and timing["bytes"] > 0
    # evaluation ranks == the ranks an export of the test split stores
    assert run_export(trained, tmp_path / "test.parquet", split="test").exit_code == 0
    out = tmp_path / "metrics.json"
    result = invoke(
        evaluate.app,
        trained,
        "--model",
        "llmd4rec_l/round1",
        "--models-dir",
        trained / "models",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    ranks = read_logits(tmp_path / "test.parquet").rows.target_rank
    assert metrics["test"]["hr@10"] == pytest.approx(float((ranks <= 10).mean()), abs=1e-12)
    assert metrics["protocol"]["arch"] == "e4srec"


def test_crm_export_show_and_diff(trained: Path, tmp_path: Path) -> None:
    assert run_export(trained, tmp_path / "llm.parquet").exit_code == 0
    assert run_export(trained, tmp_path / "crm.parquet", model="sasrec").exit_code == 0
    runner = CliRunner()
    show = runner.invoke(
        logits.app,
        ["show", str(tmp_path / "llm.parquet"), "--user", "3", "--temperature", "0.5", "--top", "4",
         "--data-dir", str(trained / "processed")],
    )  # fmt: skip
    assert show.exit_code == 0, show.output
    assert "user 3 position" in show.stdout and "history [" in show.stdout and "rank" in show.stdout
    assert show.stdout.count(" logit ") == 4 * show.stdout.count("position")
    diff = runner.invoke(logits.app, ["diff", str(tmp_path / "crm.parquet"), str(tmp_path / "llm.parquet")])
    assert_one_line_error(diff, "-k: must lie in 1..5")  # the default K = 10 exceeds these exports' top_k
    diff = runner.invoke(
        logits.app, ["diff", str(tmp_path / "crm.parquet"), str(tmp_path / "llm.parquet"), "-k", "5"]
    )
    assert diff.exit_code == 0, diff.output
    overlap = float(diff.stdout.split("overlap@5: ")[1].split()[0])
    assert 0.0 <= overlap < 1.0 and "(sasrec, round 1)" in diff.stdout
    same = runner.invoke(
        logits.app, ["diff", str(tmp_path / "llm.parquet"), str(tmp_path / "llm.parquet"), "-k", "5"]
    )
    assert "overlap@5: 1.0000" in same.stdout and "mean KL(A || B) at T = 1.0: 0.0000" in same.stdout


def test_bad_inputs(trained: Path, tmp_path: Path, backbone: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(logits.app, ["show", str(tmp_path / "nope.parquet"), "--user", "1"])
    assert_one_line_error(missing, "nope.parquet: logits file not found")
    (tmp_path / "empty.parquet").write_bytes(b"")
    empty = runner.invoke(
        logits.app, ["diff", str(tmp_path / "empty.parquet"), str(tmp_path / "empty.parquet")]
    )
    assert_one_line_error(empty, "empty.parquet: logits file is empty")
    assert run_export(trained, tmp_path / "ok.parquet").exit_code == 0
    for t in ("0", "-0.5"):
        bad_t = runner.invoke(
            logits.app, ["show", str(tmp_path / "ok.parquet"), "--user", "1", "--temperature", t]
        )
        assert_one_line_error(bad_t, "--temperature: must be > 0")

    write_params(trained, {("llm", "backbone"): str(backbone), ("export", "top_k"): 10_000})
    try:
        assert_one_line_error(run_export(trained, tmp_path / "k.parquet"), "export.top_k: 10000 exceeds")
        assert not (tmp_path / "k.parquet").exists() and not (tmp_path / "k.json").exists()
        write_params(trained, {("llm", "backbone"): str(tmp_path / "no-such-model")})
        models = tmp_path / "m"
        shutil.copytree(trained / "models" / "sasrec", models / "sasrec")
        result = invoke(loop_init.app, trained, "--models-dir", models)
        assert_one_line_error(result, "llm.backbone: ")
        assert not (models / "llmd4rec_l").exists() and not (models / "llmd4rec_c").exists()
    finally:
        write_params(trained, {("llm", "backbone"): str(backbone)})
    config = models / "sasrec" / "config.json"
    meta = json.loads(config.read_text())
    meta["config"]["num_items"] += 1
    config.write_text(json.dumps(meta))
    assert_one_line_error(invoke(loop_init.app, trained, "--models-dir", models), "does not match the data's")
    assert not (models / "llmd4rec_l").exists()
    # rounds must chain, and the upward stage needs its teacher's export
    wrong = run_finetune(trained, "--round", "round2", "--prev", "round0")
    assert_one_line_error(wrong, "--prev round0: round round2 continues from round1")
    assert_one_line_error(run_finetune(trained, "--round", "round2"), "--round and --prev go together")
    assert_one_line_error(run_finetune(trained, "--round", "r2", "--prev", "r1"), "'r2' is not of the form")
    no_logits = run_distill(trained, "round1", "round0", trained / "models", tmp_path / "none")
    assert_one_line_error(no_logits, "llmd4rec_l/round1/train.parquet: logits file not found")
    assert not (trained / "models" / "llmd4rec_c" / "round1").exists()
    valid_export = tmp_path / "l" / "llmd4rec_l" / "round1" / "train.parquet"
    assert run_export(trained, valid_export, split="valid").exit_code == 0
    wrong_split = run_distill(trained, "round1", "round0", trained / "models", tmp_path / "l")
    assert_one_line_error(wrong_split, "split is 'valid'; the upward KL needs 'train'")
