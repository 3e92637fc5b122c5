"""Load any trained recommender (CRM or E4SRec) from its checkpoint directory, by its ``arch``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmd4rec_core.checkpoint import load_checkpoint
from llmd4rec_core.llm.checkpoint import ARCH as E4SREC_ARCH
from llmd4rec_core.llm.checkpoint import load_e4srec, read_config
from llmd4rec_core.scoring import ItemScorer


@dataclass(frozen=True)
class LoadedRecommender:
    scorer: ItemScorer
    max_len: int  # most recent history items the model reads
    meta: dict[str, Any]  # the checkpoint's config.json
    config_sha256: str  # SHA-256 of config.json: identifies the producer's params and provenance


def load_recommender(ckpt_dir: str | Path, num_items: int, device: torch.device) -> LoadedRecommender:
    ckpt_dir = Path(ckpt_dir)
    meta = read_config(ckpt_dir)
    digest = hashlib.sha256((ckpt_dir / "config.json").read_bytes()).hexdigest()
    if meta.get("arch") == E4SREC_ARCH:
        model, meta = load_e4srec(ckpt_dir, device, num_items)
        return LoadedRecommender(model, model.max_len, meta, digest)
    crm, meta = load_checkpoint(ckpt_dir, num_items=num_items)
    return LoadedRecommender(crm.to(device).eval(), crm.cfg.max_len, meta, digest)
