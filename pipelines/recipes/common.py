"""What every dataset recipe shares: results, CSV reading, class maps, splits and the outputs.

A recipe turns a dataset's own published layout into the two inputs ``audiomill ingest`` takes:
a class map (``classes.csv``, ``index,mid,display_name``) and a segment list (a custom manifest
CSV, or AudioSet's own segment CSVs). Beside them it writes ``recipe.json`` (what was prepared,
from what, with which parameters, and the ingest command(s) to run next) and, when rows were left
out, ``skipped.csv`` (file, line, reason, detail). Outputs are written atomically and hold no
timestamps, so preparing the same input twice gives byte-identical files. An output that would
replace one of the recipe's inputs (the same file, also through a link) is refused before
anything is written.

Problems with a whole file (missing, no header, missing columns) raise
:class:`~schemas.errors.InputFormatError` naming the file and line. Problems with one row
(a malformed line, an unknown label, an audio file that is not there, a duplicate id) never
stop the recipe: the row becomes a :class:`Skipped` entry with the file, line and reason, so one
bad row in 30,000 costs that row only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pipelines.sources import AUDIO_EXTENSIONS
from pipelines.storage import DatasetStore
from schemas.classmap import ClassInfo, ClassMap
from schemas.errors import InputFormatError
from schemas.segments import CLIP_ID_PATTERN, sanitize_clip_id
from schemas.textio import read_text

CLASSES_FILE = "classes.csv"
MANIFEST_FILE = "manifest.csv"
RECIPE_FILE = "recipe.json"
SKIPPED_FILE = "skipped.csv"
MANIFEST_COLUMNS = ("path", "start_seconds", "end_seconds", "labels", "split", "clip_id")
RECIPE_SCHEMA_VERSION = 1

# Reasons a row is skipped (the keys of RecipeResult.skipped_by_reason).
MALFORMED = "malformed line"
BAD_VALUE = "bad value"
UNKNOWN_LABEL = "unknown label"
MISSING_AUDIO = "missing audio file"
DUPLICATE = "duplicate clip id"
OUTSIDE_ROOT = "path outside the root"
UNLISTED = "not listed in the labels CSV"

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Skipped:
    """One input row (or file) a recipe left out, and why.

    Attributes
    ----------
    path : str
        The file the row came from (or the audio file itself for rows found on disk).
    line : int or None
        1-based line number in ``path``; None when the entry is not a line of a file.
    reason : str
        A short reason shared by all rows left out for the same cause (``"missing audio file"``).
    detail : str
        What exactly was wrong with this row.
    """

    path: str
    line: int | None
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class ManifestRow:
    """One whole-file clip of a custom manifest.

    Attributes
    ----------
    path : str
        POSIX path of the audio file relative to the audio root.
    labels : tuple of str
        Mids of the clip's classes (may be empty: an unlabelled clip).
    split : str
        Dataset split.
    clip_id : str
        Unique clip id.
    origin : str
        The file the row came from, for messages.
    line : int or None
        Line of ``origin``, for messages.
    """

    path: str
    labels: tuple[str, ...]
    split: str
    clip_id: str
    origin: str = ""
    line: int | None = None


@dataclass
class RecipeResult:
    """What a ``prepare_x`` recipe wrote and found.

    Attributes
    ----------
    recipe : str
        The recipe's name (``"urbansound8k"``).
    out_dir : Path
        Where the files were written.
    files : dict of str to Path
        Every file written, by role: ``classes``, ``recipe``, ``manifest`` (or ``segments:<split>``
        for AudioSet) and ``skipped`` when rows were left out.
    class_map : ClassMap
        The classes, in target order.
    clips_per_split : dict of str to int
        Clips in the segment list(s), per split.
    skipped : list of Skipped
        Rows left out, with reasons.
    audio_root : Path or None
        The folder manifest paths are relative to (None for AudioSet's YouTube ids).
    ingest_args : list of list of str
        Arguments of each ``audiomill ingest`` command to run next, without ``--out``.
    notes : list of str
        Facts worth a look that did not cost any row (a header count that does not match).
    """

    recipe: str
    out_dir: Path
    files: dict[str, Path]
    class_map: ClassMap
    clips_per_split: dict[str, int]
    skipped: list[Skipped] = field(default_factory=list)
    audio_root: Path | None = None
    ingest_args: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def num_clips(self) -> int:
        """Clips over all splits."""
        return sum(self.clips_per_split.values())

    def skipped_by_reason(self) -> dict[str, int]:
        """Number of skipped rows per reason, most frequent first."""
        return dict(Counter(s.reason for s in self.skipped).most_common())

    def ingest_commands(self, dataset: str | os.PathLike[str]) -> list[list[str]]:
        """The full ``audiomill ingest ... --out DATASET`` command lines to run next.

        A local ``dataset`` is made absolute, as every other path of the commands is, so a
        command pasted in another folder writes where it was meant to.
        """
        target = os.fspath(dataset)
        target = target if "://" in target else os.path.abspath(target)
        return [["audiomill", "ingest", *a, "--out", target] for a in self.ingest_args]


def check_split_name(name: str) -> str:
    """Return ``name`` if it can be a split (a folder of the dataset), else raise ValueError."""
    if not _SPLIT_NAME.match(name):
        raise ValueError(
            f"split name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '_', '-' or '.' (64 characters at most)"
        )
    return name


def check_fraction(value: float, name: str = "eval_fraction") -> float:
    """Return ``value`` if it is in [0, 1), else raise ValueError."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), not {value}")
    return value


