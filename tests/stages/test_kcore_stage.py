"""The kcore stage end to end: outputs, summary, and one-line errors that leave nothing behind."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from llmd4rec_core.data import sources
from stages import kcore as stage

REPO = Path(__file__).resolve().parents[2]
MIRROR_ENV = "LLMD4REC_DATA_MIRROR"
FILES = ["interactions.parquet", "items.parquet", "sequences.parquet", "stats.json", "users.parquet"]
HEADER = "userId,movieId,rating,timestamp\n"
GOOD_CSV = HEADER + "".join(f"{u},{i},3.5,{10 * u + i}\n" for u in range(1, 4) for i in range(1, 4))


def write_params(root: Path, **data: Any) -> Path:
    """The repo's params.yaml with ``data`` keys replaced (``table`` keys merged)."""
    params = YAML(typ="safe", pure=True).load((REPO / "params.yaml").read_text())
    table = data.pop("table", {})
    params["data"].update(data)
    params["data"]["table"].update(table)
    path = root / "params.yaml"
    with path.open("w") as fh:
        YAML(typ="safe", pure=True).dump(params, fh)
    return path


def table_case(root: Path, csv: str, **data: Any) -> Path:
    """A ``dataset: table`` setup: ``raw/t.csv`` holding ``csv``, and params (k=2 unless overridden)."""
    (root / "raw").mkdir(exist_ok=True)
    (root / "raw" / "t.csv").write_text(csv)
    data = {"dataset": "table", "kcore": 2, "dedup": "auto"} | data
    data["table"] = {"path": "t.csv"} | data.get("table", {})
    return write_params(root, **data)


def invoke(root: Path) -> Any:
    paths = {"--params-file": "params.yaml", "--out": "out", "--raw-dir": "raw"}
    return CliRunner().invoke(stage.app, [a for opt, p in paths.items() for a in (opt, str(root / p))])


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def test_declared_params() -> None:
    assert stage.PARAMS == ("data",)


def test_table_run(tmp_path: Path) -> None:
    table_case(tmp_path, GOOD_CSV)
    result = invoke(tmp_path)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == FILES
    assert "raw:          3 users / 3 items / 9 interactions" in result.stdout
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["dataset"] == "table" and stats["dedup"] is True and stats["raw_file"] == "t.csv"
    assert stats["raw_sha256"] == hashlib.sha256(GOOD_CSV.encode()).hexdigest()


BAD_CASES = {
    "non-integer item": (HEADER + "1,2,3,4\n1,x3,3,4\n", {}, "t.csv:3: item id 'x3'"),
    "negative user": (HEADER + "-1,2,3,4\n", {}, "t.csv:2: user id -1 is negative"),
    "missing column": ("userId,item,rating,timestamp\n1,2,3,4\n", {}, "t.csv: item column 'movieId'"),
    "empty file": ("", {}, "t.csv: empty file"),
    "header only": (HEADER, {}, "t.csv: no interactions"),
    "checksum": (GOOD_CSV, {"table": {"sha256": "0" * 64}}, "t.csv: SHA-256 mismatch: expected 0000"),
    "unknown dataset": (GOOD_CSV, {"dataset": "netflix"}, "unknown dataset 'netflix'; valid names: beauty"),
    "too short": (GOOD_CSV, {"kcore": 1, "table": {"path": "short.csv"}}, "user 7 has 2 interactions"),
    "empty core": (GOOD_CSV, {"kcore": 4}, "no interactions left after the 4-core filter"),
    "bad kcore": (GOOD_CSV, {"kcore": 0}, "data.kcore: Input should be greater than 0"),
    "missing file": (GOOD_CSV, {"table": {"path": "nope.csv"}}, "nope.csv: not found"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_fails_cleanly(tmp_path: Path, case: str) -> None:
    csv, data, expected = BAD_CASES[case]
    table_case(tmp_path, csv, **data)
    (tmp_path / "raw" / "short.csv").write_text(GOOD_CSV + "7,1,1,1\n7,2,1,2\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = invoke(tmp_path)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert expected in result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1 2 3\n\n2 3 4\n", "Beauty.txt:2: blank line"),
        ("1 2 3\n2 x3 4\n", "Beauty.txt:2: item id 'x3' is not an integer"),
        ("1 2 3\n2\n", "Beauty.txt:2: user 2 has no items"),
    ],
)
def test_s3rec_errors_through_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    write_params(tmp_path, dataset="beauty", kcore=1)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "Beauty.txt").write_text(content)
    checked = invoke(tmp_path)
    assert checked.exit_code == 2 and "Beauty.txt: SHA-256 mismatch" in checked.stderr  # hash before parsing
    beauty = sources.DATASETS["beauty"]
    unchecked = dataclasses.replace(beauty, file=dataclasses.replace(beauty.file, sha256=None))
    monkeypatch.setitem(sources.DATASETS, "beauty", unchecked)
    result = invoke(tmp_path)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and expected in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw"]


def run_module(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != MIRROR_ENV} | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "stages.kcore", "--out", "out", "--raw-dir", "raw"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_module_entry_point(tmp_path: Path) -> None:
    table_case(tmp_path, GOOD_CSV)
    ok = run_module(tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == FILES
    table_case(tmp_path, HEADER + "1,2,3,4\n\n", kcore=1)
    (tmp_path / "out").rename(tmp_path / "old")
    bad = run_module(tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.endswith("t.csv:3: blank line or empty record\n") and bad.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.needs_data
def test_beauty_from_mirror_is_deterministic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror_file: Callable[[str], Path]
) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(mirror_file("Beauty.txt").parent))
    write_params(tmp_path, dataset="beauty", kcore=5, dedup="auto")
    first = invoke(tmp_path)
    assert first.exit_code == 0, first.output
    assert "after 5-core: 22,363 users / 12,101 items / 198,502 interactions" in first.stdout
    snapshot = {name: (tmp_path / "out" / name).read_bytes() for name in FILES}
    assert invoke(tmp_path).exit_code == 0
    assert {name: (tmp_path / "out" / name).read_bytes() for name in FILES} == snapshot
    assert not (tmp_path / "raw").exists()  # read from the mirror in place
