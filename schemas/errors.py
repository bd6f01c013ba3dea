"""Errors raised when user input cannot be read, each naming the file, line and reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MalformedLine:
    """One line of an input file that could not be parsed.

    Attributes
    ----------
    path : str
        The file the line came from.
    line : int
        1-based line number in that file.
    text : str
        The raw line (truncated to 200 characters).
    reason : str
        Why the line was rejected.
    """

    path: str
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.text!r}"


class InputFormatError(ValueError):
    """A file that cannot be used at all (missing header, wrong columns, not a class map ...)."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason
