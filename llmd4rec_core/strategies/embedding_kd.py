"""DLLM2Rec's collaborative embedding distillation (its Eq. 12-13) for a CRM of this project.

The teacher's item representations z_i are E4SRec's item head: row i - 1 of W_out [I, D], the vector the
LLM scores item i with (our teacher reads no item text; DLLM2Rec's teacher encodes each item's title).
During training the CRM's ``item_embeddings`` is a :class:`dllm2rec.CollaborativeItemEmbedding`,
e_i = b_i + alpha g(z_i), b_i the CRM's own (trainable) ID embedding; :func:`bake_item_table` then
replaces it by the plain table it computes, so the saved CRM has the architecture, size and inference
cost of the undistilled one (DLLM2Rec: "as efficient as the original one during the inference").
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from llmd4rec_core.errors import InputError
from llmd4rec_core.llm.checkpoint import ARCH, HEADS, read_config
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.strategies.dllm2rec import CollaborativeItemEmbedding


def teacher_item_representations(ckpt_dir: str | Path, num_items: int) -> torch.Tensor:
    """z [I, D] float32: W_out of the E4SRec checkpoint in ``ckpt_dir`` (no backbone is loaded)."""
    ckpt_dir = Path(ckpt_dir)
    meta = read_config(ckpt_dir)
    if meta.get("arch") != ARCH:
        raise InputError(
            f"{ckpt_dir}/config.json: arch {meta.get('arch')!r} is not an LLM recommender ({ARCH})"
        )
    try:
        w_out = load_file(ckpt_dir / HEADS)["w_out"]
    except (SafetensorError, OSError, KeyError) as exc:
        raise InputError(f"{ckpt_dir}/{HEADS}: no readable w_out ({exc})".splitlines()[0]) from None
    if w_out.dim() != 2 or w_out.shape[0] != num_items:
        raise InputError(
            f"{ckpt_dir}/{HEADS}: w_out has shape {tuple(w_out.shape)}, expected [{num_items}, D]"
        )
    if not torch.isfinite(w_out).all():
        raise InputError(f"{ckpt_dir}/{HEADS}: w_out holds NaN or infinite values")
    return w_out.float()


def install_collaborative_table(
    model: SequentialRecommender, teacher_items: torch.Tensor, alpha: float, projector_hidden: int, seed: int
) -> CollaborativeItemEmbedding:
    """Make ``model.item_embeddings`` e_i = b_i + alpha g(z_i) (Eq. 12-13), b the model's current table.

    ``projector_hidden`` 0: g is one linear map D -> d; H > 0: Linear(D, H) -> ReLU -> Linear(H, d).
    The projector is initialised on the CPU from its own generator seeded with ``seed`` (torch's global
    RNG, which drives dropout, is left untouched), then moved to the model's device."""
    device = model.item_embeddings.weight.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        table = CollaborativeItemEmbedding(
            teacher_items.to(device),
            model.item_embeddings,
            alpha=alpha,
            projector_hidden=projector_hidden or None,
        )
    table = table.to(device)
    model.item_embeddings = table  # type: ignore[assignment]
    return table


def bake_item_table(model: SequentialRecommender) -> None:
    """Replace a :class:`CollaborativeItemEmbedding` by an ``nn.Embedding`` holding the table it computes
    (row 0, padding, zeros): the model scores exactly as before and saves like an undistilled CRM."""
    current = model.item_embeddings
    if not isinstance(current, CollaborativeItemEmbedding):
        return
    with torch.no_grad():
        weight = current.table().detach().clone()  # [I + 1, d]
    plain = nn.Embedding(weight.shape[0], weight.shape[1], padding_idx=0, device=weight.device)
    with torch.no_grad():
        plain.weight.copy_(weight)
    model.item_embeddings = plain
