"""Shared test fixtures: access to the raw-data mirror (skipping when it is absent)."""

from __future__ import annotations

import os
from collections.abc import Callable
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
