"""A tiny end-to-end ``dvc repro`` in a temporary copy of the project, on a synthetic raw table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ruamel.yaml import YAML
from safetensors.torch import load_file

from llmd4rec_core.logits.schema import read_meta

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "pyproject.toml", "stages", "llmd4rec_core"]
TINY_OVERRIDES = {
    ("data", "dataset"): "table",
    ("data", "table", "path"): "tiny.csv",
    ("sasrec", "max_epochs"): 2,
    ("sasrec", "batch_size"): 16,
    ("gru4rec", "max_epochs"): 2,
    ("gru4rec", "batch_size"): 16,
    ("eval", "batch_size"): 7,
    ("llm", "epochs"): 1,
    ("llm", "batch_size"): 16,
    ("llm", "instances_per_user"): 2,
    ("export", "top_k"): 5,
    ("export", "batch_size"): 16,
}


def write_tiny_table(path: Path, num_users: int = 40, num_items: int = 25, seed: int = 0) -> None:
    """Users walk through items in a noisy cycle, so there is something to learn."""
    rng = np.random.default_rng(seed)
    rows = ["userId,movieId,rating,timestamp"]
    for user in range(1, num_users + 1):
        item = int(rng.integers(1, num_items + 1))
        for step in range(int(rng.integers(6, 12))):
            rows.append(f"{user},{item},{rng.integers(1, 6)}.0,{1000 + 10 * step}")
            item = item % num_items + 1 if rng.random() < 0.8 else int(rng.integers(1, num_items + 1))
    path.write_text("\n".join(rows) + "\n")


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("LLMD4REC_DATA_MIRROR", None)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst / name)
    (dst / "data" / "raw").mkdir(parents=True)
    write_tiny_table(dst / "data" / "raw" / "tiny.csv")
    yaml = YAML()
    params = yaml.load((dst / "params.yaml").read_text())
    for keys, value in TINY_OVERRIDES.items():
        node = params
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    with (dst / "params.yaml").open("w") as fh:
        yaml.dump(params, fh)
    identity = (
        ["git", "config", "user.name", "t"],
        ["git", "config", "user.email", "t@t"],
    )  # for dvc exp run
    for cmd in (["git", "init", "-q"], *identity, ["dvc", "init", "-q"]):
        assert run(cmd, dst).returncode == 0
    return dst


ROUND_MODELS = [f"{family}/round{t}" for family in ("llmd4rec_c", "llmd4rec_l") for t in (1, 2)]


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def set_params(project: Path, **changes: Any) -> None:
    yaml = YAML()
    params = yaml.load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = params
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    with (project / "params.yaml").open("w") as fh:
        yaml.dump(params, fh)


def test_dvc_repro_end_to_end(project: Path) -> None:
    result = run(["dvc", "repro"], project)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    stats = json.loads((project / "data" / "processed" / "stats.json").read_text())
    assert stats  # the k-core stage reported its counts
    for model in ["sasrec", "gru4rec", "e4srec", *ROUND_MODELS]:
        metrics = json.loads((project / "metrics" / f"{model}.json").read_text())
        assert metrics["protocol"]["history_masked"] is True
        for split in ("valid", "test"):
            assert set(metrics[split]) == {"hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr"}
            assert 0.0 <= metrics[split]["ndcg@10"] <= metrics[split]["hr@10"] <= 1.0
        curve = project / "metrics" / "curves" / f"{model.replace('/', '_')}.tsv"
        assert curve.read_text().startswith("epoch\t")
    assert (project / "models" / "sasrec" / "model.safetensors").is_file()
    assert (project / "models" / "e4srec" / "adapter" / "adapter_model.safetensors").is_file()
    for t in (1, 2):
        meta = read_meta(project / "logits" / "llmd4rec_l" / f"round{t}" / "train.parquet")
        assert meta["producer"] == f"llmd4rec_l/round{t}" and meta["round"] == t
    # the distilled CRM is a plain SASRec: same tensors, same shapes (no added inference cost)
    plain = load_file(project / "models" / "sasrec" / "model.safetensors")
    distilled = load_file(project / "models" / "llmd4rec_c" / "round2" / "model.safetensors")
    assert {k: v.shape for k, v in plain.items()} == {k: v.shape for k, v in distilled.items()}
    # Nothing changed: a second repro runs no stage, and the pipeline reports itself up to date.
    again = run(["dvc", "repro"], project)
    assert again.returncode == 0
    assert "Running stage" not in again.stdout
    assert "up to date" in run(["dvc", "status"], project).stdout.lower()
    report = run([sys.executable, "-m", "stages.report", "--out-dir", "reports"], project)
    assert report.returncode == 0, report.stderr
    text = (project / "reports" / "report.md").read_text()
    assert "| LLMD4Rec_C round 2 | ours | 1 |" in text and "| E4SRec | ours | 1 |" in text
    assert (project / "reports" / "rounds.png").read_bytes()[:4] == b"\x89PNG"


def commit(project: Path, message: str) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    assert run(["git", "add", "-A"], project).returncode == 0
    assert run([*git, "commit", "-q", "--allow-empty", "-m", message], project).returncode == 0


def exp_run(project: Path, *sets: str) -> set[str]:
    """`dvc exp run -S ...` in the project; the stages it ran (workspace restored afterwards)."""
    result = run(["dvc", "exp", "run", *(a for s in sets for a in ("-S", s))], project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert run(["git", "checkout", "params.yaml"], project).returncode == 0
    return ran_stages(result.stdout)


def test_t2_reruns_only_the_upward_stages_and_what_follows(project: Path) -> None:
    """`dvc exp run -S T2=0.3` in DVC's own view: never pretraining, the E4SRec baseline or round 1's LLM."""
    assert run(["dvc", "repro"], project).returncode == 0
    commit(project, "pipeline")
    set_params(project, T2=0.3)
    try:
        status = json.loads(run(["dvc", "status", "--json"], project).stdout)
        assert set(status) == {"distill_crm@round1", "distill_crm@round2"}  # exactly the stages reading T2
    finally:
        assert run(["git", "checkout", "params.yaml"], project).returncode == 0
    upward = {"distill_crm@round1", "evaluate_c@round1", "distill_crm@round2", "evaluate_c@round2"}
    # round 2's LLM reads round 1's CRM (Algorithm 1, lines 4-7), so it and its export must follow
    round2_llm = {"finetune_llm@round2", "export_logits@round2", "evaluate_l@round2"}
    assert exp_run(project, "T2=0.3") == upward | round2_llm
    # with one round (the "w/o loop" ablation) only the upward stage and its evaluation rerun
    assert exp_run(project, "T2=0.4", "T_max=1", "~loop.rounds.round2") == {
        "distill_crm@round1",
        "evaluate_c@round1",
    }
    assert run(["dvc", "checkout", "-q"], project).returncode == 0


def test_logits_diff_between_git_revisions(project: Path) -> None:
    """Two versions of one artifact: the committed export (read through DVC) against the workspace's."""
    assert run(["dvc", "repro"], project).returncode == 0
    commit(project, "k5")  # (may be empty: an earlier test committed the same state)
    set_params(project, export__top_k=7)
    result = run(["dvc", "repro", "export_logits@round1"], project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ran_stages(result.stdout) == {"export_logits@round1"}  # its only changed input is export.top_k
    path = "logits/llmd4rec_l/round1/train.parquet"
    cmd = [sys.executable, "-m", "stages.logits", "diff", path, path, "--rev-a", "HEAD", "-k", "5"]
    diff = run(cmd, project)
    assert diff.returncode == 0, diff.stderr
    # same model, same instances: identical top-5 and (up to tail quantisation) the same distribution
    assert "overlap@5: 1.0000" in diff.stdout and "better in B 0.00%" in diff.stdout
    bad = run([*cmd[:-4], "--rev-a", "no-such-rev", "-k", "5"], project)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
