"""train_crm and evaluate stages on a tiny processed dataset: outputs, and one-line errors on bad params."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny import tiny_processed, write_params
from typer.testing import CliRunner

from stages import evaluate, train_crm


def common_args(root: Path, model: str) -> list[str]:
    params, data = str(root / "params.yaml"), str(root / "processed")
    return ["--model", model, "--params-file", params, "--data-dir", data]


def run_train(root: Path, model: str = "sasrec") -> Any:
    args = ["--out-dir", str(root / "models"), "--metrics-dir", str(root / "metrics")]
    return CliRunner().invoke(train_crm.app, [*common_args(root, model), *args])


def run_evaluate(root: Path, out: Path, model: str = "sasrec") -> Any:
    args = ["--models-dir", str(root / "models"), "--out", str(out)]
    return CliRunner().invoke(evaluate.app, [*common_args(root, model), *args])


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TQDM_DISABLE", "1")
    tiny_processed(tmp_path)
    return tmp_path


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_train_then_evaluate(root: Path, model: str) -> None:
    write_params(root, {})
    result = run_train(root, model)
    assert result.exit_code == 0, result.output
    meta = json.loads((root / "models" / model / "config.json").read_text())
    assert meta["arch"] == model and 1 <= meta["best_epoch"] <= 2
    assert json.loads((root / "metrics" / f"train_{model}.json").read_text())["epochs_run"] == 2
    # The checkpoint holds no wall-clock facts: retraining gives byte-identical files (DVC sees no change).
    first = {p.name: p.read_bytes() for p in (root / "models" / model).iterdir()}
    assert run_train(root, model).exit_code == 0
    assert {p.name: p.read_bytes() for p in (root / "models" / model).iterdir()} == first
    curve = (root / "metrics" / "curves" / f"{model}.tsv").read_text().splitlines()
    assert curve[0].split("\t")[:3] == ["epoch", "train_loss", "valid_ndcg@10"] and len(curve) == 3
    out = root / "metrics.json"
    result = run_evaluate(root, out, model)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    # The evaluation stage reproduces the validation NDCG@10 the training loop selected on.
    assert metrics["valid"]["ndcg@10"] == pytest.approx(meta["best_valid"]["ndcg@10"], abs=1e-12)
    assert metrics["protocol"]["ties"].startswith("pessimistic")
    assert "test_history_unmasked" in metrics


BAD_PARAMS = {
    "unknown key": ({("sasrec", "lrr"): 0.1}, "sasrec.lrr: unknown key"),
    "mistyped value": ({("sasrec", "lr"): "fast"}, "sasrec.lr: Input should be a valid number"),
    "bad loss": ({("sasrec", "loss"): "mse"}, "sasrec.loss: Input should be 'ce', 'sampled' or 'bce'"),
    "heads": ({("sasrec", "num_heads"): 3}, "not divisible by num_heads 3"),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_params_fail_cleanly(root: Path, case: str) -> None:
    edit, expected = BAD_PARAMS[case]
    write_params(root, edit)
    result = run_train(root)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert not (root / "models").exists() and not (root / "metrics").exists()


def test_unknown_model_fails_cleanly(root: Path) -> None:
    write_params(root, {})
    result = run_train(root, "bert4rec")
    assert result.exit_code == 2 and "--model: unknown model 'bert4rec'" in result.stderr


def test_evaluate_rejects_checkpoint_of_other_catalogue(root: Path) -> None:
    write_params(root, {})
    assert run_train(root).exit_code == 0
    config = root / "models" / "sasrec" / "config.json"
    meta = json.loads(config.read_text())
    meta["config"]["num_items"] += 1
    config.write_text(json.dumps(meta))
    result = run_evaluate(root, root / "x.json")
    assert result.exit_code == 2 and "does not match the data's" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (root / "x.json").exists()
