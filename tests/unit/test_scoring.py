"""ranks_by_length (length-ordered full ranking): batch-size and order independence, whole-history
masking, agreement with a slow per-user reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmd4rec_core.models import GRU4Rec, GRU4RecConfig, SASRec, SASRecConfig
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.scoring import ranks_by_length

NUM_ITEMS, D, MAX_LEN = 40, 16, 5
CPU = torch.device("cpu")
# lengths 1 and > max_len included; 23 users so batch size 7 leaves a partial last batch
LENGTHS = [1, 2, 5, 6, 13, 1, 3, 4, 9, 5, 1, 7, 2, 20, 3, 5, 6, 1, 11, 4, 2, 8, 3]


def tiny_model(arch: str, seed: int = 0) -> SequentialRecommender:
    torch.manual_seed(seed)
    model: SequentialRecommender
    if arch == "sasrec":
        model = SASRec(
            SASRecConfig(NUM_ITEMS, hidden_size=D, max_len=MAX_LEN, num_layers=2, num_heads=2, dropout=0.0)
        )
    else:
        model = GRU4Rec(GRU4RecConfig(NUM_ITEMS, hidden_size=D, max_len=MAX_LEN, num_layers=1, dropout=0.0))
    with torch.no_grad():  # spread the scores (the 0.02 init makes them nearly equal)
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
        model.item_embeddings.weight[0].zero_()
    return model.train()  # ranks_by_length must switch to eval mode itself (dropout off)


def random_users(seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    histories = [rng.integers(1, NUM_ITEMS + 1, n) for n in LENGTHS]
    targets = rng.integers(1, NUM_ITEMS + 1, len(LENGTHS))
    # some targets inside the history (a masked target must get the worst rank), one of them outside
    # the model's window (the third item of a 20-item history)
    targets[0] = histories[0][0]
    targets[4] = histories[4][-1]
    targets[13] = histories[13][2]
    return histories, targets


def reference_ranks(
    model: SequentialRecommender, histories: list[np.ndarray], targets: np.ndarray
) -> tuple[list[int], list[int]]:
    """One user at a time, no padding: score, mask the whole history in Python, count items >= target."""
    model.eval()
    masked, unmasked = [], []
    with torch.no_grad():
        for hist, target in zip(histories, targets.tolist(), strict=True):
            window = torch.tensor(hist[-MAX_LEN:].tolist())[None, :]
            scores = model.score_items(window)[0].tolist()  # [num_items + 1]
            unmasked.append(sum(1 for i in range(1, NUM_ITEMS + 1) if scores[i] >= scores[target]))
            seen = set(hist.tolist())
            masked_scores = [float("-inf") if i in seen else s for i, s in enumerate(scores)]
            masked.append(
                sum(1 for i in range(1, NUM_ITEMS + 1) if masked_scores[i] >= masked_scores[target])
            )
    return masked, unmasked


@pytest.mark.parametrize("arch", ["sasrec", "gru4rec"])
def test_matches_per_user_reference(arch: str) -> None:
    model = tiny_model(arch)
    histories, targets = random_users(seed=1)
    got = ranks_by_length(model, histories, targets, MAX_LEN, batch_size=7, device=CPU)
    masked, unmasked = reference_ranks(model, histories, targets)
    assert got["unmasked"].tolist() == unmasked
    assert got["masked"].tolist() == masked
    assert got["masked"].dtype == np.int64
    assert got["unmasked"].dtype == np.int64


@pytest.mark.parametrize("arch", ["sasrec", "gru4rec"])
def test_independent_of_batch_size(arch: str) -> None:
    model = tiny_model(arch)
    histories, targets = random_users(seed=2)
    runs = [
        ranks_by_length(model, histories, targets, MAX_LEN, batch_size=b, device=CPU) for b in (1, 7, 512)
    ]
    for run in runs[1:]:
        np.testing.assert_array_equal(run["masked"], runs[0]["masked"])
        np.testing.assert_array_equal(run["unmasked"], runs[0]["unmasked"])


@pytest.mark.parametrize("arch", ["sasrec", "gru4rec"])
def test_masked_ranks_bounds(arch: str) -> None:
    model = tiny_model(arch)
    histories, targets = random_users(seed=3)
    got = ranks_by_length(model, histories, targets, MAX_LEN, batch_size=4, device=CPU)
    # Masking other items only removes competitors, so for a target outside its history
    # masked <= unmasked; a target inside its history gets the worst rank, num_items (>= unmasked).
    in_hist = np.array([t in set(h.tolist()) for h, t in zip(histories, targets.tolist(), strict=True)])
    assert in_hist[[0, 4, 13]].all()
    assert np.all(got["masked"][in_hist] == NUM_ITEMS)
    assert np.all(got["masked"][~in_hist] <= got["unmasked"][~in_hist])
    # and the history removes at most |distinct history items| competitors
    n_seen = np.array([len(set(h.tolist())) for h in histories])
    assert np.all(got["masked"][~in_hist] >= got["unmasked"][~in_hist] - n_seen[~in_hist])
    assert np.all((got["unmasked"] >= 1) & (got["unmasked"] <= NUM_ITEMS))


def test_history_longer_than_max_len_is_masked_in_full() -> None:
    # the target is the FIRST item of a 12-item history: outside the 5-item window the model reads,
    # but still an item the user has seen -> masked rank = num_items
    model = tiny_model("sasrec")
    history = np.arange(1, 13)
    for batch_size in (1, 2):
        got = ranks_by_length(
            model, [history, np.array([7])], np.array([1, 7]), MAX_LEN, batch_size=batch_size, device=CPU
        )
        assert got["masked"].tolist() == [NUM_ITEMS, NUM_ITEMS]


def test_history_longer_than_max_len_masks_old_competitors() -> None:
    # user 0 has a 12-item history; an old item (outside the window) that outscores the target must be
    # masked: compare with the ranks computed from the model's own scores.
    model = tiny_model("gru4rec")
    history = np.array([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22])
    with torch.no_grad():
        scores = model.eval().score_items(torch.tensor([history[-MAX_LEN:].tolist()]))[0]
    outside = [30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]  # candidates never in the history
    target = min(outside, key=lambda i: float(scores[i]))  # lowest-scoring non-history item
    unmasked = int((scores[1:] >= scores[target]).sum())
    beaten_by_history = sum(1 for i in set(history.tolist()) if scores[i] >= scores[target])
    got = ranks_by_length(model, [history], np.array([target]), MAX_LEN, batch_size=1, device=CPU)
    assert got["unmasked"].tolist() == [unmasked]
    assert got["masked"].tolist() == [unmasked - beaten_by_history]
    early = set(history[:-MAX_LEN].tolist())
    assert any(scores[i] >= scores[target] for i in early)  # the old items do matter in this case


def test_switches_model_to_eval_mode() -> None:
    model = tiny_model("sasrec")  # returned in training mode, with dropout 0.5
    histories, targets = random_users(seed=4)
    a = ranks_by_length(model, histories, targets, MAX_LEN, batch_size=5, device=CPU)
    assert not model.training
    b = ranks_by_length(model, histories, targets, MAX_LEN, batch_size=5, device=CPU)
    np.testing.assert_array_equal(a["masked"], b["masked"])


class FixedScores(torch.nn.Module):
    """A stand-in model whose scores ignore the input: one fixed score vector for every user."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)
        self.seen_widths: list[int] = []

    def score_items(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.seen_widths.append(input_ids.shape[1])
        return self.scores.expand(input_ids.shape[0], -1).clone()


def test_hand_computed_ranks_with_fixed_scores() -> None:
    # columns: padding (highest, ignored), items 1..6
    model = FixedScores([10.0, 0.6, 0.5, 0.5, 0.4, 0.3, 0.9])
    histories = [np.array([6]), np.array([2, 3, 4, 5, 6, 1, 1]), np.array([3, 6, 1])]
    targets = np.array([2, 2, 4])
    got = ranks_by_length(model, histories, targets, max_len=3, batch_size=2, device=CPU)  # type: ignore[arg-type]
    # unmasked: item 2 (0.5) is beaten by 6 (0.9), 1 (0.6) and tied with 3 -> rank 4 (twice);
    #           item 4 (0.4) is beaten by 6, 1, 2, 3 -> rank 5
    assert got["unmasked"].tolist() == [4, 4, 5]
    # masked: user 0 removes 6 -> 1 and 3 remain above/tied -> 3; user 1's target is in its history
    # (its first item, outside the 3-item window [6, 1, 1]) -> worst rank 6; user 2 removes 3, 6, 1 ->
    # only item 2 remains above item 4 -> rank 2
    assert got["masked"].tolist() == [3, 6, 2]
    assert all(w <= 3 for w in model.seen_widths)  # the model only ever reads max_len items
