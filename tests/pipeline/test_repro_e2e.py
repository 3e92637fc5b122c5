"""A tiny end-to-end ``dvc repro`` in a temporary copy of the project, on a synthetic raw table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

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
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        assert run(cmd, dst).returncode == 0
    return dst


def test_dvc_repro_end_to_end(project: Path) -> None:
    result = run(["dvc", "repro"], project)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    stats = json.loads((project / "data" / "processed" / "stats.json").read_text())
    assert stats  # the k-core stage reported its counts
    for model in ("sasrec", "gru4rec", "e4srec"):
        metrics = json.loads((project / "metrics" / f"{model}.json").read_text())
        assert metrics["protocol"]["history_masked"] is True
        for split in ("valid", "test"):
            assert set(metrics[split]) == {"hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr"}
            assert 0.0 <= metrics[split]["ndcg@10"] <= metrics[split]["hr@10"] <= 1.0
        assert (project / "metrics" / "curves" / f"{model}.tsv").read_text().startswith("epoch\t")
    assert (project / "models" / "sasrec" / "model.safetensors").is_file()
    assert (project / "models" / "e4srec" / "adapter" / "adapter_model.safetensors").is_file()
    assert read_meta(project / "logits" / "e4srec" / "train.parquet")["producer"] == "e4srec"
    # Nothing changed: a second repro runs no stage, and the pipeline reports itself up to date.
    again = run(["dvc", "repro"], project)
    assert again.returncode == 0
    assert "Running stage" not in again.stdout
    assert "up to date" in run(["dvc", "status"], project).stdout.lower()


def test_logits_diff_between_git_revisions(project: Path) -> None:
    """Two versions of one artifact: the committed export (read through DVC) against the workspace's."""
    assert run(["dvc", "repro"], project).returncode == 0
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    assert run(["git", "add", "-A"], project).returncode == 0
    assert run([*git, "commit", "-qm", "k5"], project).returncode == 0
    yaml = YAML()
    params = yaml.load((project / "params.yaml").read_text())
    params["export"]["top_k"] = 7
    with (project / "params.yaml").open("w") as fh:
        yaml.dump(params, fh)
    result = run(["dvc", "repro"], project)
    assert result.returncode == 0, result.stderr[-2000:]
    ran = [line for line in result.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'export_logits@e4srec':"]  # only the export depends on export.top_k
    path = "logits/e4srec/train.parquet"
    cmd = [sys.executable, "-m", "stages.logits", "diff", path, path, "--rev-a", "HEAD", "-k", "5"]
    diff = run(cmd, project)
    assert diff.returncode == 0, diff.stderr
    # same model, same instances: identical top-5 and (up to tail quantisation) the same distribution
    assert "overlap@5: 1.0000" in diff.stdout and "better in B 0.00%" in diff.stdout
    bad = run([*cmd[:-4], "--rev-a", "no-such-rev", "-k", "5"], project)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
