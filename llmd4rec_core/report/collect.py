"""Gathering evaluated models: from a metrics directory (one run) or ``dvc exp show --json`` (many).

A run's models are keyed like their metrics files: ``sasrec``, ``e4srec``, ``llmd4rec_c/round2``, ...
Runs whose params differ only in ``seed`` form one :class:`Group`, reported as mean +- std.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd4rec_core.errors import InputError
from llmd4rec_core.params import read_yaml

ROUND_MODEL = re.compile(r"^(llmd4rec_[cl])/round(\d+)$")
EXPORT_COST = re.compile(r"^metrics/export_llmd4rec_l_round(\d+)_train\.json$")
SEED_KEYS = ("seed",)


@dataclass(frozen=True)
class Run:
    name: str  # "workspace", an experiment's name, or a revision
    params: dict[str, Any]  # flattened params.yaml ("sasrec.lr": 0.003, ...)
    models: dict[str, dict[str, Any]]  # model key -> its metrics JSON (protocol, valid, test)
    exports: dict[int, dict[str, Any]] = field(default_factory=dict)  # round -> its LLM export's timing JSON

    @property
    def dataset(self) -> str | None:
        for metrics in self.models.values():
            return metrics.get("protocol", {}).get("dataset")
        return None


@dataclass
class Group:
    label: str  # "default" or the params that differ from the first group's
    params: dict[str, Any]
    runs: list[Run] = field(default_factory=list)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= flatten(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: node}


def model_key(metrics_path: str) -> str | None:
    """``metrics/llmd4rec_c/round1.json`` -> ``llmd4rec_c/round1``; None for other metrics files."""
    path = Path(metrics_path)
    if path.suffix != ".json" or path.parts[:1] != ("metrics",):
        return None
    key = "/".join(path.with_suffix("").parts[1:])
    return key if key in {"sasrec", "gru4rec", "e4srec"} or ROUND_MODEL.match(key) else None


def export_round(metrics_path: str) -> int | None:
    """``metrics/export_llmd4rec_l_round2_train.json`` -> 2 (the LLM's export cost); None otherwise."""
    match = EXPORT_COST.match(Path(metrics_path).as_posix())
    return int(match.group(1)) if match else None


def run_from_dir(metrics_dir: str | Path, params_file: str | Path, name: str = "workspace") -> Run:
    """The models evaluated in a workspace (``metrics/<model>.json`` written by the evaluate stages)."""
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise InputError(f"{metrics_dir}: metrics directory not found")
    models, exports = {}, {}
    for path in sorted(metrics_dir.rglob("*.json")):
        relative = str(Path("metrics") / path.relative_to(metrics_dir))
        key, round_ = model_key(relative), export_round(relative)
        if key is not None:
            models[key] = _read_metrics(path)
        elif round_ is not None:
            exports[round_] = _read_json(path)
    if not models:
        raise InputError(f"{metrics_dir}: no evaluated models (run `dvc repro` first)")
    return Run(name=name, params=flatten(read_yaml(params_file)), models=models, exports=exports)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _read_metrics(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if "test" not in data:
        raise InputError(f"{path}: no 'test' metrics")
    return data


def runs_from_exp_show(path: str | Path, text: str | None = None) -> list[Run]:
    """Every revision and experiment of ``dvc exp show --json`` output that has evaluated models.

    ``text`` replaces the file's content (``path`` then only names it in messages, e.g. ``<stdin>``).
    The workspace is left out when it equals the commit it is based on (it is listed twice otherwise).
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text() if text is None else text)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable `dvc exp show --json` output ({exc})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{path}: expected the JSON list printed by `dvc exp show --json`")
    runs: list[Run] = []
    for entry in entries:
        runs += _exp_run(entry, path)
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                runs += _exp_run(rev, path)
    if len(runs) > 1 and runs[0].name == "workspace" and _same(runs[0], runs[1]):
        runs = runs[1:]
    if not runs:
        raise InputError(f"{path}: no revision with evaluated models")
    return runs


def _same(a: Run, b: Run) -> bool:
    return a.params == b.params and a.models == b.models


def _exp_run(entry: dict[str, Any], path: Path) -> list[Run]:
    data = entry.get("data") or {}
    models, exports = {}, {}
    for file, content in (data.get("metrics") or {}).items():
        key, round_ = model_key(file), export_round(file)
        metrics = content.get("data") if isinstance(content, dict) else None
        if round_ is not None and isinstance(metrics, dict):
            exports[round_] = metrics
        if key is None:
            continue
        if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
            raise InputError(f"{path}: {entry.get('name') or entry.get('rev')}: {file} has no 'test' metrics")
        models[key] = metrics
    if not models:
        return []
    params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
    rev = str(entry.get("rev", "?"))
    name = entry.get("name") or (rev[:7] if re.fullmatch(r"[0-9a-f]{40}", rev) else rev)
    return [Run(name=name, params=flatten(params), models=models, exports=exports)]


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with equal params up to the seed, in first-seen order; labelled by their params diff."""
    groups: list[Group] = []
    for run in runs:
        key = {k: v for k, v in run.params.items() if k not in SEED_KEYS}
        for group in groups:
            if group.params == key:
                group.runs.append(run)
                break
        else:
            groups.append(Group(label="", params=key, runs=[run]))
    if groups:
        base = groups[0].params
        for i, group in enumerate(groups):
            diff = [
                f"{k}={group.params.get(k)}"
                for k in sorted(set(base) | set(group.params))
                if base.get(k) != group.params.get(k) and not k.startswith("loop.rounds")
            ]
            group.label = "default" if i == 0 else (", ".join(diff) or f"same params ({group.runs[0].name})")
    return groups
