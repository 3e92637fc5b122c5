"""CRM checkpoints: ``model.safetensors`` (weights) + ``config.json`` (architecture and provenance).

Weights are loaded only through safetensors, never through pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmd4rec_core.atomic import atomic_path, json_text
from llmd4rec_core.errors import InputError
from llmd4rec_core.models import ARCHITECTURES, SequentialRecommender

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save_checkpoint(
    out_dir: str | Path, arch: str, model: SequentialRecommender, extra: dict[str, Any]
) -> None:
    """Atomically write the checkpoint directory ``out_dir`` (replacing any previous one)."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHTS)
        config = {"arch": arch, "config": model.cfg.to_dict(), **extra}
        (tmp / CONFIG).write_text(json_text(config))


def load_checkpoint(
    ckpt_dir: str | Path, num_items: int | None = None
) -> tuple[SequentialRecommender, dict[str, Any]]:
    """Rebuild the model from ``config.json`` and load its safetensors weights.

    ``num_items``, when given, is the catalogue size of the data the model will score; a checkpoint
    trained on another catalogue is rejected before any weight is read.
    """
    ckpt_dir = Path(ckpt_dir)
    for name in (CONFIG, WEIGHTS):
        if not (ckpt_dir / name).is_file():
            raise InputError(f"{ckpt_dir / name}: checkpoint file not found")
    try:
        meta = json.loads((ckpt_dir / CONFIG).read_text())
        arch, config = meta["arch"], dict(meta["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{ckpt_dir / CONFIG}: not a checkpoint config ({type(exc).__name__}: {exc})"
        ) from None
    if arch not in ARCHITECTURES:
        raise InputError(f"{ckpt_dir / CONFIG}: arch: unknown architecture {arch!r}")
    if num_items is not None and config.get("num_items") != num_items:
        raise InputError(
            f"{ckpt_dir / CONFIG}: num_items {config.get('num_items')} does not match "
            f"the data's {num_items} items"
        )
    model_cls, cfg_cls = ARCHITECTURES[arch]
    try:
        model = model_cls(cfg_cls(**config))
    except TypeError as exc:
        raise InputError(f"{ckpt_dir / CONFIG}: config: {exc}") from None
    try:
        model.load_state_dict(load_file(ckpt_dir / WEIGHTS))
    except (RuntimeError, SafetensorError) as exc:  # corrupt file, or shapes/names that do not fit config
        raise InputError(f"{ckpt_dir / WEIGHTS}: weights do not fit {CONFIG}: {exc}") from None
    return model, meta
