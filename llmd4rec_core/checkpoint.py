"""CRM checkpoints: ``model.safetensors`` (weights) + ``config.json`` (architecture and provenance).

Weights are loaded only through safetensors, never through pickle.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
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
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InputError(
            f"{ckpt_dir / CONFIG}: not a checkpoint config ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise InputError(f"{ckpt_dir / CONFIG}: arch: unknown architecture {arch!r}")
    if num_items is not None and config.get("num_items") != num_items:
        raise InputError(
            f"{ckpt_dir / CONFIG}: num_items {config.get('num_items')} does not match "
            f"the data's {num_items} items"
        )
    model_cls, cfg_cls = ARCHITECTURES[arch]
    try:
        cfg = cfg_cls(**config)
    except TypeError as exc:
        raise InputError(f"{ckpt_dir / CONFIG}: config: {exc}") from None
    _check_config(cfg, ckpt_dir / CONFIG)
    weights = ckpt_dir / WEIGHTS
    with torch.device("meta"):  # shapes only: a config must not allocate more than its weights file holds
        shapes = model_cls(cfg).state_dict()
    size, held = sum(t.numel() * t.element_size() for t in shapes.values()), weights.stat().st_size
    if size > held:
        raise InputError(
            f"{weights}: {held} bytes, too small for the {size} bytes of weights {CONFIG} describes"
        )
    model = model_cls(cfg)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as exc:  # truncated or not a safetensors file
        raise InputError(f"{weights}: unreadable safetensors file: {exc}".splitlines()[0]) from None
    for name, tensor in state.items():
        if name in shapes and tensor.dtype != shapes[name].dtype:
            raise InputError(f"{weights}: {name} is {tensor.dtype}; {CONFIG} builds {shapes[name].dtype}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # shapes/names that do not fit config
        raise InputError(f"{weights}: weights do not fit {CONFIG}: {exc}") from None
    return model, meta


def _check_config(cfg: Any, path: Path) -> None:
    """Sizes are positive integers, ``dropout`` a probability, heads divide the hidden size."""
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if field.name == "dropout":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
            expected = "a number in [0, 1)"
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
            expected = "a positive integer"
        if not ok:
            raise InputError(f"{path}: config: {field.name} {value!r} is not {expected}")
    heads = getattr(cfg, "num_heads", 1)
    if cfg.hidden_size % heads:
        raise InputError(
            f"{path}: config: hidden_size {cfg.hidden_size} is not a multiple of num_heads {heads}"
        )
