"""What the importers' readers and their run share: a row's frames, the error naming a bad record
or row, and the check of a video or clip id."""

from __future__ import annotations

from schemas.errors import InputFormatError

FRAMES = 10


class ImportRecordError(InputFormatError):
    """A record (TFRecord) or row (packed HDF5) that cannot be imported.

    Attributes
    ----------
    index : int
        Position of the record or row in its file, counting from 0.
    """

    def __init__(self, path: str, index: int, reason: str, unit: str = "record") -> None:
        super().__init__(path, f"{unit} {index} (counting from 0): {reason}")
        self.index = index


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a video or clip id (empty, spaces, control characters), or None."""
    if not text or not text.isprintable() or " " in text:  # isprintable: no \t, \n
        return f"{text!r} is empty or has spaces or control characters"
    return None
