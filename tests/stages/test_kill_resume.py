"""``kill -9`` in the middle of a training stage, then a rerun: the stage resumes from its last snapshot
and writes exactly the files of an uninterrupted run (model bytes, evaluation metrics JSON). Two
uninterrupted runs are byte-identical too (determinism)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny import REPO, tiny_processed, write_params

pytestmark = pytest.mark.slow

EPOCHS = 40


def stage_env(checkpoints: Path) -> dict[str, str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "LLMD4REC_CHECKPOINT_DIR": str(checkpoints)}
    env["PYTHONPATH"] = str(REPO)
    return env


def stage_cmd(root: Path, module: str, *args: str) -> list[str]:
    """``python -m stages.<module> --model sasrec`` on the tiny project under ``root``."""
    common = ["--model", "sasrec", "--params-file", str(root / "params.yaml")]
    return [sys.executable, "-m", f"stages.{module}", *common, "--data-dir", str(root / "processed"), *args]


def train_cmd(root: Path, out: str) -> list[str]:
    metrics = str(root / f"{out}-metrics")
    return stage_cmd(
        root, "train_crm", "--out-dir", str(root / out), "--metrics-dir", metrics, "--checkpoint-every", "3"
    )


def evaluate(root: Path, models: str) -> bytes:
    out = root / f"{models}.json"
    cmd = stage_cmd(root, "evaluate", "--models-dir", str(root / models), "--out", str(out))
    subprocess.run(cmd, cwd=REPO, env=stage_env(root / "unused"), check=True, capture_output=True)
    return out.read_bytes()


def snapshot_step(manifest: Path) -> int:
    try:
        return int(json.loads(manifest.read_text())["global_step"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tiny_processed(tmp_path, num_users=200, num_items=40)
    edit = {("sasrec", "max_epochs"): EPOCHS, ("sasrec", "patience"): EPOCHS, ("sasrec", "batch_size"): 16}
    write_params(tmp_path, edit)
    return tmp_path


def test_kill_9_then_rerun_resumes_and_matches_the_uninterrupted_run(root: Path) -> None:
    checkpoints = root / "checkpoints"
    manifest = checkpoints / "train_crm@sasrec" / "manifest.json"
    proc = subprocess.Popen(
        train_cmd(root, "killed"),
        cwd=REPO,
        env=stage_env(checkpoints),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while snapshot_step(manifest) < 40 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the stage ended before it could be killed"
    killed_at = snapshot_step(manifest)
    assert killed_at >= 40 and not (root / "killed").exists()  # nothing written but the snapshot

    rerun = subprocess.run(
        train_cmd(root, "killed"),
        cwd=REPO,
        env=stage_env(checkpoints),
        capture_output=True,
        text=True,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stderr
    timing = json.loads((root / "killed-metrics" / "train_sasrec.json").read_text())
    assert timing["resumed_from_step"] >= killed_at
    assert not (checkpoints / "train_crm@sasrec").exists()  # removed once the outputs are written

    for out in ("straight", "again"):
        done = subprocess.run(
            train_cmd(root, out),
            cwd=REPO,
            env=stage_env(root / f"ck-{out}"),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    files = {
        out: {p.name: p.read_bytes() for p in (root / out / "sasrec").iterdir()}
        for out in ("killed", "straight", "again")
    }
    assert files["killed"] == files["straight"] == files["again"]
    assert evaluate(root, "killed") == evaluate(root, "straight") == evaluate(root, "again")
    curves = [(root / f"{out}-metrics" / "curves" / "sasrec.tsv").read_text().splitlines() for out in
              ("killed", "straight")]  # fmt: skip
    timing = {"train_seconds", "seconds"}
    for curve in curves:  # same columns in the same order, same values but for wall-clock times
        header = curve[0].split("\t")
        keep = [i for i, name in enumerate(header) if name not in timing]
        curve[:] = ["\t".join(row.split("\t")[i] for i in keep) for row in curve]
    assert curves[0] == curves[1] and len(curves[0]) == EPOCHS + 1
