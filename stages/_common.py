"""What every stage shares: scoped params loading and the one-line-error exit convention."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from llmd4rec_core.errors import PipelineError
from llmd4rec_core.params import PARAMS_FILE, ParamsView, load_params

P = ParamSpec("P")
R = TypeVar("R")


def stage_params(declared: Iterable[str], path: str = PARAMS_FILE) -> ParamsView:
    """Validate the whole params file, then expose only the keys this stage declared in dvc.yaml."""
    return ParamsView(load_params(path), set(declared))


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`PipelineError` (bad input, a non-finite loss) into ``error: <message>`` on stderr
    and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