def require_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a Path if it is a directory, else raise InputFormatError with ``what``."""
    p = Path(path)
    if not p.is_dir():
        raise InputFormatError(os.fspath(path), f"no such directory ({what})")
    return p


def read_csv_rows(
    path: str | os.PathLike[str], required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]] | Skipped]:
    """Yield ``(line, row)`` for each data row of a headed CSV, or a Skipped for a bad line.

    Blank lines are passed over, fields and column names are stripped. A row with more or fewer
    fields than the header is a :class:`Skipped` (``malformed line``).

    Raises
    ------
    InputFormatError
        If the file is missing, empty, not UTF-8, its header lacks a ``required`` column, or
        the CSV reader gives up on a line (a field over the csv module's size limit).
    """
    name = os.fspath(path)
    reader = csv.reader(io.StringIO(read_text(name)), skipinitialspace=True)
    header = next(reader, None)
    if header is None:
        raise InputFormatError(name, "empty file, expected a header line")
    columns = [h.strip() for h in header]
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputFormatError(
            name, f"header lacks column(s) {', '.join(missing)}; found {', '.join(columns)}", 1
        )
    try:
        for fields in reader:
            if not fields or not "".join(fields).strip():
                continue
            if len(fields) != len(columns):
                detail = f"{len(fields)} fields, header has {len(columns)}"
                yield Skipped(name, reader.line_num, MALFORMED, detail)
                continue
            yield reader.line_num, {c: v.strip() for c, v in zip(columns, fields, strict=True)}
    except csv.Error as exc:
        raise InputFormatError(name, f"unreadable CSV ({exc})", reader.line_num) from exc


def rows_from_csv(
    path: str | os.PathLike[str],
    required: Sequence[str],
    make_row: Callable[[dict[str, str], str, int], ManifestRow | Skipped],
) -> tuple[list[ManifestRow], list[Skipped]]:
    """Read a headed CSV with :func:`read_csv_rows` and turn each row into a manifest row.

    Parameters
    ----------
    path : path
        The CSV.
    required : sequence of str
        Columns the header must have.
    make_row : callable
        ``make_row(row, path, line)`` returns a :class:`ManifestRow` or a :class:`Skipped`.

    Returns
    -------
    rows : list of ManifestRow
        In file order.
    skipped : list of Skipped
        Malformed lines and the rows ``make_row`` refused.
    """
    rows: list[ManifestRow] = []
    skipped: list[Skipped] = []
    for item in read_csv_rows(path, required):
        parsed = item if isinstance(item, Skipped) else make_row(item[1], os.fspath(path), item[0])
        if isinstance(parsed, Skipped):
            skipped.append(parsed)
        else:
            rows.append(parsed)
    return rows, skipped


def split_label_field(text: str) -> list[str]:
    """Split a label field on ``;`` when it has one, else on ``,``; drop empty names."""
    sep = ";" if ";" in text else ","
    return [t.strip() for t in text.split(sep) if t.strip()]


def slugify(name: str) -> str:
    """A mid made of a display name: runs of characters outside ``[A-Za-z0-9_.-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name.strip()).strip("_.") or "class"


def class_map_from_names(names: Iterable[str]) -> ClassMap:
    """A class map whose display names are ``names`` and whose mids are their unique slugs.

    A name that is already a slug is its own mid, so labels written in manifests by mid never
    contain the ``;`` or ``,`` that separate labels.
    """
    classes: list[ClassInfo] = []
    used: set[str] = set()
    for name in names:
        base = mid = slugify(name)
        n = 2
        while mid in used:
            mid, n = f"{base}_{n}", n + 1
        used.add(mid)
        classes.append(ClassInfo(len(classes), mid, name))
    return ClassMap(classes)


def native_clip_id(file_name: str) -> str:
    """A clip id from a dataset's own file name: its stem when that is a safe id.

    Otherwise the sanitized name (see :func:`schemas.segments.sanitize_clip_id`).
    """
    stem = PurePosixPath(file_name).stem
    return stem if CLIP_ID_PATTERN.match(stem) else sanitize_clip_id(file_name)


def plain_file_name(name: str) -> bool:
    """Whether ``name`` is a bare file name (no folders, not ``.``/``..``, not hidden)."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def named_file_row(
    row: dict[str, str],
    column: str,
    folder: str,
    labels: Sequence[str],
    split: str,
    origin: str,
    line: int | None,
) -> ManifestRow | Skipped:
    """The whole-file row of the file that ``row[column]`` names inside ``folder``.

    Its clip id is the dataset's own (:func:`native_clip_id`); a name that is not a bare file
    name (``../x``, ``a/b.wav``) is skipped as a bad value, never joined to a path.
    """
    name = row[column]
    if not plain_file_name(name):
        return Skipped(origin, line, BAD_VALUE, f"{column} {name!r} is not a file name")
    return ManifestRow(f"{folder}/{name}", tuple(labels), split, native_clip_id(name), origin, line)


def hash_fraction(key: str, seed: int = 0) -> float:
    """A deterministic number in [0, 1) made from ``key`` and ``seed`` (sha256, not ``hash()``).

    Used for splits that must not change between runs, machines or Python versions.
    """
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def stratified_holdout(
    items: Iterable[tuple[str, str]], fraction: float, seed: int = 0
) -> set[str]:
    """Pick ``round(fraction * n)`` keys of each label for a held-out split, deterministically.

    Parameters
    ----------
    items : iterable of (key, label)
        Keys must be unique.
    fraction : float
        In [0, 1).
    seed : int
        Changes the choice.

    Returns
    -------
    set of str
        The held-out keys: within each label, those with the smallest :func:`hash_fraction`.
    """
    check_fraction(fraction)
    by_label: dict[str, list[str]] = {}
    for key, label in items:
        by_label.setdefault(label, []).append(key)
    held: set[str] = set()
    for keys in by_label.values():
        keys.sort(key=lambda k: (hash_fraction(k, seed), k))
        held.update(keys[: round(fraction * len(keys))])
    return held


def find_audio_files(root: Path) -> list[str]:
    """POSIX paths, relative to ``root``, of every audio file below it, sorted.

    Hidden files and folders (``.git``, macOS ``._x.wav`` resource forks) are passed over;
    links to folders are not followed.
    """
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(root)
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                found.append((rel / name).as_posix())
    return sorted(found)


def screen_rows(
    rows: Iterable[ManifestRow], audio_root: Path
) -> tuple[list[ManifestRow], list[Skipped]]:
    """Keep rows whose audio file exists and whose clip id is new; skip the others with reasons."""
    kept: list[ManifestRow] = []
    skipped: list[Skipped] = []
    first: dict[str, ManifestRow] = {}
    for row in rows:
        if row.clip_id in first:
            prev = first[row.clip_id]
            where = f"line {prev.line}" if prev.line is not None else prev.path
            detail = f"{row.clip_id!r} (first on {where})"
            skipped.append(Skipped(row.origin, row.line, DUPLICATE, detail))
        elif not (audio_root / row.path).is_file():
            skipped.append(Skipped(row.origin, row.line, MISSING_AUDIO, str(audio_root / row.path)))
        else:
            first[row.clip_id] = row
            kept.append(row)
    return kept, skipped


def manifest_text(rows: Iterable[ManifestRow]) -> str:
    """A custom manifest CSV of whole-file clips (labels by mid, ``;``-separated)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for r in rows:
        writer.writerow([r.path, "", "", ";".join(r.labels), r.split, r.clip_id])
    return buf.getvalue()


def _skipped_text(skipped: Iterable[Skipped]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "line", "reason", "detail"])
    for s in skipped:
        writer.writerow([s.path, "" if s.line is None else s.line, s.reason, s.detail])
    return buf.getvalue()


