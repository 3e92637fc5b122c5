"""The LLM fine-tune and export stages under ``distributed.nproc: 2`` (torchrun, gloo, 2 CPU processes)
match the single-process run: the same weights within float rounding (the batch loss is summed in
another order), the same model selection, and an export with the same rows, items and ranks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_llm_stages import invoke
from tiny import REPO, tiny_backbone, tiny_processed, write_params

from llmd4rec_core.logits.schema import read_logits
from stages import loop_init, train_crm

pytestmark = pytest.mark.slow

# Stated tolerance: the 2-process gradient is the same sum in another order (float32 rounding).
RTOL, ATOL = 1e-4, 1e-5


def run_stage(root: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        module,
        "--params-file",
        str(root / "params.yaml"),
        "--data-dir",
        str(root / "processed"),
        *args,
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)


def safetensors_of(path: Path) -> dict[str, torch.Tensor]:
    return {
        f"{f.relative_to(path)}:{k}": v
        for f in sorted(path.rglob("*.safetensors"))
        for k, v in load_file(f).items()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    os.environ["TQDM_DISABLE"] = "1"
    base = tmp_path_factory.mktemp("ddp")
    backbone = tiny_backbone(base, "qwen2")  # no dropout in the backbone; LoRA dropout set to 0 below
    tiny_processed(base, num_users=60, num_items=20)
    edit = {("llm", "backbone"): str(backbone), ("llm", "lora", "dropout"): 0.0}
    write_params(base, edit)
    crm_args = ["--model", "sasrec", "--out-dir", base / "models", "--metrics-dir", base / "metrics"]
    assert invoke(train_crm.app, base, *crm_args).exit_code == 0
    assert invoke(loop_init.app, base, "--models-dir", base / "models").exit_code == 0
    out = {}
    for nproc in (1, 2):
        root = base / f"n{nproc}"
        root.mkdir()
        shutil.copytree(base / "models", root / "models")
        shutil.copytree(base / "processed", root / "processed")
        write_params(root, edit | {("distributed", "nproc"): nproc, ("distributed", "backend"): "gloo"})
        ft = run_stage(
            root,
            "stages.finetune_llm",
            "--name",
            "e4srec",
            "--models-dir",
            str(root / "models"),
            "--metrics-dir",
            str(root / "metrics"),
            "--checkpoint-dir",
            str(root / "ck"),
        )
        assert ft.returncode == 0, ft.stderr[-3000:]
        ex = run_stage(
            root,
            "stages.export_logits",
            "--model",
            "e4srec",
            "--split",
            "train",
            "--models-dir",
            str(root / "models"),
            "--out",
            str(root / "train.parquet"),
            "--timing-out",
            str(root / "export.json"),
        )
        assert ex.returncode == 0, ex.stderr[-3000:]
        out[nproc] = root
    return out


def test_two_processes_train_the_same_model(runs: dict[int, Path]) -> None:
    timing = json.loads((runs[2] / "metrics" / "train_e4srec.json").read_text())
    assert timing["processes"] == 2
    one, two = (safetensors_of(runs[n] / "models" / "e4srec") for n in (1, 2))
    assert one.keys() == two.keys() and one
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=RTOL, atol=ATOL, msg=key)
    meta = [json.loads((runs[n] / "models" / "e4srec" / "config.json").read_text()) for n in (1, 2)]
    assert meta[0]["best_epoch"] == meta[1]["best_epoch"]
    assert meta[1]["best_valid"]["ndcg@10"] == pytest.approx(meta[0]["best_valid"]["ndcg@10"], abs=1e-6)
    curves = [(runs[n] / "metrics" / "curves" / "e4srec.tsv").read_text().splitlines() for n in (1, 2)]
    assert len(curves[0]) == len(curves[1]) == 3  # header + 2 epochs, written by rank 0 only


def test_two_process_export_merges_the_shards_in_order(runs: dict[int, Path]) -> None:
    one, two = (read_logits(runs[n] / "train.parquet").rows for n in (1, 2))
    assert json.loads((runs[2] / "export.json").read_text())["processes"] == 2
    for name in ("user_id", "position", "target"):
        np.testing.assert_array_equal(getattr(two, name), getattr(one, name))
    np.testing.assert_allclose(two.top_logits, one.top_logits, rtol=RTOL, atol=ATOL)
    assert (two.top_items == one.top_items).mean() > 0.99  # near-ties may swap under rounding
    assert np.abs(two.target_rank - one.target_rank).max() <= 1


def _resume_worker(rank: int, backbone: str, root: str, port: int) -> None:
    """One of 2 gloo processes: an uninterrupted DDP fine-tune, then one killed after its 4th snapshot
    (every rank stops at the same step, as under a kill of the whole job), then its resumption."""
    import torch.distributed as dist

    from llmd4rec_core.distributed import World
    from llmd4rec_core.llm.checkpoint import build_e4srec
    from llmd4rec_core.llm.finetune import DownwardKD, finetune_e4srec
    from llmd4rec_core.resume import Checkpointer, Snapshot
    from tests.unit.llm.test_e4srec import CPU, crm, cyclic_data, llm_params

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    world = World(rank=rank, size=2)

    class Killed(Exception):
        pass

    class KillAfter(Checkpointer):
        saves_left = 4  # snapshots at steps 4, 8, 9 (epoch end), 12: killed inside epoch 2

        def save(self, snap: Snapshot) -> None:
            super().save(snap)
            KillAfter.saves_left -= 1
            if KillAfter.saves_left == 0:
                raise Killed

    def run(ckpt: Checkpointer | None) -> dict[str, object]:
        cfg = llm_params(Path(backbone))
        cfg = llm_params(Path(backbone), epochs=3, lora=cfg.lora.model_copy(update={"dropout": 0.1}))
        teacher = crm()
        torch.manual_seed(0)
        model = build_e4srec(cfg, teacher.item_embeddings.weight, CPU, None)
        torch.manual_seed(10 + rank)  # each rank its own dropout stream
        kd = DownwardKD(teacher, 0.6, 1.0, True, True)
        result = finetune_e4srec(model, cyclic_data(), cfg, kd, 0, True, 8, ckpt, "finetune_llm@ddp", world)
        drop = ("train_seconds", "seconds")
        return {
            "weights": model.trainable_state(),
            "history": [{k: v for k, v in r.items() if k not in drop} for r in result.history],
        }

    reference = run(None)
    try:
        run(KillAfter(root, "llm", "fp", 4, is_writer=world.is_main))
        raise AssertionError("not killed")
    except Killed:
        pass
    ckpt = Checkpointer(root, "llm", "fp", 4, is_writer=world.is_main)
    resumed = run(ckpt)
    assert ckpt.resumed_from == 12, ckpt.resumed_from  # inside epoch 2
    assert resumed["history"] == reference["history"], (resumed["history"], reference["history"])
    ref_w, res_w = reference["weights"], resumed["weights"]
    assert isinstance(ref_w, dict) and isinstance(res_w, dict)
    for key, value in ref_w.items():
        assert torch.equal(value, res_w[key]), key
    dist.destroy_process_group()


def test_a_killed_two_process_finetune_resumes_exactly(tmp_path: Path) -> None:
    """Every rank's dropout stream and the all-rank running sums come back from rank 0's snapshot."""
    import socket

    import torch.multiprocessing as mp

    backbone = tiny_backbone(tmp_path, "qwen2")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_resume_worker, args=(str(backbone), str(tmp_path / "ck"), port), nprocs=2, join=True)
