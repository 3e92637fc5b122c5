"""Shared test fixtures: access to the raw-data mirror (skipping when it is absent)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MIRROR_ENV = "LLMD4REC_DATA_MIRROR"
MIRROR = os.environ.get(MIRROR_ENV, "")  # read at import, so tests that unset the variable still see it


@pytest.fixture
def mirror_file() -> Callable[[str], Path]:
    """``mirror_file("Beauty.txt")``: that file in ``$LLMD4REC_DATA_MIRROR``, or skip the test."""

    def get(rel_path: str) -> Path:
        path = Path(MIRROR) / rel_path
        if not MIRROR or not path.is_file():
            pytest.skip(f"needs {rel_path} in ${MIRROR_ENV}")
        return path

    return get


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def checkpoints_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Stage runs in tests keep their resumable snapshots in a temporary directory, not ./checkpoints."""
    old = os.environ.get("LLMD4REC_CHECKPOINT_DIR")
    os.environ["LLMD4REC_CHECKPOINT_DIR"] = str(tmp_path_factory.mktemp("checkpoints"))
    yield
    if old is None:
        del os.environ["LLMD4REC_CHECKPOINT_DIR"]
    else:
        os.environ["LLMD4REC_CHECKPOINT_DIR"] = old


PIPELINE_OUTPUTS = ("metrics", "models", "logits", "data/processed")


def _snapshot() -> dict[str, int]:
    return {
        str(p.relative_to(REPO)): p.stat().st_mtime_ns
        for top in PIPELINE_OUTPUTS
        for p in sorted((REPO / top).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session", autouse=True)
def pipeline_outputs_untouched() -> Iterator[None]:
    """No test may write into the repository's pipeline outputs (a stage run with default paths would)."""
    before = _snapshot()
    yield
    after = _snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests modified pipeline outputs in the repository: {changed[:5]}"
