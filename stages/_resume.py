"""The training stages' resumable snapshots: one :class:`Checkpointer` per DVC stage, outside DVC's
outputs (``checkpoints/<stage>/`` by default, git-ignored), so ``dvc repro`` after a kill resumes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

import llmd4rec_core
from llmd4rec_core.params import load_params
from llmd4rec_core.resume import Checkpointer, fingerprint


def declared_values(declared: Iterable[str], path: str) -> dict[str, Any]:
    """The values of the declared dotted keys, as plain JSON-able data."""
    params: Any = load_params(path)
    values = {}
    for key in sorted(declared):
        node = params
        for part in key.split("."):
            node = getattr(node, part)
        values[key] = node.model_dump() if isinstance(node, BaseModel) else node
    return values


def run_checkpointer(
    label: str,
    declared: Iterable[str],
    params_file: str,
    inputs: Iterable[str | Path],
    root: str,
    every_steps: int,
    is_writer: bool = True,
    processes: int = 1,
) -> Checkpointer:
    """The :class:`Checkpointer` of DVC stage ``label`` in ``root/label`` (``root`` empty: disabled).

    Its fingerprint covers the declared params' values, the input paths (data, models, logits) and the
    code (the core package and the stages), plus the number of processes and the device type, so a
    snapshot is resumed only by the same run."""
    if not root:
        return Checkpointer.disabled()
    code = [Path(llmd4rec_core.__file__).parent, Path(__file__).parent]
    config = {"stage": label, "params": declared_values(declared, params_file), "processes": processes}
    config["cuda"] = torch.cuda.is_available()
    return Checkpointer(root, label, fingerprint(config, [*inputs, *code]), every_steps, is_writer)
