"""guards.check_finite: a NaN/inf loss or gradient stops training with a message naming stage and step;
large but finite values pass."""

from __future__ import annotations

import pytest
import torch

from llmd4rec_core.errors import NonFiniteError, PipelineError
from llmd4rec_core.guards import check_finite
from llmd4rec_core.training import train_crm
from tests.unit.test_training import EVAL_BATCH, MAX_LEN, crm_params, fresh_model, successor_data


def param_with_grad(grad: torch.Tensor) -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.zeros_like(grad))
    p.grad = grad
    return p


def test_finite_values_pass_even_when_huge() -> None:
    check_finite(torch.tensor(3.4e38), [param_with_grad(torch.full((4,), 3e38))], "s")  # norm would overflow


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_loss_is_named(loss: float) -> None:
    with pytest.raises(
        NonFiniteError, match=r"^train_crm@x: epoch 2, step 7: non-finite loss (nan|inf|-inf)$"
    ):
        check_finite(torch.tensor(loss), [], "train_crm@x: epoch 2, step 7")


def test_a_non_finite_gradient_is_counted() -> None:
    params = [param_with_grad(torch.ones(3)), param_with_grad(torch.tensor([1.0, float("nan")]))]
    params.append(torch.nn.Parameter(torch.zeros(2)))  # no grad: skipped
    with pytest.raises(NonFiniteError, match=r"^s: non-finite gradient in 1 of 2 parameter tensors$"):
        check_finite(torch.tensor(1.0), params, "s")
    assert issubclass(NonFiniteError, PipelineError)


def test_crm_training_stops_at_the_first_bad_step_without_touching_the_weights() -> None:
    data = successor_data()
    params = crm_params("sasrec", max_epochs=2, patience=2)
    model = fresh_model("sasrec", params)
    with torch.no_grad():
        model.item_embeddings.weight[3] = float("inf")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"^distill_crm@round1: epoch 1, step 1: non-finite loss nan$"):
        train_crm(model, data, params, MAX_LEN, 0, True, EVAL_BATCH, None, None, "distill_crm@round1")
    for key, value in model.state_dict().items():
        assert torch.allclose(value, before[key], rtol=0, atol=0, equal_nan=True), key
