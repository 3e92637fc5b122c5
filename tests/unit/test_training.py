"""The CRM training loop: it learns a deterministic pattern with every loss, keeps the best epoch's weights,
stops after ``patience`` non-improving epochs, and follows the warm-up + cosine LR schedule."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import llmd4rec_core.training as training
from llmd4rec_core.data.sequences import SequenceData
from llmd4rec_core.metrics import ranking_metrics
from llmd4rec_core.models import build_crm
from llmd4rec_core.models.base import SequentialRecommender
from llmd4rec_core.params import GRU4RecParams, SASRecParams
from llmd4rec_core.scoring import ranks_by_length
from llmd4rec_core.seeding import pick_device, seed_everything
from llmd4rec_core.training import train_crm, training_pairs, validation_metrics, warmup_cosine

NUM_ITEMS, NUM_USERS, MAX_LEN, EVAL_BATCH = 40, 80, 8, 64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # (progress bars need no silencing: pytest captures them, and TQDM_DISABLE is read at tqdm's import)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster and leaves the other core alone
    yield
    torch.set_num_threads(threads)


def successor_data(seed: int = 0) -> SequenceData:
    """Every user walks the catalogue in order: item i is always followed by i + 1 (N by 1).

    4-10 items per user; leave-one-out: the last two are the validation and test targets.
    """
    rng = np.random.default_rng(seed)
    train, valid, test = [], [], []
    for _ in range(NUM_USERS):
        start, length = int(rng.integers(1, NUM_ITEMS + 1)), int(rng.integers(4, 11))
        seq = (start - 1 + np.arange(length)) % NUM_ITEMS + 1
        train.append(seq[:-2].astype(np.int64))
        valid.append(seq[-2])
        test.append(seq[-1])
    return SequenceData(
        num_items=NUM_ITEMS,
        user_ids=np.arange(1, NUM_USERS + 1, dtype=np.int64),
        train=train,
        valid=np.array(valid, dtype=np.int64),
        test=np.array(test, dtype=np.int64),
    )


def crm_params(arch: str, **overrides: object) -> SASRecParams | GRU4RecParams:
    common: dict[str, object] = dict(
        loss="ce",
        num_negatives=10,
        lr=3e-2,
        weight_decay=0.0,
        batch_size=16,
        max_epochs=20,
        patience=20,
        warmup_epochs=0.0,
        hidden_size=16,
        max_len=MAX_LEN,
        num_layers=1,
        dropout=0.1,
    )
    common |= overrides
    if arch == "sasrec":
        return SASRecParams(**common, num_heads=1)  # type: ignore[arg-type]
    return GRU4RecParams(**common)  # type: ignore[arg-type]


def fresh_model(arch: str, params: SASRecParams | GRU4RecParams, seed: int = 0) -> SequentialRecommender:
    seed_everything(seed)
    return build_crm(arch, params, NUM_ITEMS)


def valid_ndcg10(model: SequentialRecommender, data: SequenceData) -> float:
    return validation_metrics(model, data, MAX_LEN, mask_history=True, eval_batch=EVAL_BATCH)["ndcg@10"]


# ------------------------------------------------------------------------------------------- learning

# Uniform random ranks among the ~34 unmasked candidates give NDCG@10 ~ (1/34) * sum_{r<=10} 1/log2(r+1)
# = 4.54 / 34 ~ 0.13; a model that learned "next = last + 1" puts the target at rank 1 (NDCG 1).
RANDOM_LEVEL, LEARNED_LEVEL = 0.3, 0.6


@pytest.mark.parametrize(
    ("arch", "loss", "max_epochs"),
    [
        ("sasrec", "ce", 8),
        ("sasrec", "sampled", 10),
        ("sasrec", "bce", 12),
        ("gru4rec", "ce", 20),
        ("gru4rec", "sampled", 30),
        ("gru4rec", "bce", 30),
    ],
)
def test_learns_successor_pattern(arch: str, loss: str, max_epochs: int) -> None:
    data = successor_data()
    params = crm_params(arch, loss=loss, max_epochs=max_epochs, patience=max_epochs)
    model = fresh_model(arch, params)
    assert valid_ndcg10(model, data) < RANDOM_LEVEL  # untrained: near random

    result = train_crm(model, data, params, MAX_LEN, seed=0, mask_history=True, eval_batch=EVAL_BATCH)

    assert result.best_valid["ndcg@10"] > LEARNED_LEVEL
    # the returned model carries the best epoch's weights: re-evaluating gives exactly best_valid
    assert valid_ndcg10(model, data) == result.best_valid["ndcg@10"]
    curve = [row["valid_ndcg@10"] for row in result.history]
    assert result.best_epoch == 1 + int(np.argmax(curve))  # first epoch reaching the maximum
    assert result.best_valid["ndcg@10"] == max(curve)
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine reaches 0 at max_epochs
    # the test split (input = train + valid item) is learned as well
    ranks = ranks_by_length(model, data.inputs("test"), data.targets("test"), MAX_LEN, 64, pick_device())
    assert ranking_metrics(ranks["masked"], [10])["ndcg@10"] > LEARNED_LEVEL


# ------------------------------------------------------------------------- best epoch, early stopping


@pytest.mark.parametrize(
    ("curve", "patience", "max_epochs", "best_epoch", "epochs_run"),
    [
        # best 0.3 at epoch 2; epochs 3, 4 (a tie is not an improvement), 5 do not improve -> stop after 5
        ([0.1, 0.3, 0.2, 0.3, 0.25, 0.9], 3, 6, 2, 5),
        # 0.5, worse, better (counter resets), tie, better -> runs to max_epochs, best is the last
        ([0.5, 0.4, 0.6, 0.6, 0.7], 2, 5, 5, 5),
        # patience 1: the first non-improving epoch stops training
        ([0.2, 0.2, 0.9], 1, 3, 1, 2),
        # never improving after epoch 1 but max_epochs comes first
        ([0.0, 0.0, 0.0], 5, 3, 1, 3),
        # always improving
        ([0.1, 0.2, 0.3, 0.4], 1, 4, 4, 4),
        # best in the middle, then exactly `patience` bad epochs
        ([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], 4, 7, 2, 6),
    ],
)
def test_best_epoch_and_early_stopping(
    monkeypatch: pytest.MonkeyPatch,
    curve: list[float],
    patience: int,
    max_epochs: int,
    best_epoch: int,
    epochs_run: int,
) -> None:
    """Validation NDCG@10 is scripted; the weights seen at each validation are recorded."""
    snapshots: list[dict[str, torch.Tensor]] = []

    def scripted(model: SequentialRecommender, *args: object, **kwargs: object) -> dict[str, float]:
        snapshots.append(copy.deepcopy(model.state_dict()))
        value = curve[len(snapshots) - 1]
        return {"ndcg@10": value, "hr@10": value}

    monkeypatch.setattr(training, "validation_metrics", scripted)
    data = successor_data()
    params = crm_params("sasrec", max_epochs=max_epochs, patience=patience, lr=1e-2)
    model = fresh_model("sasrec", params)
    result = train_crm(model, data, params, MAX_LEN, seed=0, mask_history=True, eval_batch=EVAL_BATCH)

    assert len(result.history) == epochs_run == len(snapshots)
    assert [row["epoch"] for row in result.history] == list(range(1, epochs_run + 1))
    assert [row["valid_ndcg@10"] for row in result.history] == curve[:epochs_run]
    assert result.best_epoch == best_epoch
    assert result.best_valid == {"ndcg@10": curve[best_epoch - 1], "hr@10": curve[best_epoch - 1]}
    best = snapshots[best_epoch - 1]
    for name, tensor in model.state_dict().items():  # the model ends with the best epoch's weights
        assert torch.equal(tensor, best[name]), name
        assert torch.equal(result.state_dict[name], best[name]), name
    if best_epoch != epochs_run:  # and those differ from the last epoch's (training did move them)
        last = snapshots[-1]
        assert any(not torch.equal(last[n], best[n]) for n in best)


# ------------------------------------------------------------------------------------------ schedule


@pytest.mark.parametrize(
    ("step", "warmup", "total", "expected"),
    [
        (0, 4, 20, 1 / 4),  # linear warm-up: (step + 1) / warmup, so the first step already moves
        (1, 4, 20, 2 / 4),
        (3, 4, 20, 1.0),  # last warm-up step reaches the peak
        (4, 4, 20, 1.0),  # end of warm-up: cosine at progress 0 -> 1
        (12, 4, 20, 0.5),  # half-way through the decay: 0.5 * (1 + cos(pi / 2)) = 0.5
        (8, 4, 20, 0.5 * (1 + math.cos(math.pi / 4))),  # progress 4/16 = 1/4
        (20, 4, 20, 0.0),  # the end: 0.5 * (1 + cos(pi)) = 0
        (27, 4, 20, 0.0),  # past the end: clamped at 0, never rising again
        (0, 0, 10, 1.0),  # no warm-up: start at the peak
        (5, 0, 10, 0.5),
        (10, 0, 10, 0.0),
        (0, 1, 1, 1.0),  # degenerate: warm-up covers everything
    ],
)
def test_warmup_cosine(step: int, warmup: int, total: int, expected: float) -> None:
    assert warmup_cosine(step, warmup, total) == pytest.approx(expected, abs=1e-12)


def test_warmup_cosine_shape() -> None:
    values = [warmup_cosine(s, 5, 30) for s in range(31)]
    assert values[:5] == sorted(values[:5])  # increasing during warm-up
    assert values[4:] == sorted(values[4:], reverse=True)  # then non-increasing
    assert all(0.0 <= v <= 1.0 for v in values)


def test_lr_recorded_per_epoch_follows_schedule() -> None:
    # warm-up of exactly one epoch, three epochs: after epoch 1 the multiplier is warmup_cosine(E, E, 3E)
    # = 1 (progress 0); after epoch 2 progress E / 2E = 1/2 -> 0.5; after epoch 3 -> 0.
    data = successor_data()
    params = crm_params("gru4rec", max_epochs=3, patience=3, warmup_epochs=1.0, lr=1e-2)
    result = train_crm(fresh_model("gru4rec", params), data, params, MAX_LEN, 0, True, EVAL_BATCH)
    assert [row["lr"] for row in result.history] == pytest.approx([1e-2, 0.5e-2, 0.0], abs=1e-12)


# --------------------------------------------------------------------------------- pairs, validation


def test_training_pairs() -> None:
    train = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6]), np.array([], dtype=np.int64)]
    users, inputs, targets = training_pairs(train)
    assert users.tolist() == [0, 2]
    assert [x.tolist() for x in inputs] == [[1, 2], [5]]
    assert [y.tolist() for y in targets] == [[2, 3], [6]]


@pytest.mark.parametrize("mask_history", [True, False])
def test_validation_metrics_uses_the_chosen_ranks(mask_history: bool) -> None:
    data = successor_data()
    model = fresh_model("sasrec", crm_params("sasrec"))
    ranks = ranks_by_length(model, data.inputs("valid"), data.targets("valid"), MAX_LEN, 7, pick_device())
    expected = ranking_metrics(ranks["masked" if mask_history else "unmasked"], [10])
    assert validation_metrics(model, data, MAX_LEN, mask_history, eval_batch=EVAL_BATCH) == expected


def test_training_is_reproducible_for_a_seed() -> None:
    data = successor_data()
    params = crm_params("sasrec", loss="sampled", max_epochs=3, patience=3)
    runs = []
    for _ in range(2):
        model = fresh_model("sasrec", params, seed=3)
        result = train_crm(model, data, params, MAX_LEN, seed=3, mask_history=True, eval_batch=EVAL_BATCH)
        runs.append(([r["train_loss"] for r in result.history], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name, tensor in runs[0][1].items():
        assert torch.equal(tensor, runs[1][1][name]), name


def test_seed_everything_reproduces_all_generators() -> None:
    import random

    draws = []
    for _ in range(2):
        seed_everything(123)
        draws.append((random.random(), np.random.rand(), torch.rand(3).tolist()))
    assert draws[0] == draws[1]
    assert pick_device() in (torch.device("cpu"), torch.device("cuda"))


# -------------------------------------------------------------------- upward distillation (Eq. 9)


def teacher_of(data: SequenceData, logits_fn: object, per_user: int = 2) -> object:
    """An in-memory export of every user's ``per_user`` most recent training positions."""
    from pathlib import Path

    from llmd4rec_core.data.instances import split_instances
    from llmd4rec_core.distill.upward import index_teacher
    from llmd4rec_core.logits.schema import LogitRows, LogitsFile, compress

    inst = split_instances(data, "train", per_user)
    logits = torch.stack([logits_fn(h, t) for h, t in zip(inst.histories, inst.targets, strict=True)])  # type: ignore[operator]
    rows = LogitRows(
        user_id=inst.user_id.astype(np.int32),
        position=inst.position.astype(np.int32),
        target=inst.targets.astype(np.int32),
        target_rank=np.ones(len(inst), np.int32),
        **compress(logits, top_k=5),
    )
    file = LogitsFile(Path("t.parquet"), {"split": "train", "num_items": NUM_ITEMS, "top_k": 5}, rows)
    return index_teacher(file, data)


