"""finetune_llm -> export_logits -> evaluate -> logits show/diff on tiny data with a tiny offline decoder,
and the issue's bad inputs: each one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny import tiny_backbone, tiny_processed, write_params
from typer.testing import CliRunner

from llmd4rec_core.logits.schema import read_logits
from stages import evaluate, export_logits, finetune_llm, logits, train_crm


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
    result = run_finetune(root)
    assert result.exit_code == 0, result.output
    return root


def invoke(app: Any, root: Path, *args: Any) -> Any:
    common = ["--params-file", str(root / "params.yaml"), "--data-dir", str(root / "processed")]
    return CliRunner().invoke(app, [*map(str, args), *common])


def run_finetune(root: Path, *extra: Any) -> Any:
    return invoke(
        finetune_llm.app, root, "--out-dir", root / "models", "--metrics-dir", root / "metrics", *extra
    )


def run_export(root: Path, out: Path, model: str = "e4srec", split: str = "train") -> Any:
    return invoke(
        export_logits.app, root, "--model", model, "--split", split, "--round", 1,
        "--models-dir", root / "models", "--out", out, "--timing-out", out.with_suffix(".json"),
    )  # fmt: skip


def assert_one_line_error(result: Any, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr, result.stderr


def test_finetune_writes_adapters_heads_and_curve(trained: Path) -> None:
    ckpt = trained / "models" / "e4srec"
    assert {p.name for p in ckpt.iterdir()} == {"adapter", "heads.safetensors", "config.json"}
    meta = json.loads((ckpt / "config.json").read_text())
    assert meta["arch"] == "e4srec" and meta["distill"] == {"T1": 0.6, "gamma": 1.0, "sample_weights": True}
    curve = (trained / "metrics" / "curves" / "e4srec.tsv").read_text().splitlines()
    assert len(curve) == 3 and "train_kl" in curve[0]


def test_export_is_deterministic_and_evaluation_agrees(trained: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = run_export(trained, tmp_path / f"{name}.parquet")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    export = read_logits(tmp_path / "a.parquet")
    assert export.meta["producer"] == "e4srec" and export.meta["round"] == 1 and export.meta["top_k"] == 5
    assert len(export.rows) == len(set(zip(export.rows.user_id, export.rows.position, strict=True)))
    timing = json.loads((tmp_path / "a.json").read_text())
    assert timing["rows"] == len(export.rows) and timing["bytes"] > 0
    # evaluation ranks == the ranks an export of the test split stores
    assert run_export(trained, tmp_path / "test.parquet", split="test").exit_code == 0
    out = tmp_path / "metrics.json"
    result = invoke(
        evaluate.app, trained, "--model", "e4srec", "--models-dir", trained / "models", "--out", out
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
        out = tmp_path / "out"
        crm = trained / "models" / "sasrec"
        result = invoke(finetune_llm.app, trained, "--out-dir", out, "--metrics-dir", out, "--crm-dir", crm)
        assert_one_line_error(result, "llm.backbone: ")
        assert not out.exists()
    finally:
        write_params(trained, {("llm", "backbone"): str(backbone)})
    config = trained / "models" / "sasrec" / "config.json"
    original = config.read_text()
    meta = json.loads(original)
    meta["config"]["num_items"] += 1
    config.write_text(json.dumps(meta))
    try:
        out = tmp_path / "o2"
        result = invoke(
            finetune_llm.app, trained, "--out-dir", out, "--metrics-dir", out, "--crm-dir", config.parent
        )
        assert_one_line_error(result, "does not match the data's")
        assert not (tmp_path / "o2").exists()
    finally:
        config.write_text(original)
