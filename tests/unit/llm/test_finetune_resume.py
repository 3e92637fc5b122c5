"""E4SRec fine-tuning resumes exactly (resume.py) and stops at a non-finite loss (guards.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from llmd4rec_core.errors import NonFiniteError
from llmd4rec_core.llm.checkpoint import build_e4srec
from llmd4rec_core.llm.finetune import DownwardKD, finetune_e4srec
from llmd4rec_core.resume import Checkpointer, Snapshot
from llmd4rec_core.training import TrainResult
from tests.unit.llm.test_e4srec import CPU, crm, cyclic_data, llm_params


class Killed(Exception):
    pass


class KillAfter(Checkpointer):
    def __init__(self, root: Path, saves: int, every_steps: int) -> None:
        super().__init__(root, "llm", "fp", every_steps)
        self.saves_left = saves

    def save(self, snap: Snapshot) -> None:
        super().save(snap)
        self.saves_left -= 1
        if self.saves_left == 0:
            raise Killed


def run(
    backbone: Path, ckpt: Checkpointer | None, init_seed: int = 0
) -> tuple[TrainResult, dict[str, torch.Tensor]]:
    cfg = llm_params(backbone)
    cfg = llm_params(backbone, epochs=3, lora=cfg.lora.model_copy(update={"dropout": 0.1}))
    teacher = crm()
    torch.manual_seed(init_seed)
    model = build_e4srec(cfg, teacher.item_embeddings.weight, CPU, None)
    kd = DownwardKD(teacher, temperature=0.6, gamma=1.0, sample_weights=True, mask_history=True)
    result = finetune_e4srec(model, cyclic_data(), cfg, kd, 0, True, 8, ckpt, "finetune_llm@test")
    return result, model.trainable_state()


@pytest.mark.parametrize("kind", ["qwen2", "bert"])
def test_killed_and_resumed_finetune_equals_the_uninterrupted_one(
    kind: str, backbone_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    backbone = backbone_dir(kind)
    torch.manual_seed(5)  # the global stream (LoRA and backbone dropout) must come from the snapshot
    reference = run(backbone, None)
    with pytest.raises(Killed):
        run(backbone, KillAfter(tmp_path, 4, 4))  # 9 steps per epoch: killed in epoch 2 at step 12
    torch.manual_seed(6)
    ckpt = Checkpointer(tmp_path, "llm", "fp", 4)
    resumed = run(backbone, ckpt, init_seed=1)
    assert ckpt.resumed_from == 12
    drop = ("train_seconds", "seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in reference[0].history] == [
        {k: v for k, v in r.items() if k not in drop} for r in resumed[0].history
    ]
    assert reference[1].keys() == resumed[1].keys()
    for name, tensor in reference[1].items():
        assert torch.equal(tensor, resumed[1][name]), name


def test_a_non_finite_loss_stops_finetuning_naming_stage_and_step(
    backbone_dir: Callable[[str], Path],
) -> None:
    cfg = llm_params(backbone_dir("qwen2"), epochs=1)
    teacher = crm()
    model = build_e4srec(cfg, teacher.item_embeddings.weight, CPU, None)
    with torch.no_grad():
        model.w_out.weight[0, 0] = float("nan")
    before = model.trainable_state()
    with pytest.raises(NonFiniteError, match=r"finetune_llm@bad: epoch 1, step 1: non-finite loss nan"):
        finetune_e4srec(model, cyclic_data(), cfg, DownwardKD(None, 1.0, 0.0, False, False), 0, True, 8,
                        None, "finetune_llm@bad")  # fmt: skip
    after = model.trainable_state()  # the bad step never reached the optimizer
    assert all(torch.allclose(before[k], after[k], rtol=0, atol=0, equal_nan=True) for k in before)
