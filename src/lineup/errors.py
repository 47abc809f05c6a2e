"""User-facing errors: each names the problem and the fix, and maps to a command-line exit code."""

from __future__ import annotations


class LineupError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    exit_code = 1


class SpecError(LineupError):
    """A study file or option that does not validate.

    Args:
        message: what is wrong and how to fix it.
        file: the study file, when there is one.
        key: the dotted key inside the file, e.g. ``models[2].options.dropout``.
    """

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.detail = message
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class UnknownNameError(SpecError):
    """A model, dataset, optimizer or other registered name that does not exist."""


class DataError(LineupError):
    """A data file that is missing, truncated or fails its checksum."""

    exit_code = 3
