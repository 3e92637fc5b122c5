"""dvc.yaml <-> params.yaml <-> stage modules: every stage lists exactly the params it reads."""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from llmd4rec_core.params import load_params
from stages import (
    distill_crm,
    evaluate,
    export_logits,
    finetune_llm,
    kcore,
    loop_init,
    select_instances,
    train_crm,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ResolvedStage:
    cmd: str
    params: set[str]  # params.yaml keys listed under params:
    deps: list[str]  # file and directory deps


@functools.cache
def expanded_stages() -> dict[str, ResolvedStage]:
    """dvc.yaml as DVC itself resolves it: ``foreach`` expanded (``stage@key``), ``${...}`` substituted."""
    out: dict[str, ResolvedStage] = {}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            params = {k for d in stage.deps if isinstance(d, ParamsDependency) for k in d.params}
            deps = [d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)]
            out[stage.addressing] = ResolvedStage(cmd=stage.cmd, params=params, deps=deps)
    return out


def option(cmd: str, flag: str) -> str | None:
    match = re.search(rf"{flag} (\S+)", cmd)
    return match.group(1) if match else None


def declared(stage_name: str) -> set[str]:
    base, _, item = stage_name.partition("@")
    cmd = expanded_stages()[stage_name].cmd
    if base == "kcore":
        return set(kcore.PARAMS)
    if base == "train_crm":
        return set(train_crm.declared_params(item))
    if base.startswith("evaluate"):
        return set(evaluate.PARAMS)
    if base == "loop_init":
        return set(loop_init.PARAMS)
    if base.startswith("finetune"):
        return set(finetune_llm.declared_params(option(cmd, "--round")))
    if base == "select_instances":
        return set(select_instances.PARAMS)
    if base.startswith("export"):
        return set(export_logits.PARAMS)
    if base == "distill_crm":
        return set(distill_crm.declared_params(load_params(ROOT / "params.yaml").llm.crm))
    raise AssertionError(f"dvc.yaml stage {stage_name!r} has no declaration in stages/")


@pytest.mark.parametrize("stage_name", sorted(expanded_stages()))
def test_stage_params_match_declaration(stage_name: str) -> None:
    assert expanded_stages()[stage_name].params == declared(stage_name)


def test_declared_params_exist_in_params_yaml() -> None:
    params = load_params(ROOT / "params.yaml").model_dump()
    for stage_name in expanded_stages():
        for key in declared(stage_name):
            node: Any = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{stage_name}: {key} not in params.yaml"
                node = node[part]


# T_max is realised by dvc.yaml itself: the stages are unrolled over loop.rounds, which the params
# schema validates to be exactly round1..round<T_max>. No stage reads it.
UNROLLING_ONLY = {"T_max"}


def test_every_top_level_param_is_read_by_some_stage() -> None:
    read = {key.split(".")[0] for name in expanded_stages() for key in declared(name)}
    assert set(load_params(ROOT / "params.yaml").model_dump()) - UNROLLING_ONLY <= read


def test_rounds_unroll_t_max() -> None:
    params = load_params(ROOT / "params.yaml")
    rounds = [name for name in expanded_stages() if name.startswith("distill_crm@")]
    assert rounds == [f"distill_crm@round{t}" for t in range(1, params.T_max + 1)]


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
    module = re.search(r"python -m ([\w.]+)", stage.cmd)
    assert module, f"{stage_name}: cmd is not `python -m <module>`"
    deps = [ROOT / d for d in stage.deps]
    for name in sorted(local_imports(module.group(1))):
        path = module_file(name)
        assert path is not None
        if path.name == "__init__.py" and path.stat().st_size < 200:
            continue  # a package docstring only
        if str(path.relative_to(ROOT)) in RESULT_NEUTRAL:
            continue
        covered = any(path == d or d in path.parents for d in deps)
        assert covered, f"{stage_name}: deps miss {path.relative_to(ROOT)} (imported as {name})"


@pytest.mark.parametrize("stage_name", sorted(expanded_stages()))
def test_stage_code_deps_are_all_imported(stage_name: str) -> None:
    """The converse: a code dep the stage never imports would rerun it for nothing."""
    stage = expanded_stages()[stage_name]
    module = re.search(r"python -m ([\w.]+)", stage.cmd)
    assert module
    imported = {module_file(name) for name in local_imports(module.group(1))} - {None}
    for dep in stage.deps:
        path = ROOT / dep
        if dep.split("/")[0] not in {"llmd4rec_core", "stages"}:
            continue  # data and model artifacts
        used = any(f == path or path in f.parents for f in imported)  # type: ignore[union-attr]
        assert used, f"{stage_name}: dep {dep} is not imported by {module.group(1)}"
