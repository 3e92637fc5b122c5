"""The embedding update of Algorithm 1 (lines 4-5): round t's LLM reads round t-1's CRM item table.

A CRM retrained from a fresh initialisation learns an item table in coordinates of its own: the same
geometry up to (roughly) a linear map, but not the coordinates ``W_in`` was trained on, so a bare swap
starts the round from a scrambled input projection. The paper is silent on this; with
``loop.refit_w_in`` we re-fit ``W_in`` to the new table by least squares over all items,

    A = argmin_A || E_new A - E_old ||_F        (A: [d, d], rows 1..I; E_new A ~ E_old)
    W_in <- W_in A^T                             (so W_in e_new ~ W_in_old e_old for every item)

which keeps the table exactly the CRM's (the injected embeddings are the new ones, Eq. 1) and starts
the projection where the previous round left it. Identical tables leave ``W_in`` untouched.
"""

from __future__ import annotations

import torch

from llmd4rec_core.errors import InputError
from llmd4rec_core.llm.e4srec import E4SRec


def refit_projection(
    w_in: torch.Tensor, old_table: torch.Tensor, new_table: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """(W_in A^T, relative residual ||E_new A - E_old|| / ||E_old||), A the least-squares map from the
    new table onto the old one. w_in: [D, d]; tables: [I + 1, d] (row 0 = padding, left out); float64."""
    old, new = old_table[1:].double(), new_table[1:].double()  # [I, d]
    a = torch.linalg.lstsq(new, old).solution  # [d, d]
    residual = float((new @ a - old).norm() / old.norm().clamp_min(1e-300))
    return (w_in.double() @ a.T).to(w_in.dtype), residual


def update_item_table(model: E4SRec, item_table: torch.Tensor, source: str, refit_w_in: bool) -> float:
    """Replace E with a newer CRM's item table; with ``refit_w_in`` re-fit W_in to it (module doc).

    Returns the relative residual ||E_new A - E_old|| / ||E_old|| of the fit (0 when nothing changed,
    nan without a refit), which the stage records.
    """
    if item_table.shape != model.item_table.shape:
        raise InputError(
            f"{source}: item table {tuple(item_table.shape)} does not fit the LLM's "
            f"{tuple(model.item_table.shape)}"
        )
    new = item_table.detach().to(model.item_table)
    if torch.equal(new, model.item_table):
        return 0.0
    residual = float("nan")
    if refit_w_in:
        with torch.no_grad():
            weight, residual = refit_projection(model.w_in.weight, model.item_table, new)
            model.w_in.weight.copy_(weight)
    model.item_table.copy_(new)
    return residual
