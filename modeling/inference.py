"""Scores of a trained run for audio files or a dataset's clips, top-k tags and keyword search.

**Audio files** are local paths or URLs, fetched as ingest fetches them
(:func:`pipelines.fetch.fetch_media`: fsspec stores such as ``s3://bucket/key``, http(s) through
yt-dlp) into a temporary folder; they are decoded with :func:`pipelines.audio.decode` (any
format ingest reads), and prepared as ingest prepares a clip (downmixed to mono, resampled with
soxr HQ and quantized to int16 with :func:`pipelines.audio.float_to_int16`), so that a file
scores as its ingested clip does; scoring its float samples instead would not, since the
log-mel front end magnifies the int16 rounding in nearly empty bands. Then, as the run's model
takes it:

- *waveform runs*: at the run's sample rate (``RunConfig.model_kwargs["sample_rate"]``),
  scaled to float as training and ``evaluate`` read stored waveforms
  (:func:`modeling.readers.to_float`);
- *embedding runs*: at the sample rate of the run's dataset (``RunConfig.dataset``; ingest's
  default, with a warning, when it cannot be read), as VGGish embeddings, one 128-byte frame per
  0.96 s, computed by :func:`features.embed_files.embed_file` at that rate (the VGGish front
  end, the Keras VGGish with Google's checkpoint, PCA and 8-bit quantization; ``audiomill
  embed-files`` calls it without a rate, on the file's own samples), so
  a checkpoint and a PCA file are needed: those the run's embeddings were made with, whose
  digests training records (:mod:`modeling.embedding_provenance`). Other files are refused;
  with a run that records none (trained before it did, or on imported embeddings) they are
  used with a warning. The front end (mode and resampler) is the one the ``embed`` run that
  made the run's embeddings recorded in the dataset's manifest, and another ``mode`` is
  refused: a file embedded otherwise scores slightly differently from its ingested clip.
  When that is not known (no such record, or the dataset cannot be read), the ``fast`` mode,
  with a warning.

A file is then cut into windows of the model's clip length (``clip_samples`` samples or
``num_frames`` frames): one window, zero-padded at its end, when the file is no longer than a
clip (zero frames are what embedding shards hold past a clip's end); otherwise windows every
half window (hop = length // 2) from the start, plus one ending at the file's end so no tail
goes unscored. The file's score for each class is the **maximum over its windows**: a sound
heard anywhere in a long file counts, as a clip-level label would. A waveform model without a
fixed clip length scores the whole file at once.

Windows of consecutive files that share a shape (all of them, for a model of fixed clip length)
are stacked into batches of ``batch_size`` across files, and every batch goes through one graph
of the model traced once per call of :func:`predict_files` with the batch size (and a variable
clip length) left open (:func:`window_scorer`): files of any lengths neither retrace the model
nor trip TensorFlow's retracing warning, and a window's scores are those ``model.predict``
gives it.

**Clips of a dataset** are looked up by clip id and scored from their shards as stored, like
the evaluation does (:func:`modeling.scoring.predict_rows`). Here and in search, embedding
shards made with other VGGish weights than the run records are refused
(:func:`modeling.evaluation.open_split`).

**Search** ranks the clips of a split by the best score among the classes whose display names
hold a keyword's words, whole (:func:`match_classes`). The split's scores are cached in
``RUN/scores/<split>-<key>.npz``, where the key is a digest of the dataset's URL, the run's
input and the sha256 of every shard file read (from the manifest), so a second search of the
same data is answered without the model; the cache records the digest of the weights it was made
with and is recomputed when they change.
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import hashlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from modeling.embedding_provenance import DIGESTS, check_weights, describe
from modeling.evaluation import LoadedRun, Progress, SplitScores, load_run, open_split, score_split
from modeling.readers import ShardReader, to_float
from modeling.runs import RunDir, write_atomic
from modeling.scoring import predict_rows
from modeling.train_data import read_row_labels
from pipelines.audio import decode, int16_waveform
from pipelines.dataset_state import load_manifest
from pipelines.fetch import FetchOptions, FetchRequest, fetch_media, is_local
from pipelines.storage import DatasetStore
from schemas.classmap import ClassInfo, ClassMap
from schemas.dataset import DatasetManifest
from schemas.failures import ClipFailure, FailureReason

if TYPE_CHECKING:
    from features.embed import EmbedSettings

SCORES_DIR = "scores"
DEFAULT_MODE = "fast"
"""VGGish front-end mode of audio files when the run's embeddings record none."""
TEXT_SNIFF_BYTES = 4096
"""Bytes of a file that failed to decode read to tell whether it is text, not audio."""
TEXT_CONTROLS = frozenset(b"\t\n\r\f")
SHOWN_LINE_CHARS = 60
"""Characters of a text file's first line that a failure quotes."""
log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Scores of one input: an audio file or a dataset clip.

    Attributes
    ----------
    source : str
        The file path or clip id as given.
    kind : {"file", "clip"}
    scores : np.ndarray [shape=(C,), dtype=float32]
        Max over windows for files.
    windows : int
        Windows scored (1 for clips).
    labels : list of int or None
        True class indices of a dataset clip; None for files.
    split : str or None
        Split a clip was found in.
    """

    source: str
    kind: str
    scores: np.ndarray
    windows: int = 1
    labels: list[int] | None = None
    split: str | None = None


def top_k(scores: np.ndarray, classes: ClassMap, k: int = 5) -> list[tuple[str, str, float]]:
    """The ``k`` highest-scoring classes, best first (ties: lower class index first).

    Parameters
    ----------
    scores : np.ndarray [shape=(C,)]
    classes : ClassMap
        C classes.
    k : int
        At most C are returned.

    Returns
    -------
    list of (display_name, mid, score)
    """
    scores = np.asarray(scores)
    if scores.ndim != 1 or len(scores) != len(classes):
        raise ValueError(f"scores must have shape ({len(classes)},), got {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = np.argsort(-scores, kind="stable")[:k]
    return [(classes[i].display_name, classes[i].mid, float(scores[i])) for i in order]


# --------------------------------------------------------------------------- audio files


def clip_windows(x: np.ndarray, length: int) -> np.ndarray:
    """Cut ``x`` along axis 0 into windows of ``length`` (see the module docstring).

    Parameters
    ----------
    x : np.ndarray [shape=(n, ...)]
    length : int

    Returns
    -------
    np.ndarray [shape=(W, length, ...)]
        ``W = 1`` (zero-padded) when ``n <= length``; else windows starting every
        ``max(1, length // 2)`` and a last one ending at ``n``.
    """
    n = len(x)
    if n <= length:
        pad = [(0, length - n)] + [(0, 0)] * (x.ndim - 1)
        return np.pad(x, pad)[np.newaxis]
    hop = max(1, length // 2)
    starts = list(range(0, n - length + 1, hop))
    if starts[-1] != n - length:
        starts.append(n - length)
    return np.stack([x[s : s + length] for s in starts])


def load_waveform(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """``path`` as ingest stores it at ``sample_rate``, scaled as training reads it.

    Decoded and made the int16 waveform ingest stores (:func:`pipelines.audio.int16_waveform`,
    not cut to a clip's length), then scaled by :func:`modeling.readers.to_float`, as the
    dataset readers scale stored clips.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    schemas.failures.ClipFailure
        If the file is missing, empty or not audio.
    """
    return to_float(int16_waveform(decode(path), sample_rate))


def _waveform_windows(loaded: LoadedRun, path: str) -> np.ndarray:
    kwargs = loaded.config.model_kwargs
    rate = kwargs.get("sample_rate") or loaded.model.get_layer("logmel").sample_rate
    wave = load_waveform(path, int(rate))
    length = kwargs.get("clip_samples")
    return wave[np.newaxis] if length is None else clip_windows(wave, int(length))


def _dataset_manifest(
    loaded: LoadedRun, storage_options: dict | None
) -> tuple[DatasetManifest | None, str]:
    """The manifest of the run's dataset, or None and why it cannot be read."""
    try:
        manifest = load_manifest(DatasetStore(loaded.config.dataset, storage_options))
    except (OSError, ValueError) as exc:
        return None, str(exc)
    return manifest, "" if manifest is not None else "no manifest.json"


def _recorded_frontend(
    loaded: LoadedRun, manifest: DatasetManifest | None, reason: str
) -> tuple[tuple[str, str] | None, str]:
    """The VGGish front end (mode, resampler) the run's embeddings were made with, as the
    ``embed`` run that made them recorded it in the dataset's manifest (a run records only
    the weights); None and why when it is not known."""
    from features.vggish_frontend import frontend_options, frontend_settings

    config = loaded.config
    dataset = config.dataset
    if manifest is None:
        return None, f"its dataset {dataset} cannot be read: {reason}"
    stage = manifest.stages.get(f"embed:{config.embedding_model}") or {}
    provenance = stage.get("provenance") or {}
    frontend = provenance.get("frontend")
    if not frontend:
        return None, f"its dataset {dataset} records no embed run (imported embeddings?)"
    recorded = config.embedding_provenance
    if recorded is not None and any(provenance.get(key) != recorded[key] for key in DIGESTS):
        return None, (
            f"the embeddings of its dataset {dataset} are now made with "
            f"{describe(provenance)}, not the run's {describe(recorded)}"
        )
    settings = frontend_settings(frontend)
    if settings is None:
        return None, f"its dataset {dataset} records {frontend_options(frontend)}, unknown here"
    return settings, ""


def _embed_settings(
    loaded: LoadedRun,
    checkpoint: str | None,
    pca_params: str | None,
    mode: str | None,
    frontend: tuple[tuple[str, str] | None, str],
    warn: Callable[[str], None],
) -> EmbedSettings:
    """The VGGish settings to embed files for ``loaded``: the front end its embeddings were
    made with (``frontend``, from :func:`_recorded_frontend`), once ``mode`` agrees with it,
    and its weights checked out (:func:`modeling.embedding_provenance.check_weights`; hashed
    once, by the embedder)."""
    from features.embed import EmbedSettings, load_embedder
    from features.vggish_frontend import frontend_options, frontend_provenance

    config = loaded.config
    if config.embedding_model != "vggish":
        raise ValueError(
            f"run {loaded.run.path} classifies {config.embedding_model!r} embeddings; only "
            "VGGish embeddings can be computed from audio files"
        )
    if not checkpoint or not pca_params:
        raise ValueError(
            f"run {loaded.run.path} classifies VGGish embeddings: to score audio files pass "
            "--checkpoint vggish_model.ckpt and --pca-params vggish_pca_params.npz (Google's "
            "files, the ones the dataset's embeddings were made with)"
        )
    if not os.path.isfile(pca_params):
        raise FileNotFoundError(f"no PCA parameters at {pca_params} (--pca-params)")
    known, why = frontend
    if known is not None:
        if mode is not None and mode != known[0]:
            raise ValueError(
                f"the embeddings of run {loaded.run.path} were made with "
                f"{frontend_options(frontend_provenance(*known))}, but --mode {mode} was given: "
                "files embedded with another front end score differently from the run's "
                "clips; leave --mode out to embed them as the run's embeddings were"
            )
        mode, resampler = known
    else:
        assumed = "as given" if mode is not None else "the default"
        mode, resampler = mode or DEFAULT_MODE, None
        warn(
            f"cannot tell which VGGish front end the embeddings of run {loaded.run.path} were "
            f"made with ({why}): audio files are embedded with "
            f"{frontend_options(frontend_provenance(mode))} ({assumed}), whose scores differ "
            "slightly from those of clips embedded with another"
        )
    settings = EmbedSettings(str(checkpoint), str(pca_params), mode=mode, resampler=resampler)
    recorded = config.embedding_provenance
    actual = load_embedder(settings).provenance if recorded is not None else {}
    warning = check_weights(recorded, actual, str(loaded.run.path), checkpoint, pca_params)
    if warning:
        warn(warning)
    return settings


def _dataset_sample_rate(
    loaded: LoadedRun, manifest: DatasetManifest | None, reason: str, warn: Callable[[str], None]
) -> int:
    """The sample rate the run's dataset stores clips at, which its embeddings were made from;
    ingest's default, with a warning, when its manifest cannot be read."""
    from features.embed_files import INGEST_SAMPLE_RATE

    if manifest is not None:
        return manifest.sample_rate
    warn(
        f"cannot read the sample rate of run {loaded.run.path}'s dataset {loaded.config.dataset} "
        f"({reason}): audio files are embedded as clips ingested at {INGEST_SAMPLE_RATE} Hz "
        "(ingest's default), whose scores differ slightly from those of clips ingested at "
        "another rate"
    )
    return INGEST_SAMPLE_RATE


def _embedding_windows(
    loaded: LoadedRun, path: str, settings: EmbedSettings, sample_rate: int
) -> np.ndarray:
    from features.embed_files import embed_file

    frames = embed_file(path, settings, sample_rate)
    num_frames = int(loaded.config.model_kwargs.get("num_frames") or loaded.model.input_shape[1])
    return clip_windows(frames.quantized, num_frames)


def window_scorer(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``model`` in inference mode as one graph for batches of any size.

    The graph is traced once, for the model's input shape with the batch size (and a variable
    clip length) left open, and called as a concrete function: batches of other sizes or
    lengths neither retrace it nor count towards TensorFlow's retracing warning.

    Parameters
    ----------
    model : keras.Model
        A model of one input.

    Returns
    -------
    callable
        ``score(x)``: float32 scores (W, C) of windows ``x`` (W, ...) in the model's input
        shape.
    """
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return lambda x: np.asarray(graph(tf.convert_to_tensor(x, tf.float32)), np.float32)


class _WindowBatches:
    """Windows of many files scored ``batch_size`` at a time, max-pooled per file.

    Windows of consecutive files that share a shape are stacked into one batch; a file of
    another shape (a model of variable clip length) first scores the windows before it.
    """

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], batch_size: int) -> None:
        self.score, self.batch_size = score, batch_size
        self.rows: list[np.ndarray] = []
        self.owners: list[int] = []
        self.best: dict[int, np.ndarray] = {}
        self.files = 0

    def add(self, windows: np.ndarray) -> None:
        """Queue the windows (W, ...) of the next file, scoring every full batch."""
        if self.rows and self.rows[0].shape != windows.shape[1:]:
            self._score(len(self.rows))
        self.rows.extend(windows)
        self.owners.extend([self.files] * len(windows))
        self.files += 1
        while len(self.rows) >= self.batch_size:
            self._score(self.batch_size)

    def finish(self) -> list[np.ndarray]:
        """Score what is queued; the max over windows of each file, in the order added."""
        if self.rows:
            self._score(len(self.rows))
        return [self.best[i] for i in range(self.files)]

    def _score(self, n: int) -> None:
        scores = self.score(np.stack(self.rows[:n]))
        for owner, row in zip(self.owners[:n], scores, strict=True):
            best = self.best.get(owner)
            self.best[owner] = row if best is None else np.maximum(best, row)
        del self.rows[:n], self.owners[:n]


@contextlib.contextmanager
def local_audio(source: str, storage_options: dict | None = None) -> Iterator[str]:
    """``source`` as a local file for the duration: a path as it is, a URL fetched into a
    temporary folder as ingest fetches it.

    Raises
    ------
    schemas.failures.ClipFailure
        If the URL cannot be fetched (no such object, access denied, no credentials...).
    """
    if is_local(source):
        yield source
        return
    options = FetchOptions(storage_options=storage_options)
    with tempfile.TemporaryDirectory(prefix="audiomill-predict-") as workdir:
        yield fetch_media(FetchRequest(source, source), workdir, options).path


def refuse_folders(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse local folders among ``paths``: predict takes audio files, not folders.

    Raises
    ------
    ValueError
        Naming the first five folders.
    """
    folders = [os.fspath(p) for p in paths if is_local(os.fspath(p)) and os.path.isdir(p)]
    if folders:
        what = "a folder, not an audio file" if len(folders) == 1 else "folders, not audio files"
        raise ValueError(
            f"{_shown(folders)}: {what}: predict takes audio files (paths or URLs), or with "
            "--dataset clip ids of a dataset"
        )


def _text_start(path: str) -> str | None:
    """The first line of ``path`` that is not blank ("" if none), cut to
    :data:`SHOWN_LINE_CHARS`, when the file is text: UTF-8 without control bytes other than
    whitespace; None when it is not, is empty or cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(TEXT_SNIFF_BYTES)
    except OSError:
        return None
    if not head or any(byte < 0x20 and byte not in TEXT_CONTROLS for byte in head):
        return None
    try:  # incremental: a character cut at the end of ``head`` is no error
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return None
    line = next((line for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= SHOWN_LINE_CHARS else f"{line[:SHOWN_LINE_CHARS]}..."


def _as_not_audio(failure: ClipFailure, local: str) -> ClipFailure:
    """``failure`` to decode ``local``, saying it is not audio when the file is text."""
    start = _text_start(local) if failure.reason == FailureReason.DECODE_ERROR else None
    if start is None:
        return failure
    beginning = f" beginning {start!r}" if start else ""
    return ClipFailure(failure.reason, f"{local}: not audio: a text file{beginning}")


def _naming_input(failure: ClipFailure, source: str, local: str) -> ClipFailure:
    """``failure`` of ``source`` (read from ``local``) with a detail that starts with
    ``source`` as given, not with the path it was read from (a URL's temporary copy)."""
    detail = failure.detail
    for name in dict.fromkeys((local, str(Path(local)), source)):
        if detail.startswith(f"{name}: "):
            detail = detail[len(name) + 2 :]
            break
    if is_local(source) or source not in detail:  # fetch errors name the URL
        detail = f"{source}: {detail}"
    return ClipFailure(failure.reason, detail, failure.attempts)


def _file_windows(
    loaded: LoadedRun,
    source: str,
    settings: EmbedSettings | None,
    rate: int,
    storage_options: dict | None,
) -> np.ndarray:
    """The windows of file ``source`` that the run's model takes, as float32.

    Raises
    ------
    schemas.failures.ClipFailure
        If it cannot be fetched or decoded; the detail starts with ``source`` as given.
    """
    local = source
    try:
        with local_audio(source, storage_options) as local:
            try:
                if settings is not None:
                    windows = _embedding_windows(loaded, local, settings, rate)
                else:
                    windows = _waveform_windows(loaded, local)
            except ClipFailure as failure:
                raise _as_not_audio(failure, local) from None
    except ClipFailure as failure:
        raise _naming_input(failure, source, local) from None
    # Waveform windows are already in [-1, 1]; embeddings stay on their 0..255 scale.
    return windows.astype(np.float32)


def predict_files(
    run: str | os.PathLike[str] | RunDir | LoadedRun,
    paths: Sequence[str | os.PathLike[str]],
    *,
    which: str = "best",
    checkpoint: str | None = None,
    pca_params: str | None = None,
    mode: str | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    warn: Callable[[str], None] = log.warning,
    storage_options: dict | None = None,
    on_failure: Callable[[str, ClipFailure], None] | None = None,
) -> list[Prediction]:
    """Score audio files with a trained run (windows max-pooled; see the module docstring).

    Parameters
    ----------
    run : str, os.PathLike, RunDir or LoadedRun
    paths : sequence of str or os.PathLike
        Audio files in any format ingest reads: local paths or URLs (``s3://bucket/key``).
    which : {"best", "last"}
    checkpoint, pca_params : str, optional
        VGGish ``vggish_model.ckpt`` and ``vggish_pca_params.npz``; needed by embedding runs.
    mode : {"fast", "exact"}, optional
        VGGish front-end precision (embedding runs). By default the front end (mode and
        resampler) the run's embeddings were made with, as the dataset's manifest records it;
        ``"fast"``, with a warning, when that is not known.
    batch_size : int
        Windows per forward pass, across files (see the module docstring).
    progress : callable, optional
        ``progress(done, total)`` after each file is prepared.
    warn : callable
        Called with a one-line warning when an embedding run records no VGGish weights to
        check ``checkpoint`` and ``pca_params`` against (runs trained before they were
        recorded, or on imported embeddings), when the front end its embeddings were made
        with is not known, or when its dataset's sample rate cannot be read.
    storage_options : dict, optional
        fsspec options of URL ``paths`` and of the run's dataset.
    on_failure : callable, optional
        ``on_failure(path, failure)`` for a file that is missing, cannot be fetched or cannot
        be decoded (a text file's detail says it is not audio), which is then left out of
        the result and the other files are scored. The failure's detail starts with the path
        as given. Without it, the first such failure is raised.

    Returns
    -------
    list of Prediction
        In the order of ``paths``, of the files scored.

    Raises
    ------
    schemas.failures.ClipFailure
        Without ``on_failure``: if a file is missing, cannot be fetched or cannot be decoded.
    ValueError, FileNotFoundError
        If a path is a local folder (checked first), an embedding run lacks the VGGish files,
        or they are not the ones its embeddings were made with (the message says which digest
        differs), or ``mode`` is not the mode they were made with (the message names both).
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    refuse_folders(paths)
    loaded = load_run(run, which)
    settings, rate = None, 0
    if loaded.config.input == "embeddings":
        manifest, reason = _dataset_manifest(loaded, storage_options)
        frontend = _recorded_frontend(loaded, manifest, reason)
        settings = _embed_settings(loaded, checkpoint, pca_params, mode, frontend, warn)
        rate = _dataset_sample_rate(loaded, manifest, reason, warn)
    batches = _WindowBatches(window_scorer(loaded.model), batch_size)
    sources: list[str] = []
    counts: list[int] = []
    for done, path in enumerate(paths, start=1):
        path = os.fspath(path)
        try:
            windows = _file_windows(loaded, path, settings, rate, storage_options)
        except ClipFailure as failure:
            if on_failure is None:
                raise
            on_failure(path, failure)
        else:
            batches.add(windows)
            sources.append(path)
            counts.append(len(windows))
        if progress is not None:
            progress(done, len(paths))
    scores = batches.finish()
    return [
        Prediction(source, "file", best, count)
        for source, best, count in zip(sources, scores, counts, strict=True)
    ]


# --------------------------------------------------------------------------- dataset clips


def input_splits(
    loaded: LoadedRun, dataset: str | os.PathLike[str], storage_options: dict | None = None
) -> list[str]:
    """Splits of ``dataset`` that hold the run's input (waveforms or its embeddings), sorted.

    Raises
    ------
    FileNotFoundError
        If ``dataset`` has no manifest.
    """
    store = DatasetStore(dataset, storage_options)
    manifest = load_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"{store.url()} has no manifest.json")
    config = loaded.config
    if config.input == "waveforms":
        have = manifest.splits
    else:
        have = manifest.embeddings.get(config.embedding_model, {})
    return sorted(name for name, entry in have.items() if entry.shards)


def predict_clips(
    run: str | os.PathLike[str] | RunDir | LoadedRun,
    dataset: str | os.PathLike[str],
    clip_ids: Sequence[str],
    split: str | None = None,
    *,
    which: str = "best",
    batch_size: int = 64,
    storage_options: dict | None = None,
) -> list[Prediction]:
    """Score clips of a dataset, found by clip id, as stored in its shards.

    Parameters
    ----------
    run : str, os.PathLike, RunDir or LoadedRun
    dataset : str or os.PathLike
    clip_ids : sequence of str
    split : str, optional
        Look only in this split; by default in every split holding the run's input.
    which : {"best", "last"}
    batch_size : int
    storage_options : dict, optional

    Returns
    -------
    list of Prediction
        In the order of ``clip_ids``.

    Raises
    ------
    ValueError
        If a clip id is in none of the splits searched (the message names them), if the
        dataset has none of the run's input (no embeddings: embed it), or on an unknown split.
    """
    loaded = load_run(run, which)
    splits = input_splits(loaded, dataset, storage_options) if split is None else [split]
    wanted = list(dict.fromkeys(clip_ids))
    if not splits:
        config = loaded.config
        embeddings = config.input != "waveforms"
        what = f"{config.embedding_model} embeddings" if embeddings else "waveform shards"
        raise ValueError(
            f"not an audio file, and {dataset} has no {what} (the run's input) to look clip ids "
            f"up in{'; compute them with `audiomill embed`' if embeddings else ''}: "
            f"{_shown(wanted)}"
        )
    found: dict[str, Prediction] = {}
    for name in splits:
        reader = open_split(loaded, dataset, name, storage_options)
        ids = read_row_labels(reader).clip_ids
        position = {cid: row for row, cid in enumerate(ids)}
        here = [cid for cid in wanted if cid in position and cid not in found]
        if not here:
            continue
        rows = np.array([position[cid] for cid in here], dtype=np.int64)
        scores, targets = predict_rows(loaded.model, reader, rows, batch_size)
        for cid, s, t in zip(here, scores, targets, strict=True):
            found[cid] = Prediction(cid, "clip", s, 1, np.flatnonzero(t).tolist(), name)
    missing = [cid for cid in wanted if cid not in found]
    if missing:
        raise ValueError(
            f"not an audio file, nor a clip id of split(s) [{', '.join(splits)}] of {dataset}: "
            f"{_shown(missing)}"
        )
    return [found[cid] for cid in clip_ids]


def _shown(ids: list[str]) -> str:
    """The first five of ``ids``, and how many more."""
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


# --------------------------------------------------------------------------- search


_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    """The case-folded words of ``text``: its runs of letters and digits."""
    return _WORD.findall(text.casefold())


def _same_word(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one word, up to a plural ``-s`` or ``-es`` on either."""
    short, long = sorted((a, b), key=len)
    return long in (short, short + "s", short + "es")


def _holds_phrase(words: list[str], phrase: list[str]) -> bool:
    """Whether ``phrase`` occurs in ``words`` as consecutive words (see :func:`_same_word`)."""
    n = len(phrase)
    return any(all(map(_same_word, words[i : i + n], phrase)) for i in range(len(words) - n + 1))


def match_classes(classes: ClassMap, keyword: str) -> list[ClassInfo]:
    """Classes whose display names hold the words of ``keyword``, case-insensitively.

    Words are runs of letters and digits; anything else (spaces, commas, parentheses, hyphens,
    apostrophes) only separates them, so "hi-hat" and "hi hat" both match "Hi-hat". A keyword
    matches whole words, never part of one ("car" matches "Car alarm", not "Carnatic music"),
    and a keyword of several words matches them in a row ("car alarm", "hip hop"). A word
    matches itself with or without a plural ``-s`` or ``-es`` ("cars" matches "Car", "dog"
    matches "Canidae, dogs, wolves"); other plurals are written as the names write them.

    Raises
    ------
    ValueError
        If none does; the message suggests the display names closest to the keyword
        (:func:`difflib.get_close_matches`, also against each word of the names).
    """
    needle = keyword.strip().casefold()
    if not needle:
        raise ValueError("the search keyword is empty")
    phrase = _words(needle)
    if not phrase:
        raise ValueError(f"the search keyword {keyword!r} has no letters or digits")
    matched = [c for c in classes if _holds_phrase(_words(c.display_name), phrase)]
    if matched:
        return matched
    names = classes.display_names
    folded = {n.casefold(): n for n in names}
    words: dict[str, str] = {}
    for n in names:
        for word in n.replace(",", " ").split():
            words.setdefault(word.casefold(), n)
    near = difflib.get_close_matches(needle, list(folded), n=5, cutoff=0.6)
    suggestions = [folded[n] for n in near]
    for word in difflib.get_close_matches(needle, list(words), n=5, cutoff=0.6):
        if words[word] not in suggestions:
            suggestions.append(words[word])
    hint = (
        f"did you mean: {', '.join(repr(s) for s in suggestions[:5])}?"
        if suggestions
        else f"class names look like {', '.join(repr(n) for n in names[:5])}"
    )
    raise ValueError(f"no class name matches {keyword!r}; {hint}")


def scores_cache_path(run: RunDir, reader: ShardReader, split: str) -> Path:
    """``RUN/scores/<split>-<key>.npz``; the key digests the dataset URL and its shard files."""
    digest = hashlib.sha256()
    digest.update(f"{reader.store.url()}\n{reader.source}\n".encode())
    for shard in reader.shards:
        digest.update(f"{shard.entry.index}:{shard.entry.files[shard.fmt].sha256}\n".encode())
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in split)
    return run.file(SCORES_DIR) / f"{safe}-{digest.hexdigest()[:16]}.npz"


def split_scores(
    run: str | os.PathLike[str] | RunDir | LoadedRun,
    dataset: str | os.PathLike[str],
    split: str,
    *,
    which: str = "best",
    batch_size: int = 64,
    storage_options: dict | None = None,
    progress: Progress | None = None,
) -> tuple[SplitScores, Path, bool]:
    """Scores of every clip of a split, from the run's cache when it holds them.

    Returns
    -------
    scores : SplitScores
    path : Path or None
        The cache file; None when it could not be written (the run's folder read-only, a full
        disk), which is logged as a warning: the scores are returned all the same.
    cached : bool
        Whether the scores came from the cache.
    """
    loaded = load_run(run, which)
    reader = open_split(loaded, dataset, split, storage_options)
    path = scores_cache_path(loaded.run, reader, split)
    if path.is_file():
        with np.load(path) as data:
            if str(data["weights_sha256"]) == loaded.weights_sha256:
                ids = data["clip_ids"].tolist()
                return SplitScores(ids, data["scores"], data["targets"]), path, True
    scored = score_split(loaded.model, reader, batch_size, progress=progress)
    buf = io.BytesIO()
    np.savez(
        buf,
        clip_ids=np.array(scored.clip_ids, dtype=str),
        scores=scored.scores,
        targets=scored.targets,
        weights_sha256=np.array(loaded.weights_sha256),
    )
    try:
        write_atomic(path, buf.getvalue())
    except OSError as exc:
        log.warning("scores not cached: cannot write %s: %s", path, exc.strerror or exc)
        return scored, None, False
    return scored, path, False


@dataclass
class SearchHit:
    """A clip found by :func:`search`.

    Attributes
    ----------
    rank : int
        1-based.
    clip_id : str
    score : float
        Its best score among the matched classes.
    display_name, mid : str
        The matched class that gave ``score``.
    labels : list of str
        Display names of the clip's true labels.
    """

    rank: int
    clip_id: str
    score: float
    display_name: str
    mid: str
    labels: list[str]


@dataclass
class SearchResult:
    """What :func:`search` found.

    Attributes
    ----------
    keyword : str
    split : str
    matched : list of ClassInfo
        Classes whose display names hold the keyword's words (:func:`match_classes`).
    hits : list of SearchHit
        Best first.
    num_clips : int
        Clips searched.
    cached : bool
        Whether the split's scores came from the run's cache.
    cache : Path or None
        The cache file; None when it could not be written.
    """

    keyword: str
    split: str
    matched: list[ClassInfo]
    hits: list[SearchHit]
    num_clips: int
    cached: bool
    cache: Path | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "keyword": self.keyword,
            "split": self.split,
            "matched": [{"display_name": c.display_name, "mid": c.mid} for c in self.matched],
            "num_clips": self.num_clips,
            "cached": self.cached,
            "hits": [vars(h) for h in self.hits],
        }


def search(
    run: str | os.PathLike[str] | RunDir | LoadedRun,
    dataset: str | os.PathLike[str],
    split: str,
    keyword: str,
    top: int = 10,
    *,
    which: str = "best",
    batch_size: int = 64,
    storage_options: dict | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """The clips of a split most likely to contain a sound named by ``keyword``.

    Parameters
    ----------
    run : str, os.PathLike, RunDir or LoadedRun
    dataset : str or os.PathLike
    split : str
    keyword : str
        Whole words, or a phrase of them, matched case-insensitively in class display names,
        a plural -s or -es aside ("car" and "cars" match "Car" and "Car alarm", not "Carnatic
        music"; see :func:`match_classes`).
    top : int
        Hits returned.
    which : {"best", "last"}
    batch_size : int
    storage_options : dict, optional
    progress : callable, optional
        ``progress(done, total)`` while scoring (not called when the scores are cached).

    Returns
    -------
    SearchResult
        Clips ranked by their maximum score over the matched classes (ties: global row order).

    Raises
    ------
    ValueError
        If no class matches (with suggestions), or on an unknown split.
    """
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    loaded = load_run(run, which)
    matched = match_classes(loaded.classes, keyword)
    scored, path, cached = split_scores(
        loaded,
        dataset,
        split,
        batch_size=batch_size,
        storage_options=storage_options,
        progress=progress,
    )
    columns = np.array([c.index for c in matched])
    sub = scored.scores[:, columns]
    best = sub.max(axis=1)
    which_class = sub.argmax(axis=1)
    order = np.argsort(-best, kind="stable")[:top]
    names = loaded.classes.display_names
    hits = [
        SearchHit(
            rank=rank,
            clip_id=scored.clip_ids[row],
            score=float(best[row]),
            display_name=matched[which_class[row]].display_name,
            mid=matched[which_class[row]].mid,
            labels=[names[c] for c in np.flatnonzero(scored.targets[row])],
        )
        for rank, row in enumerate(order, start=1)
    ]
    return SearchResult(keyword, split, matched, hits, len(scored.clip_ids), cached, path)
