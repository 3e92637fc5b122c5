"""One exception type for bad input, rendered by the stages as a single line and a non-zero exit."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input (data file, params, arguments). The message is one line naming file/line/field."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line
