"""Class maps: the ordered list of classes that the ``target`` columns of a dataset refer to.

The on-disk form is AudioSet's ``class_labels_indices.csv`` (``index,mid,display_name``), which
every dataset also stores as ``classes.csv``. A class map's identity is the sha256 of that
canonical CSV text, recorded in manifests and shards so data made with different maps is never
mixed silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from schemas.errors import InputFormatError
from schemas.textio import read_text

NAMES_SEP = "; "
"""Between class names in a line or cell: AudioSet's names hold commas ("Canidae, dogs, wolves")."""


@dataclass(frozen=True)
class ClassInfo:
    """One class: its position in the target vector, machine id and display name."""

    index: int
    mid: str
    display_name: str


class ClassMap:
    """An ordered, immutable list of classes with look-ups by mid and display name.

    Parameters
    ----------
    classes : sequence of ClassInfo
        Classes in index order; indices must be 0..C-1 and mids and display names unique.
    """

    def __init__(self, classes: Sequence[ClassInfo]) -> None:
        self.classes: tuple[ClassInfo, ...] = tuple(classes)
        for pos, info in enumerate(self.classes):
            if info.index != pos:
                raise ValueError(f"class {info.mid!r} has index {info.index}, expected {pos}")
        self._by_mid = {c.mid: c for c in self.classes}
        if len(self._by_mid) != len(self.classes):
            raise ValueError("duplicate mids in class map")
        self._by_name = {c.display_name.casefold(): c for c in self.classes}

    @classmethod
    def from_names(cls, names: Iterable[str]) -> ClassMap:
        """Build a class map from plain names, used as both mid and display name."""
        return cls([ClassInfo(i, n, n) for i, n in enumerate(names)])

    @classmethod
    def from_csv_text(cls, text: str, path: str = "<classes>") -> ClassMap:
        """Parse ``index,mid,display_name`` CSV text (a header line is required)."""
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["index", "mid", "display_name"]:
            raise InputFormatError(path, "expected header 'index,mid,display_name'", line=1)
        classes = []
        for row in reader:
            line = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise InputFormatError(path, f"expected 3 fields, found {len(row)}", line=line)
            try:
                index = int(row[0])
            except ValueError as exc:
                raise InputFormatError(path, f"index {row[0]!r} is not an integer", line) from exc
            if index != len(classes):
                raise InputFormatError(path, f"index {index} out of order", line=line)
            mid, name = row[1].strip(), row[2].strip()
            if not mid or not name:
                raise InputFormatError(path, "empty mid or display name", line=line)
            classes.append(ClassInfo(index, mid, name))
        if not classes:
            raise InputFormatError(path, "no classes")
        try:
            return cls(classes)
        except ValueError as exc:
            raise InputFormatError(path, str(exc)) from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str], storage_options: dict | None = None) -> ClassMap:
        """Read a class map CSV from a local path or fsspec URL."""
        return cls.from_csv_text(read_text(path, storage_options), os.fspath(path))

    def to_csv_text(self) -> str:
        """Return the canonical CSV text (the form hashed by :attr:`sha256`)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["index", "mid", "display_name"])
        for c in self.classes:
            writer.writerow([c.index, c.mid, c.display_name])
        return out.getvalue()

    @cached_property
    def sha256(self) -> str:
        """Digest of the canonical CSV text: the class map's identity."""
        return hashlib.sha256(self.to_csv_text().encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    def __getitem__(self, index: int) -> ClassInfo:
        return self.classes[index]

    def by_mid(self, mid: str) -> ClassInfo | None:
        """Return the class with machine id ``mid``, or None."""
        return self._by_mid.get(mid)

    def resolve(self, label: str) -> ClassInfo | None:
        """Look a label up by mid, then by display name (case-insensitive)."""
        label = label.strip()
        return self._by_mid.get(label) or self._by_name.get(label.casefold())

    @property
    def mids(self) -> list[str]:
        """Mids in index order."""
        return [c.mid for c in self.classes]

    @property
    def display_names(self) -> list[str]:
        """Display names in index order."""
        return [c.display_name for c in self.classes]

    def split_labels(self, text: str) -> tuple[list[ClassInfo], list[str]]:
        """Split a label field into known classes and unknown labels.

        Labels may be separated by ``;`` or ``,``. Display names may themselves contain commas
        ("Male speech, man speaking"), so comma-separated tokens are matched greedily: the
        longest run of consecutive tokens that names a class wins.

        Returns
        -------
        known : list of ClassInfo
            Resolved classes, in order of appearance, without duplicates.
        unknown : list of str
            Labels that match no class.
        """
        known: list[ClassInfo] = []
        unknown: list[str] = []
        for part in text.split(";"):
            tokens = [t.strip() for t in part.split(",")]
            i = 0
            while i < len(tokens):
                if not tokens[i]:
                    i += 1
                    continue
                for j in range(len(tokens), i, -1):
                    info = self.resolve(", ".join(tokens[i:j]))
                    if info is not None:
                        if info not in known:
                            known.append(info)
                        i = j
                        break
                else:
                    unknown.append(tokens[i])
                    i += 1
        return known, unknown
