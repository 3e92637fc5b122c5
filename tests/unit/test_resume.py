"""Resumable training (resume.py): an interrupted and resumed CRM run ends with exactly the weights,
curve and best epoch of an uninterrupted one; snapshots of other runs, incomplete or corrupt snapshots
are ignored; a snapshot is replaced atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import llmd4rec_core.resume as resume
from llmd4rec_core.distill.upward import UpwardKD
from llmd4rec_core.resume import Checkpointer, fingerprint
from llmd4rec_core.training import TrainResult, train_crm
from tests.unit.test_training import (  # _one_thread: autouse, one torch thread for tiny models
    EVAL_BATCH,
    MAX_LEN,
    _one_thread,  # noqa: F401
    crm_params,
    fresh_model,
    shuffled_teacher,
    successor_data,
    teacher_of,
)

TIMING = ("train_seconds", "seconds")


class Killed(Exception):
    """Stands in for a kill: raised right after the n-th snapshot was written."""


class KillAfter(Checkpointer):
    def __init__(self, root: Path, saves: int, every_steps: int, label: str = "run", fp: str = "fp") -> None:
        super().__init__(root, label, fp, every_steps)
        self.saves_left = saves

    def save(self, snap: resume.Snapshot) -> None:
        super().save(snap)
        self.saves_left -= 1
        if self.saves_left == 0:
            raise Killed


def run(
    ckpt: Checkpointer | None, arch: str = "sasrec", distill: bool = False, init_seed: int = 0
) -> tuple[TrainResult, dict[str, torch.Tensor]]:
    data = successor_data()
    params = crm_params(arch, loss="sampled", max_epochs=4, patience=4, dropout=0.2, warmup_epochs=1.0)
    model = fresh_model(arch, params, seed=init_seed)
    kd = None
    if distill:
        teacher = teacher_of(data, shuffled_teacher)
        kd = UpwardKD(teacher, 0.5, 0.5, True, True, rows_per_user=1, rng=np.random.default_rng(7))  # type: ignore[arg-type]
    result = train_crm(model, data, params, MAX_LEN, 0, True, EVAL_BATCH, kd, ckpt, "train_crm@test")
    return result, model.state_dict()


def without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def assert_same_run(
    a: tuple[TrainResult, dict[str, torch.Tensor]], b: tuple[TrainResult, dict[str, torch.Tensor]]
) -> None:
    assert without_timing(a[0].history) == without_timing(b[0].history)
    assert [list(row) for row in a[0].history] == [list(row) for row in b[0].history]  # column order
    assert (a[0].best_epoch, a[0].best_valid) == (b[0].best_epoch, b[0].best_valid)
    assert a[1].keys() == b[1].keys()
    for name, tensor in a[1].items():
        assert torch.equal(tensor, b[1][name]), name


@pytest.mark.parametrize(
    ("arch", "distill", "saves", "every_steps"),
    [
        ("sasrec", False, 3, 2),  # killed inside epoch 2 (5 steps per epoch)
        ("sasrec", True, 2, 0),  # killed at the end of epoch 2 (epoch snapshots only), with the KL stream
        ("gru4rec", False, 4, 3),
    ],
)
def test_killed_and_resumed_run_equals_the_uninterrupted_run(
    tmp_path: Path, arch: str, distill: bool, saves: int, every_steps: int
) -> None:
    reference = run(None, arch, distill)
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, saves, every_steps), arch, distill)
    assert (tmp_path / "run" / "manifest.json").is_file()
    ckpt = Checkpointer(tmp_path, "run", "fp", every_steps)
    resumed = run(ckpt, arch, distill, init_seed=99)  # another init: the weights must come from the snapshot
    assert ckpt.resumed_from is not None and ckpt.resumed_from > 0
    assert_same_run(reference, resumed)


def test_killed_twice_still_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    reference = run(None)
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, 2, 3))
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, 3, 3))
    assert_same_run(reference, run(Checkpointer(tmp_path, "run", "fp", 3)))


def test_a_snapshot_of_other_params_is_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, 2, 2, fp="other params"))
    ckpt = Checkpointer(tmp_path, "run", "fp", 2)
    assert_same_run(run(None), run(ckpt))
    assert ckpt.resumed_from is None
    assert "snapshot ignored" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["no manifest", "flipped byte", "truncated", "garbage manifest"])
def test_an_incomplete_or_corrupt_snapshot_is_ignored(tmp_path: Path, damage: str) -> None:
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, 2, 2))
    snap = tmp_path / "run"
    weights = snap / "model.safetensors"
    if damage == "no manifest":
        (snap / "manifest.json").unlink()
    elif damage == "flipped byte":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        (snap / "manifest.json").write_text("{not json")
    ckpt = Checkpointer(tmp_path, "run", "fp", 2)
    assert ckpt.latest() is None
    assert_same_run(run(None), run(ckpt))


def test_a_kill_while_writing_keeps_the_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, 2, 2))
    before = Checkpointer(tmp_path, "run", "fp").latest()
    assert before is not None
    real_save = resume.save_file
    calls = {"n": 0}

    def dies_on_third_file(tensors: dict[str, torch.Tensor], path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        real_save(tensors, path)

    monkeypatch.setattr(resume, "save_file", dies_on_third_file)
    with pytest.raises(Killed):
        run(Checkpointer(tmp_path, "run", "fp", 1))  # resumes, then dies writing its first snapshot
    monkeypatch.undo()
    after = Checkpointer(tmp_path, "run", "fp").latest()
    assert after is not None and after.loop == before.loop
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary left behind


def test_finish_removes_the_snapshot_and_disabled_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, 1, 1))
    Checkpointer(tmp_path, "run", "fp").finish()
    assert list(tmp_path.iterdir()) == []
    run(Checkpointer.disabled())
    run(Checkpointer(tmp_path, "run", "fp", 2, is_writer=False))
    assert list(tmp_path.iterdir()) == []


def test_fingerprint_covers_config_and_file_contents(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("one")
    base = fingerprint({"lr": 1e-3}, [tmp_path / "d"])
    assert base == fingerprint({"lr": 1e-3}, [tmp_path / "d"])
    assert base != fingerprint({"lr": 2e-3}, [tmp_path / "d"])
    (tmp_path / "d" / "a.txt").write_text("two")
    assert base != fingerprint({"lr": 1e-3}, [tmp_path / "d"])
    assert fingerprint({}, [tmp_path / "missing"]) != fingerprint({}, [])


def test_a_kill_between_the_two_renames_resumes_the_previous_snapshot(tmp_path: Path) -> None:
    """atomic_path renames the old snapshot aside, then the new one in; a kill in between leaves only
    ``.run.*.tmp/previous`` (and a real kill skips the clean-up, leaving temporaries): both recovered."""
    with pytest.raises(Killed):
        run(KillAfter(tmp_path, 2, 2))
    before = Checkpointer(tmp_path, "run", "fp").latest()
    assert before is not None
    aside = tmp_path / ".run.abc.tmp"
    aside.mkdir()
    (tmp_path / "run").rename(aside / "previous")
    (tmp_path / ".run.dead.tmp" / "run").mkdir(parents=True)  # a half-written new snapshot
    ckpt = Checkpointer(tmp_path, "run", "fp", 2)
    after = ckpt.latest()
    assert after is not None and after.loop == before.loop
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert_same_run(run(None), run(Checkpointer(tmp_path, "run", "fp", 2)))


def test_a_failed_snapshot_write_is_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_same_run(run(None), run(Checkpointer(blocker, "run", "fp", 2)))  # cannot write under a file
    assert "snapshot not written" in capsys.readouterr().err
