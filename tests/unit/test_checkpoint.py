"""CRM checkpoints: exact round trip, clear errors for missing/unknown inputs, atomic directory writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import llmd4rec_core.checkpoint as checkpoint
from llmd4rec_core.checkpoint import CONFIG, WEIGHTS, load_checkpoint, save_checkpoint
from llmd4rec_core.errors import InputError
from llmd4rec_core.models import GRU4Rec, GRU4RecConfig, SASRec, SASRecConfig
from llmd4rec_core.models.base import SequentialRecommender

NUM_ITEMS = 25
INPUT = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])


def trained_like(arch: str, seed: int = 0) -> SequentialRecommender:
    """A tiny model with perturbed weights (so a fresh init would not accidentally match)."""
    torch.manual_seed(seed)
    model: SequentialRecommender
    if arch == "sasrec":
        model = SASRec(
            SASRecConfig(NUM_ITEMS, hidden_size=8, max_len=5, num_layers=2, num_heads=2, dropout=0.2)
        )
    else:
        model = GRU4Rec(GRU4RecConfig(NUM_ITEMS, hidden_size=8, max_len=5, num_layers=2, dropout=0.2))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model.item_embeddings.weight[0].zero_()
    return model


def scores(model: SequentialRecommender) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.score_items(INPUT)


@pytest.mark.parametrize(("arch", "cls"), [("sasrec", SASRec), ("gru4rec", GRU4Rec)])
def test_round_trip_identical_scores(tmp_path: Path, arch: str, cls: type) -> None:
    model = trained_like(arch)
    out = tmp_path / "models" / arch  # parent directories are created
    save_checkpoint(out, arch, model, {"best_epoch": 7, "valid": {"ndcg@10": 0.25}})
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG, WEIGHTS])

    loaded, meta = load_checkpoint(out)
    assert isinstance(loaded, cls)
    assert loaded.cfg == model.cfg
    assert meta["arch"] == arch
    assert meta["config"] == model.cfg.to_dict()
    assert meta["best_epoch"] == 7
    assert meta["valid"] == {"ndcg@10": 0.25}
    torch.testing.assert_close(scores(loaded), scores(model), rtol=0, atol=0)  # bit-identical
    for (name, a), (name_b, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert name == name_b
        assert torch.equal(a, b), name


def test_config_json_is_readable(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck", "sasrec", trained_like("sasrec"), {"seed": 3})
    meta = json.loads((tmp_path / "ck" / CONFIG).read_text())
    assert meta == {
        "arch": "sasrec",
        "config": {
            "num_items": NUM_ITEMS,
            "hidden_size": 8,
            "max_len": 5,
            "num_layers": 2,
            "num_heads": 2,
            "dropout": 0.2,
        },
        "seed": 3,
    }


def test_save_replaces_previous_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "ck"
    save_checkpoint(out, "sasrec", trained_like("sasrec", seed=1), {})
    (out / "stale.txt").write_text("left over from an old run")
    second = trained_like("gru4rec", seed=2)
    save_checkpoint(out, "gru4rec", second, {})
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG, WEIGHTS])
    loaded, meta = load_checkpoint(out)
    assert meta["arch"] == "gru4rec"
    torch.testing.assert_close(scores(loaded), scores(second), rtol=0, atol=0)


@pytest.mark.parametrize("missing", [CONFIG, WEIGHTS])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    out = tmp_path / "ck"
    save_checkpoint(out, "sasrec", trained_like("sasrec"), {})
    (out / missing).unlink()
    with pytest.raises(InputError, match=f"{missing}: checkpoint file not found"):
        load_checkpoint(out)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "never_written")


@pytest.mark.parametrize("arch", ["bert4rec", None, "SASRec"])
def test_unknown_arch(tmp_path: Path, arch: str | None) -> None:
    out = tmp_path / "ck"
    save_checkpoint(out, "sasrec", trained_like("sasrec"), {})
    meta = json.loads((out / CONFIG).read_text())
    meta["arch"] = arch
    (out / CONFIG).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="arch: unknown architecture") as err:
        load_checkpoint(out)
    assert "\n" not in str(err.value)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    # config.json says 26 items, the weights hold 25 (+ padding): bad input, not a torch traceback
    out = tmp_path / "ck"
    save_checkpoint(out, "sasrec", trained_like("sasrec"), {})
    meta = json.loads((out / CONFIG).read_text())
    meta["config"]["num_items"] += 1
    (out / CONFIG).write_text(json.dumps(meta))
    with pytest.raises(InputError, match=str(out / WEIGHTS)):
        load_checkpoint(out)


def test_corrupt_weights_file(tmp_path: Path) -> None:
    out = tmp_path / "ck"
    save_checkpoint(out, "gru4rec", trained_like("gru4rec"), {})
    (out / WEIGHTS).write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match=str(out / WEIGHTS)) as err:
        load_checkpoint(out)
    assert "\n" not in str(err.value)


def test_failed_save_leaves_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ck", "sasrec", trained_like("sasrec"), {})
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary sibling survives


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ck"
    first = trained_like("sasrec", seed=5)
    save_checkpoint(out, "sasrec", first, {"run": 1})
    expected = scores(first)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        save_checkpoint(out, "sasrec", trained_like("sasrec", seed=6), {"run": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    loaded, meta = load_checkpoint(out)
    assert meta["run"] == 1
    torch.testing.assert_close(scores(loaded), expected, rtol=0, atol=0)


def test_weights_are_safetensors_not_pickle(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck", "gru4rec", trained_like("gru4rec"), {})
    raw = (tmp_path / "ck" / WEIGHTS).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # safetensors: u64 header size, then a JSON header
    header = json.loads(raw[8 : 8 + header_len])
    assert "item_embeddings.weight" in header
    assert header["item_embeddings.weight"]["shape"] == [NUM_ITEMS + 1, 8]
