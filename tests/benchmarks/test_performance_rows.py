"""The SASRec rows of benchmarks/performance.py on hand-made curves (the benchmark never runs in tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def perf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("performance", ROOT / "benchmarks" / "performance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def epoch(n: int, seconds: float, unmasked: float, masked: float) -> dict[str, Any]:
    return {
        "epoch": n,
        "seconds": seconds,
        "train_seconds": seconds / n,
        "valid_ndcg@10": unmasked,
        "valid_masked_ndcg@10": masked,
        "history_items_in_top10": 1.0,
        "peak_rss_gb": 2.0,
    }


RECBOLE = [epoch(1, 100, 0.010, 0.020), epoch(2, 200, 0.020, 0.030), epoch(3, 300, 0.030, 0.035)]
OURS = [epoch(1, 10, 0.015, 0.025), epoch(2, 20, 0.025, 0.040)]


def by_figure(rows: list[dict[str, Any]], *words: str) -> dict[str, Any]:
    (hit,) = [r for r in rows if all(w in r["figure"] for w in words)]
    return hit


def test_time_to_reach_reads_the_named_curve(perf: ModuleType) -> None:
    assert perf.time_to_reach(OURS, "valid_masked_ndcg@10", 0.03) == 20  # unmasked never reaches 0.03
    assert perf.time_to_reach(OURS, "valid_ndcg@10", 0.015) == 10
    assert perf.time_to_reach(OURS, "valid_ndcg@10", 0.03) is None


def test_rows_compare_each_protocol_with_itself(perf: ModuleType) -> None:
    rows = perf.sasrec_rows({"recbole": ({}, RECBOLE), "ours:ce": ({"history_items_in_top10": 1.5}, OURS)})
    masked_2 = by_figure(rows, "epoch-2", "0.0300", "history masked")
    assert (masked_2["ours"], masked_2["reference"], masked_2["ratio"]) == (20, 200, 0.1)
    unmasked_2 = by_figure(rows, "epoch-2", "0.0200", "unmasked")
    assert (unmasked_2["ours"], unmasked_2["reference"]) == (20, 200)
    masked_best = by_figure(rows, "best valid NDCG@10 0.0350", "masked")
    assert (masked_best["ours"], masked_best["reference"]) == (20, 300)
    unmasked_best = by_figure(rows, "best valid NDCG@10 0.0300", "unmasked")
    assert unmasked_best["ours"] is None and unmasked_best["ratio"] is None
    assert "never reached in 2 epochs" in unmasked_best["note"]
    assert "capped 0 epochs after" in unmasked_best["note"]  # 3 epochs: no early stop could have fired


def test_no_cap_note_after_recboles_own_early_stop(perf: ModuleType) -> None:
    flat = [epoch(1, 100, 0.05, 0.06)] + [epoch(n, 100 * n, 0.04, 0.05) for n in range(2, 12)]
    rows = perf.sasrec_rows({"recbole": ({}, flat), "ours:ce": ({"history_items_in_top10": 1.5}, OURS)})
    best = by_figure(rows, "best valid NDCG@10 0.0600", "masked")
    assert best["note"] == "never reached in 2 epochs" and best["reference"] == 100
