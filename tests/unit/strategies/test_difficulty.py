"""strategies/difficulty.py: the teacher CRM's instance difficulty for ALKDRec's selection."""

from __future__ import annotations

import numpy as np
import torch

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.instances import Instances, split_instances
from llmd4rec_core.strategies.alkdrec import consistency_difficulty
from llmd4rec_core.strategies.difficulty import consistency_difficulties, target_ranks
from tests.unit.test_training import MAX_LEN, NUM_ITEMS, crm_params, fresh_model, successor_data


class FixedScorer:
    """Scores item j as j for every history: the target's rank is the number of larger unmasked ids + 1."""

    def eval(self) -> FixedScorer:
        return self

    def score_items(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.arange(NUM_ITEMS + 1, dtype=torch.float32).expand(len(input_ids), -1).clone()


def instances(histories: list[list[int]], targets: list[int]) -> Instances:
    n = len(targets)
    return Instances(np.arange(n), np.arange(n), np.array([len(h) for h in histories]),
                     [np.array(h) for h in histories], np.array(targets))  # fmt: skip


def test_target_ranks_hand_values_with_history_masked() -> None:
    inst = instances([[40, 39], [5], [1, 2, 3]], [38, 40, 39])
    # row 0: 40 and 39 masked, 38 is the best left -> 1; row 1: 40 best -> 1; row 2: only 40 above 39 -> 2
    ranks = target_ranks(FixedScorer(), inst, MAX_LEN, 2, torch.device("cpu"))
    assert ranks.tolist() == [1, 1, 2]


def test_difficulties_do_not_depend_on_batch_size() -> None:
    data = successor_data()
    inst = split_instances(data, "train", 2)
    model = fresh_model("sasrec", crm_params("sasrec")).eval()
    cpu = torch.device("cpu")
    for fn in (target_ranks, consistency_difficulties):
        assert np.allclose(fn(model, inst, MAX_LEN, 7, cpu), fn(model, inst, MAX_LEN, 500, cpu), atol=1e-6)


def test_consistency_difficulty_is_the_papers_on_each_instance() -> None:
    data = successor_data()
    inst = split_instances(data, "train", 1).take(np.arange(5))
    model = fresh_model("sasrec", crm_params("sasrec")).eval()
    got = consistency_difficulties(model, inst, MAX_LEN, 2, torch.device("cpu"))
    with torch.no_grad():
        for n, history in enumerate(inst.histories):
            x = left_pad([history], MAX_LEN)
            value = consistency_difficulty(model.user_representation(x), model.item_embeddings(x), x != 0)
            assert abs(float(value) - got[n]) < 1e-6
    assert (got < 0).all() and (got > -1).all()
