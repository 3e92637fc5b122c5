"""SASRec: causality, left-padding invariance, finite padded rows, shapes, and build_crm."""

from __future__ import annotations

import pytest
import torch

from llmd4rec_core.models import GRU4Rec, SASRec, SASRecConfig, build_crm
from llmd4rec_core.params import GRU4RecParams, SASRecParams

NUM_ITEMS, D, MAX_LEN = 30, 16, 8


def tiny_sasrec(num_layers: int = 2, num_heads: int = 2, dropout: float = 0.3, seed: int = 0) -> SASRec:
    torch.manual_seed(seed)
    cfg = SASRecConfig(
        num_items=NUM_ITEMS,
        hidden_size=D,
        max_len=MAX_LEN,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout=dropout,
    )
    model = SASRec(cfg)
    with torch.no_grad():  # larger random weights than the 0.02 init: differences become visible
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
        model.item_embeddings.weight[0].zero_()
    return model.eval()


def sasrec_params(**overrides: object) -> SASRecParams:
    base: dict[str, object] = dict(
        loss="ce",
        num_negatives=8,
        lr=1e-3,
        weight_decay=0.0,
        batch_size=4,
        max_epochs=1,
        patience=1,
        warmup_epochs=0.0,
        hidden_size=D,
        max_len=MAX_LEN,
        num_layers=1,
        num_heads=2,
        dropout=0.1,
    )
    return SASRecParams(**(base | overrides))  # type: ignore[arg-type]


# A left-padded batch: full window, partly padded, a single item, and an all-padding row.
BATCH = torch.tensor(
    [
        [3, 1, 4, 1, 5, 9, 2, 6],
        [0, 0, 0, 7, 8, 9, 10, 11],
        [0, 0, 0, 0, 0, 0, 0, 12],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ]
)


@pytest.mark.parametrize(("num_layers", "num_heads"), [(1, 1), (2, 2), (2, 4)])
def test_shapes(num_layers: int, num_heads: int) -> None:
    model = tiny_sasrec(num_layers, num_heads)
    with torch.no_grad():
        hidden = model(BATCH)
        user = model.user_representation(BATCH)
        scores = model.score_items(BATCH)
    assert hidden.shape == (4, MAX_LEN, D)
    assert user.shape == (4, D)
    assert scores.shape == (4, NUM_ITEMS + 1)
    torch.testing.assert_close(user, hidden[:, -1, :])
    torch.testing.assert_close(scores, user @ model.item_embeddings.weight.T)


@pytest.mark.parametrize("width", [1, 3, MAX_LEN])
def test_shorter_windows_than_max_len(width: int) -> None:
    model = tiny_sasrec()
    x = torch.randint(1, NUM_ITEMS + 1, (3, width))
    with torch.no_grad():
        assert model(x).shape == (3, width, D)
        assert model.score_items(x).shape == (3, NUM_ITEMS + 1)


def test_padded_rows_are_finite() -> None:
    model = tiny_sasrec()
    with torch.no_grad():
        hidden = model(BATCH)
        scores = model.score_items(BATCH)
    assert torch.isfinite(hidden).all()  # includes padded positions and the all-padding row
    assert torch.isfinite(scores).all()


def test_padded_rows_finite_in_training_mode_and_gradients() -> None:
    model = tiny_sasrec(dropout=0.5).train()
    hidden = model(BATCH)
    assert torch.isfinite(hidden).all()
    hidden[BATCH != 0].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert torch.all(model.item_embeddings.weight.grad[0] == 0)  # type: ignore[index]


@pytest.mark.parametrize("position", range(MAX_LEN))
def test_causality(position: int) -> None:
    # change the item at `position`: outputs at every earlier position stay identical
    model = tiny_sasrec()
    x = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6], [0, 0, 7, 8, 9, 10, 11, 12]])
    changed = x.clone()
    changed[:, position] = torch.tensor([20, 21])
    with torch.no_grad():
        a, b = model(x), model(changed)
    torch.testing.assert_close(a[:, :position], b[:, :position], rtol=0, atol=1e-6)
    real = x[:, position] != 0
    # sanity: the change is visible at the changed position itself when it is a real item
    assert all(not torch.allclose(a[i, position], b[i, position]) for i in range(2) if bool(real[i]))


@pytest.mark.parametrize(("length", "extra_padding"), [(1, 1), (1, 7), (3, 2), (5, 3), (7, 1)])
def test_left_padding_invariance(length: int, extra_padding: int) -> None:
    model = tiny_sasrec()
    items = torch.randint(1, NUM_ITEMS + 1, (length,), generator=torch.Generator().manual_seed(length))
    short = items[None, :]  # [1, length], no padding
    padded = torch.cat([torch.zeros(1, extra_padding, dtype=torch.long), short], dim=1)
    with torch.no_grad():
        h_short, h_padded = model(short), model(padded)
    torch.testing.assert_close(h_padded[:, extra_padding:], h_short, rtol=0, atol=1e-5)
    torch.testing.assert_close(model.score_items(padded), model.score_items(short), rtol=0, atol=1e-4)


def test_rows_do_not_interact_in_a_batch() -> None:
    model = tiny_sasrec()
    with torch.no_grad():
        together = model(BATCH)
        for i in range(BATCH.shape[0]):
            torch.testing.assert_close(model(BATCH[i : i + 1]), together[i : i + 1], rtol=0, atol=1e-5)


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout() -> None:
    model = tiny_sasrec(dropout=0.5)
    with torch.no_grad():
        torch.testing.assert_close(model(BATCH), model(BATCH), rtol=0, atol=0)
        model.train()
        assert not torch.allclose(model(BATCH), model(BATCH))


def test_build_crm_sasrec() -> None:
    model = build_crm("sasrec", sasrec_params(hidden_size=8, num_heads=4, num_layers=3), num_items=17)
    assert isinstance(model, SASRec)
    assert model.cfg == SASRecConfig(
        num_items=17, hidden_size=8, max_len=MAX_LEN, num_layers=3, num_heads=4, dropout=0.1
    )
    assert model.item_embeddings.weight.shape == (18, 8)
    assert torch.all(model.item_embeddings.weight[0] == 0)
    assert len(model.blocks) == 3


def test_build_crm_mismatched_params() -> None:
    gru = GRU4RecParams(**sasrec_params().model_dump(exclude={"num_heads"}))
    assert isinstance(build_crm("gru4rec", gru, num_items=5), GRU4Rec)
    with pytest.raises(ValueError, match="no CRM 'sasrec'"):
        build_crm("sasrec", gru, num_items=5)
    with pytest.raises(ValueError, match="no CRM 'bert4rec'"):
        build_crm("bert4rec", sasrec_params(), num_items=5)


def test_params_reject_heads_not_dividing_hidden() -> None:
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        sasrec_params(hidden_size=10, num_heads=4)
