"""Numerical safety of the training loops: stop at the first non-finite loss or gradient."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from llmd4rec_core.errors import NonFiniteError


def check_finite(loss: torch.Tensor, params: Iterable[torch.nn.Parameter], where: str) -> None:
    """Raise :class:`NonFiniteError` naming ``where`` (stage, epoch and step) if the loss or any gradient
    of ``params`` is NaN or infinite. Call after ``backward()`` and before ``optimizer.step()``, so the
    weights are never touched by a bad step. One host sync per step (a scalar)."""
    if not bool(torch.isfinite(loss.detach())):
        raise NonFiniteError(f"{where}: non-finite loss {loss.item()}")
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        finite = torch.stack([torch.isfinite(g).all() for g in grads])  # [P] (no norm: it could overflow)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise NonFiniteError(f"{where}: non-finite gradient in {bad} of {len(grads)} parameter tensors")
