"""Length-ordered scoring gives the same ranks as the in-order evaluation, for any batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmd4rec_core.evaluation import full_ranking_ranks
from llmd4rec_core.models import SASRec, SASRecConfig
from llmd4rec_core.scoring import ranks_by_length


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_ranks_match_in_order_evaluation(batch_size: int) -> None:
    torch.manual_seed(0)
    model = SASRec(
        SASRecConfig(num_items=30, hidden_size=8, max_len=6, num_layers=1, num_heads=2, dropout=0.0)
    )
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, 31, size=int(rng.integers(1, 12))) for _ in range(25)]
    targets = rng.integers(1, 31, size=25)
    cpu = torch.device("cpu")
    expected = full_ranking_ranks(model, histories, targets, 6, 7, cpu)
    got = ranks_by_length(model, histories, targets, 6, batch_size, cpu)
    for key in ("masked", "unmasked"):
        assert got[key].tolist() == expected[key].tolist()
