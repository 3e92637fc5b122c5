"""E4SRec checkpoints: LoRA adapters via peft's ``save_pretrained`` (safetensors) in ``adapter/``,
``heads.safetensors`` (W_in, W_out and the frozen CRM item table E), ``config.json`` (backbone, prompt,
provenance). The backbone weights are not copied: ``config.json`` names them. Reloading reproduces the
exported logits exactly (tested)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmd4rec_core.atomic import atomic_path, json_text
from llmd4rec_core.errors import InputError
from llmd4rec_core.llm.backbone import add_lora, load_backbone, load_lora
from llmd4rec_core.llm.e4srec import E4SRec
from llmd4rec_core.llm.prompt import build_template
from llmd4rec_core.params import LLMParams

ARCH = "e4srec"
HEADS, CONFIG, ADAPTER = "heads.safetensors", "config.json", "adapter"


def build_e4srec(
    cfg: LLMParams, item_table: torch.Tensor, device: torch.device, titles: list[str] | None
) -> E4SRec:
    """A fresh E4SRec: frozen backbone with new LoRA adapters, new W_in / W_out (Algorithm 1, line 2)."""
    backbone = load_backbone(cfg.backbone, cfg.load_in, device)
    lora = add_lora(backbone.model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    template = build_template(backbone.tokenizer, cfg.instruction, cfg.max_items, titles, cfg.title_tokens)
    return E4SRec(lora, item_table, backbone.model.config.hidden_size, template).to(device)


def save_e4srec(
    out_dir: str | Path, model: E4SRec, cfg: LLMParams, titles: list[str] | None, extra: dict[str, Any]
) -> None:
    """Atomically write the checkpoint directory (replacing any previous one)."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        model.backbone.save_pretrained(str(tmp / ADAPTER), safe_serialization=True)
        heads = {
            "w_in": model.w_in.weight.detach().cpu().contiguous(),
            "w_out": model.w_out.weight.detach().cpu().contiguous(),
            "item_table": model.item_table.detach().cpu().contiguous(),
        }
        save_file(heads, tmp / HEADS)
        config = {
            "arch": ARCH,
            "num_items": model.num_items,
            "llm": cfg.model_dump(),
            "titles": titles,
            **extra,
        }
        (tmp / CONFIG).write_text(json_text(config))


def read_config(ckpt_dir: str | Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / CONFIG
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found")
    try:
        return dict(json.loads(path.read_text()))
    except ValueError as exc:
        raise InputError(f"{path}: not a checkpoint config ({exc})") from None


def load_e4srec(
    ckpt_dir: str | Path, device: torch.device, num_items: int | None = None, trainable: bool = False
) -> tuple[E4SRec, dict[str, Any]]:
    """Rebuild E4SRec from its checkpoint; ``num_items`` (the data's catalogue) must match when given.

    ``trainable``: LoRA, W_in and W_out come back trainable (train mode), to continue fine-tuning in the
    next round of Algorithm 1; otherwise the model is in eval mode with a frozen backbone.
    """
    ckpt_dir = Path(ckpt_dir)
    meta = read_config(ckpt_dir)
    if meta.get("arch") != ARCH:
        raise InputError(f"{ckpt_dir / CONFIG}: arch: expected {ARCH!r}, got {meta.get('arch')!r}")
    if num_items is not None and meta.get("num_items") != num_items:
        raise InputError(
            f"{ckpt_dir / CONFIG}: num_items {meta.get('num_items')} "
            f"does not match the data's {num_items} items"
        )
    try:
        cfg = LLMParams.model_validate(meta["llm"])
        heads = load_file(ckpt_dir / HEADS)
    except (KeyError, ValueError, SafetensorError, OSError) as exc:
        raise InputError(
            f"{ckpt_dir}: incomplete or corrupt E4SRec checkpoint ({type(exc).__name__})"
        ) from None
    backbone = load_backbone(cfg.backbone, cfg.load_in, device)
    lora = load_lora(backbone.model, ckpt_dir / ADAPTER, trainable)
    template = build_template(
        backbone.tokenizer, cfg.instruction, cfg.max_items, meta.get("titles"), cfg.title_tokens
    )
    model = E4SRec(lora, heads["item_table"], backbone.model.config.hidden_size, template)
    try:
        model.w_in.weight.data.copy_(heads["w_in"])
        model.w_out.weight.data.copy_(heads["w_out"])
    except RuntimeError as exc:
        msg = f"{ckpt_dir / HEADS}: shapes do not fit {CONFIG}: {exc}"
        raise InputError(msg.splitlines()[0]) from None
    if trainable:
        return model.to(device).train(), meta
    model.backbone.requires_grad_(False)
    return model.to(device).eval(), meta
