"""Tiny offline backbones (random Qwen2 / Llama decoders, a BERT encoder), built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tiny import tiny_backbone


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = tiny_backbone(tmp_path_factory.mktemp("backbones"), kind)
        return made[kind]

    return get