def _local_file(path: str | os.PathLike[str]) -> str | None:
    """``path`` as a local file path (``file://`` URLs too), or None for a remote URL."""
    text = os.fspath(path)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    return parts.path if parts.scheme == "file" else None


def refuse_overwriting_inputs(
    recipe: str,
    out_dir: Path,
    names: Iterable[str],
    inputs: Iterable[str | os.PathLike[str]],
) -> None:
    """Raise ValueError if a file about to be written in ``out_dir`` is one of the ``inputs``.

    The same file under another name (a symbolic or hard link, a linked folder) counts, so the
    prepared copy never replaces the user's original.

    Raises
    ------
    ValueError
        Naming the output file and the input it is, and suggesting another ``--out``.
    """
    local = [p for p in map(_local_file, inputs) if p is not None and os.path.exists(p)]
    for name in names:
        target = out_dir / name
        if not target.exists():
            continue
        for source in local:
            if os.path.samefile(target, source):
                what = (
                    "one of its inputs"
                    if os.path.abspath(source) == os.path.abspath(target)
                    else f"the input {source} by another name (a link)"
                )
                raise ValueError(
                    f"prepare {recipe}: {target} is {what}: writing the prepared {name} there "
                    f"would replace it; give another --out, e.g. --out {out_dir / 'prepared'}"
                )


