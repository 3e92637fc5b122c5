"""The pipeline's exception types, rendered by the stages as a single line and a non-zero exit."""

from __future__ import annotations


class PipelineError(Exception):
    """A failure the stages report as ``error: <message>`` (one line) and exit code 2, no traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line


class InputError(PipelineError):
    """Bad user input (data file, params, arguments). The message names the file/line/field."""


class NonFiniteError(PipelineError):
    """Training produced a NaN or infinite loss or gradient. The message names the stage and step."""
