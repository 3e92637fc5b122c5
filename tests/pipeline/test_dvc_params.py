"""dvc.yaml <-> params.yaml <-> stage modules: every stage lists exactly the params it reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from llmd4rec_core.params import load_params
from stages import evaluate, export_logits, finetune_llm, kcore, train_crm

ROOT = Path(__file__).resolve().parents[2]


def substitute(node: Any, item: str) -> Any:
    """Replace ``${item}`` in every string of a nested dvc.yaml node (keys included)."""
    if isinstance(node, str):
        return node.replace("${item}", item)
    if isinstance(node, list):
        return [substitute(x, item) for x in node]
    if isinstance(node, dict):
        return {substitute(k, item): substitute(v, item) for k, v in node.items()}
    return node


def expanded_stages() -> dict[str, dict[str, Any]]:
    """dvc.yaml stages with ``foreach`` expanded the way DVC names them (``stage@item``)."""
    spec = YAML(typ="safe", pure=True).load((ROOT / "dvc.yaml").read_text())["stages"]
    out: dict[str, dict[str, Any]] = {}
    for name, stage in spec.items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        for item in stage["foreach"]:
            out[f"{name}@{item}"] = substitute(stage["do"], item)
    return out


def declared(stage_name: str) -> set[str]:
    base, _, item = stage_name.partition("@")
    if base == "kcore":
        return set(kcore.PARAMS)
    if base == "train_crm":
        return set(train_crm.declared_params(item))
    if base == "evaluate":
        return set(evaluate.PARAMS)
    if base == "finetune_llm":
        return set(finetune_llm.PARAMS)
    if base == "export_logits":
        return set(export_logits.PARAMS)
    raise AssertionError(f"dvc.yaml stage {stage_name!r} has no declaration in stages/")


@pytest.mark.parametrize("stage_name", sorted(expanded_stages()))
def test_stage_params_match_declaration(stage_name: str) -> None:
    listed = set(expanded_stages()[stage_name].get("params", []))
    assert listed == declared(stage_name)


def test_declared_params_exist_in_params_yaml() -> None:
    params = load_params(ROOT / "params.yaml").model_dump()
    for stage_name in expanded_stages():
        for key in declared(stage_name):
            node: Any = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{stage_name}: {key} not in params.yaml"
                node = node[part]


def test_every_top_level_param_is_read_by_some_stage() -> None:
    read = {key.split(".")[0] for name in expanded_stages() for key in declared(name)}
    assert set(load_params(ROOT / "params.yaml").model_dump()) <= read


def test_every_params_key_is_commented() -> None:
    for lineno, line in enumerate((ROOT / "params.yaml").read_text().splitlines(), 1):
        if re.match(r"^\s*[A-Za-z_][\w-]*\s*:", line):
            assert "#" in line, f"params.yaml:{lineno}: key without a comment: {line.strip()}"


def local_imports(module: str) -> set[str]:
    """Project modules (llmd4rec_core.*, stages.*) that ``module`` imports, transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo += [f"{node.module}.{alias.name}" for alias in node.names]  # submodule imports
    return seen


def module_file(name: str) -> Path | None:
    """The source file of a project module, or None for third-party modules and plain attributes."""
    if name.split(".")[0] not in {"llmd4rec_core", "stages"}:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# Plumbing that cannot change a stage's outputs: error types, atomic file moves, the params schema (every
# value is required, so the schema holds no values of its own) and the stage error/params helper.
RESULT_NEUTRAL = {
    "llmd4rec_core/errors.py",
    "llmd4rec_core/atomic.py",
    "llmd4rec_core/params.py",
    "stages/_common.py",
}


@pytest.mark.parametrize("stage_name", sorted(expanded_stages()))
def test_stage_code_deps_cover_every_imported_module(stage_name: str) -> None:
    """Changing any code a stage runs must make DVC rerun that stage."""
    stage = expanded_stages()[stage_name]
    module = re.search(r"python -m ([\w.]+)", stage["cmd"])
    assert module, f"{stage_name}: cmd is not `python -m <module>`"
    deps = [ROOT / d for d in stage["deps"]]
    for name in sorted(local_imports(module.group(1))):
        path = module_file(name)
        assert path is not None
        if path.name == "__init__.py" and path.stat().st_size < 200:
            continue  # a package docstring only
        if str(path.relative_to(ROOT)) in RESULT_NEUTRAL:
            continue
        covered = any(path == d or d in path.parents for d in deps)
        assert covered, f"{stage_name}: deps miss {path.relative_to(ROOT)} (imported as {name})"