def shuffled_teacher(history: np.ndarray, target: int) -> torch.Tensor:
    """A teacher that always recommends item (last + 7) — a pattern the data does not have."""
    logits = torch.zeros(NUM_ITEMS)
    logits[(int(history[-1]) + 6) % NUM_ITEMS] = 8.0
    return logits


def teacher_kl(model: SequentialRecommender, teacher: object, temperature: float) -> float:
    """Mean KL(teacher || model) over the teacher's rows, model in eval mode."""
    from llmd4rec_core.batching import left_pad
    from llmd4rec_core.distill.kl import tempered_kl
    from llmd4rec_core.logits.schema import full_logits

    rows = teacher.file.rows  # type: ignore[attr-defined]
    histories = [teacher.train[u][:p] for u, p in zip(teacher.user_index, rows.position, strict=True)]  # type: ignore[attr-defined]
    model.eval()
    with torch.no_grad():
        scores = model.score_items(left_pad(histories, MAX_LEN))[:, 1:]
    return float(tempered_kl(full_logits(rows), scores, temperature).mean())


def test_zero_beta_distillation_is_exactly_the_baseline() -> None:
    """The KL term consumes no randomness: with beta = 0 the weights equal plain training's bit for bit."""
    from llmd4rec_core.distill.upward import UpwardKD

    data = successor_data()
    params = crm_params("sasrec", max_epochs=3, patience=3)
    plain = fresh_model("sasrec", params)
    train_crm(plain, data, params, MAX_LEN, seed=0, mask_history=True, eval_batch=EVAL_BATCH)
    teacher = teacher_of(data, shuffled_teacher)
    kd = UpwardKD(teacher, 0.5, 0.0, True, True, rows_per_user=1, rng=np.random.default_rng(1))  # type: ignore[arg-type]
    distilled = fresh_model("sasrec", params)
    result = train_crm(distilled, data, params, MAX_LEN, 0, True, EVAL_BATCH, kd)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, distilled.state_dict()[key]), key
    assert {"train_rec", "train_kl", "train_w2"} <= set(result.history[0])
    assert all(row["train_kl"] > 0 for row in result.history)


@pytest.mark.parametrize("sample_weights", [True, False])
def test_distillation_pulls_the_crm_towards_the_teacher(sample_weights: bool) -> None:
    data = successor_data()
    params = crm_params("sasrec", max_epochs=6, patience=6)
    teacher = teacher_of(data, shuffled_teacher)
    plain = fresh_model("sasrec", params)
    train_crm(plain, data, params, MAX_LEN, seed=0, mask_history=True, eval_batch=EVAL_BATCH)
    from llmd4rec_core.distill.upward import UpwardKD

    kd = UpwardKD(teacher, 0.5, 2.0, sample_weights, True, rows_per_user=0, rng=np.random.default_rng(1))  # type: ignore[arg-type]
    distilled = fresh_model("sasrec", params)
    train_crm(distilled, data, params, MAX_LEN, 0, True, EVAL_BATCH, kd)
    assert teacher_kl(distilled, teacher, 0.5) < 0.5 * teacher_kl(plain, teacher, 0.5)


def test_set_determinism_switches_torch_to_deterministic_kernels() -> None:
    from llmd4rec_core.seeding import set_determinism

    before = torch.are_deterministic_algorithms_enabled()
    try:
        set_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        set_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
