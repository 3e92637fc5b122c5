"""The report: collecting runs from a workspace or `dvc exp show --json`, seed averaging, the paper's
Table 2 beside ours, the ablation deltas and the PNG figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmd4rec_core.errors import InputError
from llmd4rec_core.report.collect import group_runs, model_key, run_from_dir, runs_from_exp_show
from llmd4rec_core.report.paper import paper_metrics
from llmd4rec_core.report.render import curve_points, render

METRICS = ("hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20")


def metrics(ndcg10: float) -> dict[str, Any]:
    test = {m: ndcg10 * (2 if m.startswith("hr") else 1) for m in METRICS}
    return {"protocol": {"dataset": "beauty"}, "valid": test, "test": test}


MODELS = {
    "sasrec": 0.040,
    "gru4rec": 0.030,
    "e4srec": 0.035,
    "llmd4rec_c/round1": 0.041,
    "llmd4rec_c/round2": 0.044,
    "llmd4rec_l/round1": 0.036,
    "llmd4rec_l/round2": 0.038,
}


def exp_entry(name: str, params: dict[str, Any], shift: float) -> dict[str, Any]:
    files = {f"metrics/{k}.json": {"data": metrics(v + shift)} for k, v in MODELS.items()}
    files["metrics/train_sasrec.json"] = {"data": {"train_seconds": 1.0}}  # not an evaluation
    return {
        "rev": "abc1234def",
        "name": name,
        "data": {"params": {"params.yaml": {"data": params}}, "metrics": files},
    }


def test_model_keys() -> None:
    assert model_key("metrics/llmd4rec_c/round2.json") == "llmd4rec_c/round2"
    assert model_key("metrics/sasrec.json") == "sasrec"
    assert model_key("metrics/train_sasrec.json") is None
    assert model_key("metrics/curves/sasrec.tsv") is None


def test_paper_table_2() -> None:
    sasrec = {"hr@5": 0.0260, "hr@10": 0.0504, "hr@20": 0.0855, "ndcg@5": 0.0125, "ndcg@10": 0.0204}
    assert paper_metrics("beauty", "sasrec") == sasrec | {"ndcg@20": 0.0292}
    assert paper_metrics("beauty", "llmd4rec_l")["ndcg@10"] == 0.0463  # type: ignore[index]
    assert paper_metrics("ml-latest-small", "sasrec") is None


def test_workspace_run(tmp_path: Path) -> None:
    for key, value in MODELS.items():
        path = tmp_path / "metrics" / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics(value)))
    (tmp_path / "metrics" / "train_sasrec.json").write_text("{}")
    (tmp_path / "params.yaml").write_text("seed: 0\nT2: 0.2\nloop:\n  rounds: {round1: round0}\n")
    run = run_from_dir(tmp_path / "metrics", tmp_path / "params.yaml")
    assert set(run.models) == set(MODELS) and run.params["loop.rounds.round1"] == "round0"
    assert run.dataset == "beauty"
    md = render(group_runs([run]), tmp_path / "out")
    text = md.read_text()
    assert "| LLMD4Rec_C round 2 | ours | 1 | 0.0880 | 0.0880 |" in text
    assert "| LLMD4Rec_C round 2 | paper | | 0.0453 | 0.0758 |" in text  # Table 2 beside the final round
    assert "| LLMD4Rec_C round 1 | paper |" not in text  # the paper reports the final round only
    assert "| SASRec | paper | | 0.0260 |" in text
    for png in ("rounds.png", "models.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="no evaluated models"):
        run_from_dir(tmp_path / "out", tmp_path / "params.yaml")


def test_experiments_side_by_side(tmp_path: Path) -> None:
    base = {"seed": 0, "T2": 0.2, "sample_weights": True}
    entries = [
        {"rev": "workspace", "name": None, "data": {"params": {}, "metrics": {}}, "experiments": None},
        {
            **exp_entry("main", base, 0.0),
            "experiments": [
                {"revs": [exp_entry("seed-1", {**base, "seed": 1}, 0.002)]},
                {"revs": [exp_entry("seed-2", {**base, "seed": 2}, -0.002)]},
                {"revs": [exp_entry("no-w", {**base, "sample_weights": False}, -0.004)]},
            ],
        },
    ]
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(entries))
    runs = runs_from_exp_show(path)
    assert [r.name for r in runs] == ["main", "seed-1", "seed-2", "no-w"]
    groups = group_runs(runs)
    assert [g.label for g in groups] == ["default", "sample_weights=False"]
    assert [len(g.runs) for g in groups] == [3, 1]
    xs, ys = curve_points(groups[0], "llmd4rec_c", "ndcg@10")
    assert xs == [0, 1, 2] and ys == pytest.approx([0.040, 0.041, 0.044])  # round 0 = SASRec (Figure 4)
    text = render(groups, tmp_path / "out").read_text()
    assert "| LLMD4Rec_C round 2 | ours | 3 | 0.0880 ± 0.0040 |" in text  # mean ± sample std over seeds
    assert "| sample_weights=False | 1 | 0.0400 | -9.1 % |" in text  # 0.040 against 0.044
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="expected the JSON list"):
        runs_from_exp_show(bad)


def test_clean_workspace_is_not_counted_twice(tmp_path: Path) -> None:
    """`dvc exp show` lists the workspace and its commit; when they are equal, one run remains."""
    params = {"seed": 0}
    workspace = {**exp_entry("", params, 0.0), "rev": "workspace", "name": None}
    commit = {**exp_entry("main", params, 0.0), "rev": "f" * 40, "name": None}
    changed = {**exp_entry("", params, 0.001), "rev": "workspace", "name": None}
    for entries, names in (([workspace, commit], ["fffffff"]), ([changed, commit], ["workspace", "fffffff"])):
        assert [r.name for r in runs_from_exp_show("<stdin>", json.dumps(entries))] == names
    bad = [{**commit, "data": {"metrics": {"metrics/sasrec.json": {"data": {"valid": {}}}}}}]
    with pytest.raises(InputError, match=r"<stdin>: f+: metrics/sasrec\.json has no 'test' metrics"):
        runs_from_exp_show("<stdin>", json.dumps(bad))


def test_strategy_table_with_the_llm_cost_of_each_method(tmp_path: Path) -> None:
    """Each distill.method's CRM beside SASRec, with the forward passes and seconds of the exports it read
    (rounds 1..t) and their share of the export pool."""

    def entry(name: str, method: str, shift: float, rows: list[int], seconds: float) -> dict[str, Any]:
        e = exp_entry(name, {"seed": 0, "distill": {"method": method}, "llm": {"crm": "sasrec"}}, shift)
        files = e["data"]["metrics"]
        for t, n in enumerate(rows, 1):
            timing = {"forward_passes": n, "rows": n, "seconds": seconds, "pool": 1000, "selection": "all"}
            files[f"metrics/export_llmd4rec_l_round{t}_train.json"] = {"data": timing}
        if len(rows) == 1:
            for key in ("llmd4rec_c/round2", "llmd4rec_l/round2"):
                files.pop(f"metrics/{key}.json")
        return e

    entries = [
        {
            **entry("main", "llmd4rec", 0.0, [1000, 1000], 30.0),
            "experiments": [
                {"revs": [entry("alk", "alkdrec", 0.001, [50], 2.0)]},
                {"revs": [entry("dllm", "dllm2rec", 0.002, [1000], 30.0)]},
            ],
        }
    ]
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(entries))
    groups = group_runs(runs_from_exp_show(path))
    assert {r for g in groups for run in g.runs for r in run.exports} == {1, 2}
    text = render(groups, tmp_path / "out").read_text()
    assert "| SASRec | default | 1 | 0.0400 | +0.0 % | 0.0800 | 0.0400 | 0 | – | 0 |" in text
    # LLMD4Rec_C round 2 read two full exports: 2,000 passes, 60 s; round 1 one. Deltas: each run's own SASRec
    assert (
        "| LLMD4Rec_C round 2 | default | 1 | 0.0440 | +10.0 % | 0.0880 | 0.0440 | 2,000 | 100.0 % | 60.0 |"
        in text
    )
    assert (
        "| LLMD4Rec_C round 1 | default | 1 | 0.0410 | +2.5 % |" in text
        and "| 1,000 | 100.0 % | 30.0 |" in text
    )
    assert "| ALKDRec(SASRec) round 1 | distill.method=alkdrec | 1 | 0.0420 | +2.4 % |" in text
    assert "| 50 | 5.0 % | 2.0 |" in text
    assert "| DLLM2Rec(SASRec) round 1 | distill.method=dllm2rec | 1 | 0.0430 |" in text
