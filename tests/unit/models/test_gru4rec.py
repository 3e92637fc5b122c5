"""GRU4Rec: causality, exact left-padding invariance (packed GRU), zero padded rows, shapes, build_crm."""

from __future__ import annotations

import pytest
import torch

from llmd4rec_core.models import GRU4Rec, GRU4RecConfig, build_crm
from llmd4rec_core.params import GRU4RecParams

NUM_ITEMS, D, MAX_LEN = 30, 16, 8


def tiny_gru4rec(num_layers: int = 1, dropout: float = 0.3, seed: int = 0) -> GRU4Rec:
    torch.manual_seed(seed)
    cfg = GRU4RecConfig(
        num_items=NUM_ITEMS, hidden_size=D, max_len=MAX_LEN, num_layers=num_layers, dropout=dropout
    )
    model = GRU4Rec(cfg)
    with torch.no_grad():  # larger random weights than the init: differences become visible
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
        model.item_embeddings.weight[0].zero_()
    return model.eval()


def reference_hidden(model: GRU4Rec, items: list[int]) -> torch.Tensor:
    """The unpadded sequence run through the GRU step by step from a zero state (no packing)."""
    x = model.item_embeddings(torch.tensor([items]))  # [1, n, d]
    state = torch.zeros(model.cfg.num_layers, 1, model.cfg.hidden_size)
    outs = []
    for t in range(len(items)):
        y, state = model.gru(x[:, t : t + 1], state)
        outs.append(y)
    return model.out(torch.cat(outs, dim=1))[0]  # [n, d]


BATCH = torch.tensor(
    [
        [3, 1, 4, 1, 5, 9, 2, 6],
        [0, 0, 0, 7, 8, 9, 10, 11],
        [0, 0, 0, 0, 0, 0, 0, 12],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ]
)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_shapes(num_layers: int) -> None:
    model = tiny_gru4rec(num_layers)
    with torch.no_grad():
        hidden = model(BATCH)
        user = model.user_representation(BATCH)
        scores = model.score_items(BATCH)
    assert hidden.shape == (4, MAX_LEN, D)
    assert user.shape == (4, D)
    assert scores.shape == (4, NUM_ITEMS + 1)
    torch.testing.assert_close(user, hidden[:, -1, :])
    torch.testing.assert_close(scores, user @ model.item_embeddings.weight.T)


def test_padded_positions_are_zero_and_finite() -> None:
    model = tiny_gru4rec()
    with torch.no_grad():
        hidden = model(BATCH)
        scores = model.score_items(BATCH)
    assert torch.isfinite(hidden).all()
    assert torch.isfinite(scores).all()
    assert torch.all(hidden[BATCH == 0] == 0)  # documented: zeros at padded positions
    assert torch.all(hidden[3] == 0)  # the all-padding row: h_u = 0, every score 0
    assert torch.all(scores[3] == 0)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_matches_step_by_step_reference(num_layers: int) -> None:
    model = tiny_gru4rec(num_layers)
    with torch.no_grad():
        hidden = model(BATCH)
        for row in range(3):
            items = [int(i) for i in BATCH[row] if i != 0]
            torch.testing.assert_close(
                hidden[row, MAX_LEN - len(items) :], reference_hidden(model, items), rtol=0, atol=1e-5
            )


@pytest.mark.parametrize("position", range(MAX_LEN))
def test_causality(position: int) -> None:
    model = tiny_gru4rec()
    x = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6], [0, 0, 7, 8, 9, 10, 11, 12]])
    changed = x.clone()
    changed[:, position] = torch.tensor([20, 21])
    with torch.no_grad():
        a, b = model(x), model(changed)
    # row 0 has no padding: every earlier output is untouched. (Row 1: turning padding into an item
    # shifts where the sequence starts, so only row 0 is a pure causality check.)
    torch.testing.assert_close(a[0, :position], b[0, :position], rtol=0, atol=1e-6)
    if position >= 2:  # row 1's change is at a real item: earlier real outputs unchanged
        torch.testing.assert_close(a[1, :position], b[1, :position], rtol=0, atol=1e-6)
    assert not torch.allclose(a[0, position], b[0, position])


@pytest.mark.parametrize(("length", "extra_padding"), [(1, 1), (1, 7), (3, 2), (5, 3), (7, 1)])
def test_left_padding_invariance(length: int, extra_padding: int) -> None:
    model = tiny_gru4rec()
    items = torch.randint(1, NUM_ITEMS + 1, (length,), generator=torch.Generator().manual_seed(length))
    short = items[None, :]
    padded = torch.cat([torch.zeros(1, extra_padding, dtype=torch.long), short], dim=1)
    with torch.no_grad():
        h_short, h_padded = model(short), model(padded)
        torch.testing.assert_close(h_padded[:, extra_padding:], h_short, rtol=0, atol=1e-5)
        torch.testing.assert_close(model.score_items(padded), model.score_items(short), rtol=0, atol=1e-5)


def test_rows_do_not_interact_in_a_batch() -> None:
    model = tiny_gru4rec()
    with torch.no_grad():
        together = model(BATCH)
        for i in range(BATCH.shape[0]):
            torch.testing.assert_close(model(BATCH[i : i + 1]), together[i : i + 1], rtol=0, atol=1e-5)


def test_training_mode_finite_and_gradients() -> None:
    model = tiny_gru4rec(dropout=0.5).train()
    hidden = model(BATCH)
    assert torch.isfinite(hidden).all()
    hidden[BATCH != 0].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert torch.all(model.item_embeddings.weight.grad[0] == 0)  # type: ignore[index]


def test_build_crm_gru4rec() -> None:
    params = GRU4RecParams(
        loss="ce",
        num_negatives=8,
        lr=1e-3,
        weight_decay=0.0,
        batch_size=4,
        max_epochs=1,
        patience=1,
        warmup_epochs=0.0,
        hidden_size=12,
        max_len=6,
        num_layers=2,
        dropout=0.2,
    )
    model = build_crm("gru4rec", params, num_items=9)
    assert isinstance(model, GRU4Rec)
    assert model.cfg == GRU4RecConfig(num_items=9, hidden_size=12, max_len=6, num_layers=2, dropout=0.2)
    assert model.item_embeddings.weight.shape == (10, 12)
    assert torch.all(model.item_embeddings.weight[0] == 0)
    assert model.gru.num_layers == 2
