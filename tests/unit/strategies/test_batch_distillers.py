"""What every LLM -> CRM batch distiller of strategies/ must do inside the shared CRM training loop:
weight 0 is plain training bit for bit, and a positive weight teaches the student the teacher's ranking."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import tests.unit.strategies.test_pairwise_kd as pairwise
import tests.unit.strategies.test_ranking_kd as ranking
from llmd4rec_core.batching import left_pad
from llmd4rec_core.training import BatchDistiller, train_crm
from tests.unit.test_training import (  # _one_thread: autouse, one torch thread for tiny models
    EVAL_BATCH,
    MAX_LEN,
    NUM_ITEMS,
    _one_thread,  # noqa: F401
    crm_params,
    fresh_model,
    successor_data,
)

# weight -> distiller; the teacher of both ranks item (last + 7) first, a pattern the data lacks
DISTILLERS: dict[str, Callable[[float], BatchDistiller]] = {
    "dllm2rec ranking (Eq. 5-11)": lambda w: ranking.distiller(w),
    "alkdrec pairwise (Eq. 1)": lambda w: pairwise.distiller(w, k=1),
}


@pytest.mark.parametrize("name", DISTILLERS)
def test_weight_zero_is_exactly_plain_training(name: str) -> None:
    data = successor_data()
    params = crm_params("sasrec", max_epochs=3, patience=3)
    plain = fresh_model("sasrec", params)
    train_crm(plain, data, params, MAX_LEN, 0, True, EVAL_BATCH)
    distilled = fresh_model("sasrec", params)
    result = train_crm(distilled, data, params, MAX_LEN, 0, True, EVAL_BATCH, DISTILLERS[name](0.0))
    for key, value in plain.state_dict().items():
        assert torch.equal(value, distilled.state_dict()[key]), key
    assert all(row["train_kl"] > 0 for row in result.history)  # the term is computed, weighted 0


@pytest.mark.parametrize("name", DISTILLERS)
def test_distillation_lifts_the_teachers_first_item_in_the_student(name: str) -> None:
    data = successor_data()
    params = crm_params("sasrec", max_epochs=4, patience=4)
    ranks = {}
    for weight in (0.0, 2.0):
        model = fresh_model("sasrec", params)
        train_crm(model, data, params, MAX_LEN, 0, True, EVAL_BATCH, DISTILLERS[name](weight))
        model.eval()
        histories = data.inputs("valid")
        with torch.no_grad():
            scores = model.score_items(left_pad(histories, MAX_LEN))[:, 1:]
        taught = torch.tensor([(int(h[-1]) + 6) % NUM_ITEMS for h in histories])
        ranks[weight] = float((scores > scores.gather(1, taught[:, None])).sum(1).float().mean())
    assert ranks[2.0] < 0.5 * ranks[0.0], ranks
