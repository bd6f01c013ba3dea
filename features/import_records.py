"""What the importers' readers, checks and run share: a row's frames, the error naming a bad
record or row, the check of a video or clip id, and joining blocks of rows."""

from __future__ import annotations

import numpy as np

from schemas.embeddings import EmbeddingRows
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


def concat_rows(parts: list[EmbeddingRows]) -> EmbeddingRows:
    """``parts`` as one block of rows, in order (the one part itself when there is one)."""
    if len(parts) == 1:
        return parts[0]
    return EmbeddingRows(
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        video_ids=[v for p in parts for v in p.video_ids],
        clip_ids=[c for p in parts for c in p.clip_ids],
        num_frames=np.concatenate([p.num_frames for p in parts]),
    )
