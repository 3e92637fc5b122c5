"""The embedding update of Algorithm 1 with the least-squares re-fit of W_in (llm/embedding_update.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmd4rec_core.errors import InputError
from llmd4rec_core.llm.e4srec import E4SRec
from llmd4rec_core.llm.embedding_update import refit_projection, update_item_table


def tiny_e4srec(table: torch.Tensor, hidden: int = 5) -> E4SRec:
    torch.manual_seed(0)
    return E4SRec(nn.Identity(), table, hidden, template=None)  # type: ignore[arg-type]  # table and W_in only


def tables(num_items: int = 40, d: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """An old table and a new one in other coordinates: E_new = E_old R (R invertible), row 0 = padding."""
    g = torch.Generator().manual_seed(1)
    old = torch.randn(num_items + 1, d, generator=g)
    old[0] = 0
    rotation = torch.linalg.qr(torch.randn(d, d, generator=g)).Q * torch.tensor([2.0, 1.0, 0.5, 3.0])
    return old, old @ rotation


def test_refit_keeps_every_projected_item_when_the_tables_differ_by_a_linear_map() -> None:
    old, new = tables()
    w_in = torch.randn(5, 4)
    weight, residual = refit_projection(w_in, old, new)
    assert residual < 1e-6
    torch.testing.assert_close(new @ weight.T, old @ w_in.T, rtol=1e-4, atol=1e-5)


def test_update_swaps_the_table_and_refits_w_in() -> None:
    old, new = tables()
    model = tiny_e4srec(old)
    projected_before = model.w_in(old[1:]).detach()
    residual = update_item_table(model, new, "models/llmd4rec_c/round1", refit_w_in=True)
    assert residual < 1e-6
    assert torch.equal(model.item_table, new)  # the LLM reads exactly the new CRM's embeddings (Eq. 1)
    torch.testing.assert_close(model.w_in(new[1:]).detach(), projected_before, rtol=1e-4, atol=1e-5)


def test_update_without_refit_only_swaps_the_table() -> None:
    old, new = tables()
    model = tiny_e4srec(old)
    w_before = model.w_in.weight.detach().clone()
    residual = update_item_table(model, new, "x", refit_w_in=False)
    assert residual != residual  # nan: no fit was made
    assert torch.equal(model.item_table, new) and torch.equal(model.w_in.weight, w_before)


def test_an_identical_table_changes_nothing() -> None:
    old, _ = tables()
    model = tiny_e4srec(old)
    w_before = model.w_in.weight.detach().clone()
    assert update_item_table(model, old.clone(), "x", refit_w_in=True) == 0.0
    assert torch.equal(model.w_in.weight, w_before)  # round 1: the table is round 0's, bit for bit


def test_a_table_of_another_shape_is_refused() -> None:
    old, _ = tables()
    with pytest.raises(InputError, match=r"models/x: item table \(41, 3\) does not fit"):
        update_item_table(tiny_e4srec(old), torch.zeros(41, 3), "models/x", refit_w_in=True)
