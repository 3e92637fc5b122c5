"""strategies/embedding_kd.py: DLLM2Rec's collaborative item table installed in a CRM, then baked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from llmd4rec_core.atomic import json_text
from llmd4rec_core.errors import InputError
from llmd4rec_core.llm.checkpoint import ARCH, HEADS
from llmd4rec_core.strategies.dllm2rec import CollaborativeItemEmbedding
from llmd4rec_core.strategies.embedding_kd import (
    bake_item_table,
    install_collaborative_table,
    teacher_item_representations,
)
from tests.unit.test_training import NUM_ITEMS, crm_params, fresh_model


def fake_llm_dir(root: Path, w_out: torch.Tensor, arch: str = ARCH) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    save_file({"w_out": w_out, "w_in": torch.zeros(2, 2)}, root / HEADS)
    (root / "config.json").write_text(json_text({"arch": arch, "num_items": w_out.shape[0]}))
    return root


def test_teacher_items_are_the_llm_item_head(tmp_path: Path) -> None:
    w_out = torch.randn(NUM_ITEMS, 12)
    assert torch.equal(teacher_item_representations(fake_llm_dir(tmp_path / "a", w_out), NUM_ITEMS), w_out)
    with pytest.raises(InputError, match=r"w_out has shape \(40, 12\), expected \[41, D\]"):
        teacher_item_representations(tmp_path / "a", NUM_ITEMS + 1)
    bad = w_out.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InputError, match="w_out holds NaN"):
        teacher_item_representations(fake_llm_dir(tmp_path / "c", bad), NUM_ITEMS)
    with pytest.raises(InputError, match="is not an LLM recommender"):
        teacher_item_representations(fake_llm_dir(tmp_path / "b", w_out, arch="sasrec"), NUM_ITEMS)
    (tmp_path / "a" / HEADS).write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="no readable w_out"):
        teacher_item_representations(tmp_path / "a", NUM_ITEMS)


@pytest.mark.parametrize("hidden", [0, 7])
def test_installed_table_is_eq13_trains_and_bakes_to_identical_scores(hidden: int) -> None:
    params = crm_params("sasrec")
    model = fresh_model("sasrec", params)
    offset = model.item_embeddings.weight.detach().clone()
    teacher = torch.randn(NUM_ITEMS, 12)
    state = torch.get_rng_state()
    table = install_collaborative_table(model, teacher, 0.5, hidden, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the projector has its own generator
    assert isinstance(model.item_embeddings, CollaborativeItemEmbedding)
    assert (table.projector.__class__.__name__ == "Linear") == (hidden == 0)
    again = install_collaborative_table(fresh_model("sasrec", params), teacher, 0.5, hidden, seed=3)
    pairs = zip(again.projector.parameters(), table.projector.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    with torch.no_grad():
        expected = offset[1:] + 0.5 * table.projector(teacher)  # Eq. 13, e_i = b_i + alpha g(z_i)
        assert (
            torch.allclose(model.item_embeddings.weight[1:], expected)
            and not model.item_embeddings.weight[0].any()
        )
    x = torch.tensor([[0, 3, 5, 7], [1, 2, 3, 4]])
    model.score_items(x).sum().backward()
    assert table.offset.weight.grad is not None and next(table.projector.parameters()).grad is not None
    model.eval()
    with torch.no_grad():
        before = model.score_items(x)
        bake_item_table(model)
        after = model.score_items(x)
    assert type(model.item_embeddings) is torch.nn.Embedding
    assert torch.equal(before, after)
    plain = fresh_model("sasrec", params)
    assert set(model.state_dict()) == set(plain.state_dict())  # saves like an undistilled CRM
    bake_item_table(model)  # a plain table: nothing to do
    assert torch.equal(model.score_items(x), after)
