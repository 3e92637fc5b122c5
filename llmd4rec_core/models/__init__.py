"""Sequential recommenders. Every model maps left-padded item ids [B, L] to hidden states [B, L, d] and
scores items with ``item_embeddings`` (a tied [num_items + 1, d] table, row 0 = padding)."""

from __future__ import annotations

import dataclasses

from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.models.gru4rec import GRU4Rec, GRU4RecConfig
from llmd4rec_core.models.sasrec import SASRec, SASRecConfig
from llmd4rec_core.params import GRU4RecParams, SASRecParams

__all__ = [
    "ARCHITECTURES",
    "GRU4Rec",
    "GRU4RecConfig",
    "SASRec",
    "SASRecConfig",
    "SequentialRecommender",
    "build_crm",
]

# name -> (model class, config dataclass); checkpoints store the name
ARCHITECTURES: dict[str, tuple[type[SequentialRecommender], type]] = {
    "sasrec": (SASRec, SASRecConfig),
    "gru4rec": (GRU4Rec, GRU4RecConfig),
}


def build_crm(arch: str, params: SASRecParams | GRU4RecParams, num_items: int) -> SequentialRecommender:
    """A freshly initialised CRM of architecture ``arch`` from its params.yaml section."""
    expected = {"sasrec": SASRecParams, "gru4rec": GRU4RecParams}
    if arch not in ARCHITECTURES or not isinstance(params, expected[arch]):
        raise ValueError(f"no CRM {arch!r} for params of type {type(params).__name__}")
    model_cls, cfg_cls = ARCHITECTURES[arch]
    arch_fields = {f.name for f in dataclasses.fields(cfg_cls)} - {"num_items"}
    return model_cls(cfg_cls(num_items=num_items, **params.model_dump(include=arch_fields)))