def write_outputs(
    result: RecipeResult,
    segment_texts: dict[str, str],
    params: dict[str, object],
    inputs: Sequence[str | os.PathLike[str]],
) -> RecipeResult:
    """Write the class map, segment list(s), ``skipped.csv`` and ``recipe.json`` of ``result``.

    ``result.skipped`` is sorted by file and line first, so reports read in file order.

    Parameters
    ----------
    result : RecipeResult
        Filled in but for ``files``; ``ingest_args`` may name the files about to be written.
    segment_texts : dict of str to str
        File name (in ``out_dir``) to text of each segment list, keyed in ``files`` by role:
        ``manifest`` for :data:`MANIFEST_FILE`, else ``segments:<stem>``.
    params : dict
        The recipe's parameters, recorded in ``recipe.json``.
    inputs : sequence of path or URL
        The files the recipe read: none of them is written over.

    Raises
    ------
    ValueError
        If there are no classes, or an output file is one of ``inputs`` (nothing is written).
    """
    if not len(result.class_map):
        where = f" under {result.audio_root}" if result.audio_root else ""
        left_out = (
            f" ({len(result.skipped)} row(s) left out, the first: {result.skipped[0].reason})"
            if result.skipped
            else ""
        )
        raise ValueError(
            f"{result.recipe}: no labelled clips found{where}{left_out}, so no classes to write"
        )
    result.skipped.sort(key=lambda s: (s.path, s.line or 0))
    store = DatasetStore(result.out_dir)
    texts = {CLASSES_FILE: result.class_map.to_csv_text(), **segment_texts}
    if result.skipped:
        texts[SKIPPED_FILE] = _skipped_text(result.skipped)
    refuse_overwriting_inputs(result.recipe, result.out_dir, [*texts, RECIPE_FILE], inputs)
    for name, text in texts.items():
        store.write_bytes_atomic(name, text.encode("utf-8"))
        role = {CLASSES_FILE: "classes", MANIFEST_FILE: "manifest", SKIPPED_FILE: "skipped"}.get(
            name, f"segments:{name.removesuffix('.csv')}"
        )
        result.files[role] = result.out_dir / name
    record = {
        "schema_version": RECIPE_SCHEMA_VERSION,
        "recipe": result.recipe,
        "params": params,
        "audio_root": None if result.audio_root is None else str(result.audio_root),
        "files": {role: path.name for role, path in result.files.items()},
        "num_classes": len(result.class_map),
        "class_map_sha256": result.class_map.sha256,
        "clips_per_split": result.clips_per_split,
        "skipped_by_reason": result.skipped_by_reason(),
        "ingest_args": result.ingest_args,
        "notes": result.notes,
    }
    store.write_json_atomic(RECIPE_FILE, record)
    result.files["recipe"] = result.out_dir / RECIPE_FILE
    return result


def write_manifest_recipe(
    recipe: str,
    out_dir: str | os.PathLike[str],
    class_map: ClassMap,
    rows: Sequence[ManifestRow],
    skipped: list[Skipped],
    *,
    audio_root: Path,
    inputs: Sequence[str | os.PathLike[str]],
    params: dict[str, object] | None = None,
    ingest_options: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> RecipeResult:
    """Write a manifest recipe's outputs: ``classes.csv``, ``manifest.csv`` and the rest.

    ``rows`` must already be screened (see :func:`screen_rows`). The ingest command reads the
    manifest with ``--source local --audio-root`` set to ``audio_root``, plus ``ingest_options``
    (the clip length and rate that suit the dataset). ``inputs`` are the files the recipe read,
    which :func:`write_outputs` never writes over.
    """
    out = Path(DatasetStore(out_dir).url())
    counts = Counter(r.split for r in rows)
    result = RecipeResult(
        recipe=recipe,
        out_dir=out,
        files={},
        class_map=class_map,
        clips_per_split={s: counts[s] for s in sorted(counts)},
        skipped=list(skipped),
        audio_root=audio_root.resolve(),
        notes=list(notes),
    )
    result.ingest_args = [
        [
            "--segments", str(out / MANIFEST_FILE),
            "--classes", str(out / CLASSES_FILE),
            "--source", "local",
            "--audio-root", str(result.audio_root),
            *ingest_options,
        ]
    ]  # fmt: skip
    return write_outputs(result, {MANIFEST_FILE: manifest_text(rows)}, params or {}, inputs)
