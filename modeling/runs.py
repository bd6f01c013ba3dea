"""The training-run directory: its configuration, checkpoints, history and trained weights.

A run directory (``RUN``) holds everything needed to continue, evaluate or serve a model::

    RUN/run.json               RunConfig: dataset, input, model and its arguments, task, training,
                               the VGGish weights its embeddings were made with
    RUN/classes.csv            the class map the outputs follow (index,mid,display_name)
    RUN/checkpoints/step-00000100.npz   model + optimizer + RNG state and sampler position
    RUN/best.weights.h5        weights of the best evaluation so far (Keras format)
    RUN/last.weights.h5        weights at the end of training
    RUN/history.jsonl          one JSON object per evaluation (step, loss, metrics, seconds)
    RUN/logs/                  TensorBoard event files
    RUN/summary.json           what the finished run achieved

Every file is written to a temporary name and renamed, so a run killed at any moment keeps its
last complete checkpoint; training removes the temporaries such a run left when it starts or
resumes (:meth:`RunDir.remove_temporaries`). A run started over in the same directory keeps
the run it replaces as ``RUN.previous`` (one generation), unless the replaced run is unfinished
and ``RUN.previous`` a finished run: then the finished run stays and the unfinished one is
deleted. Only a run is ever moved there or deleted from there.

A process training a run holds its lock (:meth:`RunDir.locked`: an ``flock`` of the hidden file
``.RUN.lock`` beside it, which the system releases when the process ends, however it ends), and
a run locked by another process is neither trained, moved nor deleted.

:func:`check_out_dir` is the one check of the folders that ``train``, ``sweep``, ``evaluate``
and ``export`` write: none writes into a dataset (its folder or any folder inside it), where
it would mix with what a folder already holds, or where it cannot write (refused before any
work; a write failing later is one line too: :func:`out_error_line`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modeling.process_lock import new_held_file, process_lock, remove_unheld_file
from schemas.classmap import ClassMap
from schemas.dataset import MANIFEST

RUN_VERSION = 1
RUN_CONFIG = "run.json"
RUN_CLASSES = "classes.csv"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.weights.h5"
LAST_WEIGHTS = "last.weights.h5"
HISTORY = "history.jsonl"
LOGS = "logs"
SUMMARY = "summary.json"
PREVIOUS_SUFFIX = ".previous"
LOCK_SUFFIX = ".lock"
SWEEP_JSON = "sweep.json"
OUT_KINDS = ("run", "sweep", "output")
INPUTS = ("embeddings", "waveforms")
SAMPLERS = ("balanced", "shuffled", "weighted")
_TEMPORARY = re.compile(r"\.(?P<of>.+)\.(?:[0-9a-f]{32}|[a-z0-9_]{8})\.tmp")
"""A temporary's name (:func:`_temporary_path`; 8 characters as ``mkstemp`` made them before)."""
_CHECKPOINT = re.compile(r"step-\d{8}\.npz")
_RUN_FILES = frozenset({RUN_CONFIG, RUN_CLASSES, HISTORY, SUMMARY})


def weights_temporary(path: Path) -> Path:
    """The name training saves weights under before renaming them onto ``path``
    (``.tmp-NAME.weights.h5``: Keras wants the ``.weights.h5`` suffix)."""
    return path.with_name(f".tmp-{path.name}")


_WEIGHTS_TEMPORARIES = frozenset(
    weights_temporary(Path(name)).name for name in (BEST_WEIGHTS, LAST_WEIGHTS)
)


@dataclass
class RunConfig:
    """How a run was trained: enough to rebuild its model and continue it exactly.

    Attributes
    ----------
    dataset : str
        Dataset directory or fsspec URL trained on.
    input : {"embeddings", "waveforms"}
    model : str
        Registered model name (:func:`modeling.models.model_names`).
    task : {"multilabel", "singlelabel"}
    num_classes : int
    splits : list of str
        Training splits, concatenated in this order.
    eval_split : str or None
        Split evaluated every ``eval_every`` steps; the held-out fold when ``folds`` is set.
    folds, fold : int or None
        K-fold cross-validation over the training splits: train on every fold but ``fold``
        (0-based), evaluate on ``fold``.
    sampler : {"balanced", "shuffled", "weighted"}
    batch_size, steps, eval_every : int
    learning_rate : float
    mixup : float
        Beta(alpha, alpha) mixup; 0 disables it.
    class_weights : bool
        Weight the loss by inverse class frequency.
    seed : int
    embedding_model : str
        Embedding shards read when ``input`` is ``"embeddings"``.
    model_kwargs : dict
        Arguments of the model builder (input shape, width, sample rate...).
    mixed_precision : bool or None
        None: when a GPU is visible.
    embedding_provenance : dict or None
        The VGGish weights the embeddings trained on were made with (``model``,
        ``checkpoint_sha256``, ``pca_sha256``), recorded by training
        (:mod:`modeling.embedding_provenance`); None for waveform runs, runs on imported
        embeddings and runs trained before it was recorded.
    """

    dataset: str
    input: str
    model: str
    task: str
    num_classes: int
    splits: list[str]
    eval_split: str | None
    sampler: str
    batch_size: int
    steps: int
    eval_every: int
    learning_rate: float
    mixup: float = 0.0
    class_weights: bool = False
    seed: int = 0
    folds: int | None = None
    fold: int | None = None
    embedding_model: str = "vggish"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    mixed_precision: bool | None = None
    embedding_provenance: dict[str, str] | None = None
    version: int = RUN_VERSION

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {self.input!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        for name in ("batch_size", "steps", "eval_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.mixup < 0:
            raise ValueError(f"mixup alpha must be >= 0, got {self.mixup}")
        if (self.folds is None) != (self.fold is None):
            raise ValueError("folds and fold go together")
        if self.folds is not None and not 0 <= self.fold < self.folds:  # type: ignore[operator]
            raise ValueError(f"fold must be in 0..{self.folds - 1}, got {self.fold}")
        if self.folds is not None and self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")

    @property
    def input_kind(self) -> str:
        """The model registry's input kind: ``"embedding"`` or ``"waveform"``."""
        return self.input.removesuffix("s")

    def training_identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues (all but ``steps``
        and ``embedding_provenance``, which training records)."""
        out = asdict(self)
        out.pop("steps")
        out.pop("embedding_provenance")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if d.get("version") != RUN_VERSION:
            raise ValueError(f"run format version {d.get('version')!r}; expected {RUN_VERSION}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"run.json has unknown keys {unknown}")
        return cls(**d)


def _temporary_path(path: Path) -> Path:
    """A new name for a temporary of ``path`` beside it: ``.NAME.<32 hex digits>.tmp``."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _temporary_of(name: str) -> str | None:
    """The name whose temporary ``name`` is (:data:`_TEMPORARY`); None for any other name."""
    match = _TEMPORARY.fullmatch(name)
    return match["of"] if match else None


def _remove_abandoned_temporaries(path: Path) -> None:
    """Delete the temporaries of ``path`` that writes killed half-way left; one a live write
    holds stays (:func:`modeling.process_lock.remove_unheld_file`)."""
    for entry in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if _temporary_of(entry.name) == path.name:
            remove_unheld_file(entry)


@contextlib.contextmanager
def _held_temporary(path: Path, data: bytes) -> Iterator[Path]:
    """A new temporary of ``path`` holding ``data``, synced (parent folders made), that this
    process holds while the block runs (:func:`modeling.process_lock.new_held_file`); deleted
    if the block raises.

    The temporaries that earlier writes of ``path`` killed half-way left are deleted first. The
    file is made as ``open`` makes files, so that the umask decides its mode (``mkstemp`` makes
    every file 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(path)
    tmp, stream = new_held_file(lambda: _temporary_path(path))
    with stream:
        try:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
            yield tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    Temporaries of ``path`` that writes killed half-way left are deleted first; one a live
    write holds stays.
    """
    path = Path(path)
    with _held_temporary(path, data) as tmp:
        os.replace(tmp, path)


@contextlib.contextmanager
def staged_files(files: dict[Path, bytes]) -> Iterator[None]:
    """Write several files so that a failure replaces none of them.

    Every file is first written and synced to a temporary name beside it (parent folders
    made); the block runs once all are written, and they are renamed into place after it. A
    failed write (a full disk), or a block that raises, removes the temporary files and
    raises, leaving what was there as it was. Temporaries of these files that writes killed
    half-way left are deleted first; one a live write holds stays.

    Parameters
    ----------
    files : dict of Path to bytes
        Each file's path and content.
    """
    with contextlib.ExitStack() as held:
        temps = [(held.enter_context(_held_temporary(p, data)), p) for p, data in files.items()]
        yield
        for tmp, path in temps:
            os.replace(tmp, path)


def write_all_atomic(files: dict[Path, bytes]) -> None:
    """Write several files, all or none (:func:`staged_files`).

    Parameters
    ----------
    files : dict of Path to bytes
        Each file's path and content.
    """
    with staged_files(files):
        pass


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the indented JSON, keys sorted, of the files :func:`write_json` writes."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_atomic(path, json_bytes(obj))


@dataclass(frozen=True)
class SetAside:
    """What :meth:`RunDir.set_aside` did with a run started over.

    Attributes
    ----------
    previous : Path
        ``RUN.previous``.
    deleted : bool
        The run was unfinished and ``RUN.previous`` held a finished run: the run was deleted and
        the finished run kept there. Otherwise the run is now at ``previous``.
    """

    previous: Path
    deleted: bool = False


class RunDir:
    """Paths and records of one run directory.

    Parameters
    ----------
    path : str or os.PathLike
        The run directory (local).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        """Whether a run was started here (it has a ``run.json``)."""
        return self.file(RUN_CONFIG).is_file()

    def load_config(self) -> RunConfig:
        """Read ``run.json``.

        Raises
        ------
        FileNotFoundError
            If ``path`` is not a run directory.
        """
        if not self.exists:
            raise FileNotFoundError(
                f"{self.path} is not a training run (no {RUN_CONFIG}); train one with "
                "`audiomill train DATASET --out RUN`"
            )
        return RunConfig.from_dict(json.loads(self.file(RUN_CONFIG).read_text()))

    def save_config(self, config: RunConfig, classes: ClassMap | None = None) -> None:
        """Write ``run.json``, and ``classes.csv`` when ``classes`` is given."""
        if classes is not None:
            write_atomic(self.file(RUN_CLASSES), classes.to_csv_text().encode())
        write_json(self.file(RUN_CONFIG), config.to_dict())

    @property
    def previous_path(self) -> Path:
        """Where :meth:`set_aside` keeps the run: ``RUN.previous`` beside it."""
        return self.path.with_name(self.path.name + PREVIOUS_SUFFIX)

    @property
    def lock_path(self) -> Path:
        """The run's lock file: hidden, beside the run (``.RUN.lock``), so that it is no part of
        the run and stays where it is when the run is moved aside."""
        path = self.path.absolute()
        return path.with_name(f".{path.name}{LOCK_SUFFIX}")

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Keep other processes from training, moving or deleting the run while the block runs.

        Raises
        ------
        LockedError
            On entry, when another process holds the run's lock.
        """
        busy = (
            f"run {self.path} is in use: another process is training it; wait for it to end "
            "or choose another --out"
        )
        return process_lock(self.lock_path, busy)

    @property
    def finished(self) -> bool:
        """Whether the run trained every step ``run.json`` asks for: its final weights are there
        and ``summary.json``, written last, records that step. A run whose ``run.json`` or
        ``summary.json`` cannot be read counts as unfinished."""
        try:
            steps = self.load_config().steps
            summary = self.load_summary()
        except (OSError, TypeError, ValueError):
            return False
        return (
            summary is not None
            and summary.get("step") == steps
            and self.file(LAST_WEIGHTS).is_file()
        )

    def set_aside(self) -> SetAside:
        """Move the run to :attr:`previous_path`, deleting the one kept there before, unless
        this run is unfinished and the one kept there finished: then this run is deleted.

        Returns
        -------
        SetAside
            Where the run kept is, and whether this run was deleted instead.

        Raises
        ------
        FileExistsError
            If ``path`` is not a run, or ``RUN.previous`` exists and is not one: neither is
            moved nor deleted.
        LockedError
            If another process is training the run or the one at ``RUN.previous``.
        """
        with self.locked(), RunDir(self.previous_path).locked():
            return self._set_aside()

    def _set_aside(self) -> SetAside:
        """:meth:`set_aside`, with both runs locked."""
        previous = self.previous_path
        if not self.exists or (self.path / MANIFEST).exists():
            what = f"no {RUN_CONFIG}" if not self.exists else f"a dataset: it has {MANIFEST}"
            raise FileExistsError(
                f"{self.path} is not a training run ({what}): not moving it to {previous}; "
                "choose another --out"
            )
        problem = previous_problem(self.path)
        if problem is not None:
            raise FileExistsError(problem)
        if not previous.exists():
            self.path.rename(previous)
            return SetAside(previous)
        if RunDir(previous).finished and not self.finished:
            _delete(_hidden_for_deletion(self.path))
            return SetAside(previous, deleted=True)
        doomed = _hidden_for_deletion(previous)
        self.path.rename(previous)
        _delete(doomed)
        return SetAside(previous)

    def load_classes(self) -> ClassMap:
        return ClassMap.load(self.file(RUN_CLASSES))

    def weights_path(self, which: str = "best") -> Path:
        """The trained weights: ``"best"`` (falling back to ``"last"``) or ``"last"``.

        Raises
        ------
        FileNotFoundError
            If the run has no weights of that kind yet: the message says where a run with
            checkpoints stopped and how to go on.
        """
        if which not in ("best", "last"):
            raise ValueError(f"weights must be 'best' or 'last', got {which!r}")
        names = [BEST_WEIGHTS, LAST_WEIGHTS] if which == "best" else [LAST_WEIGHTS]
        for name in names:
            if self.file(name).is_file():
                return self.file(name)
        reason = self._no_weights_reason()
        raise FileNotFoundError(f"run {self.path} has no {' or '.join(names)}: {reason}")

    def _no_weights_reason(self) -> str:
        """Why a run has no final weights: where it stopped and how to go on, if it started."""
        step = self.trained_steps()
        if not step:
            return "has it trained?"
        config = self.load_config()
        best = ", or use --weights best" if self.file(BEST_WEIGHTS).is_file() else ""
        return (
            f"it stopped before its last step (checkpoints up to step {step} of {config.steps}): "
            f"finish it with `audiomill train {config.dataset} --out {self.path} --resume`{best}"
        )

    def remove_temporaries(self) -> None:
        """Delete what writes killed in this run left: temporaries of its files, checkpoints
        and weights.

        Call it only while holding the run's lock (:meth:`locked`): a live training's
        temporaries look the same. Those of the scores cache, which evaluation writes without
        the lock, stay, and so do names no writer of the run makes.
        """
        doomed = [
            p
            for p in self.path.glob(".*")
            if _temporary_of(p.name) in _RUN_FILES or p.name in _WEIGHTS_TEMPORARIES
        ]
        doomed += [
            p
            for p in self.file(CHECKPOINT_DIR).glob(".*")
            if _CHECKPOINT.fullmatch(_temporary_of(p.name) or "")
        ]
        for path in doomed:
            if path.is_file():
                path.unlink()

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return sorted(self.file(CHECKPOINT_DIR).glob("step-*.npz"))

    def trained_steps(self) -> int:
        """The step of the latest complete checkpoint; 0 without one."""
        checkpoints = self.checkpoints()
        return int(checkpoints[-1].stem.removeprefix("step-")) if checkpoints else 0

    def checkpoint_path(self, step: int) -> Path:
        return self.file(CHECKPOINT_DIR) / f"step-{step:08d}.npz"

    def history(self) -> list[dict[str, Any]]:
        """The evaluations recorded so far, in order."""
        path = self.file(HISTORY)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_history(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        write_atomic(self.file(HISTORY), text.encode())

    def load_summary(self) -> dict[str, Any] | None:
        path = self.file(SUMMARY)
        return json.loads(path.read_text()) if path.is_file() else None


def _hidden_for_deletion(path: Path) -> Path:
    """Rename ``path`` to a hidden name beside it, so that a deletion stopped half-way leaves
    no part of a run where a run is looked for; the new name."""
    doomed = path.with_name(f".{path.name}.{os.getpid()}.delete")
    path.rename(doomed)
    return doomed


def _delete(path: Path) -> None:
    """Delete the folder (or file) ``path``."""
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _visible_entries(path: Path) -> list[str]:
    """The names in folder ``path`` but hidden ones (``.DS_Store``, interrupted temporaries)."""
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


def _holds_sweep(path: Path) -> bool:
    """Whether folder ``path`` is a sweep's: it has ``sweep.json`` or runs at SETTING/FOLD."""
    return (path / SWEEP_JSON).is_file() or any(path.glob(f"*/*/{RUN_CONFIG}"))


def previous_problem(run_path: str | os.PathLike[str]) -> str | None:
    """Why ``RUN.previous`` beside ``run_path`` may not be replaced: it exists and is not a run
    (no ``run.json``, or a dataset's ``manifest.json``); None when it is absent or a run."""
    previous = RunDir(run_path).previous_path
    if not (previous.exists() or previous.is_symlink()):
        return None
    if not RunDir(previous).exists:
        what = f"no {RUN_CONFIG}"
    elif (previous / MANIFEST).exists():
        what = f"a dataset: it has {MANIFEST}"
    else:
        return None
    return (
        f"{previous} is not a training run ({what}): starting {run_path} over would delete it "
        "to keep the replaced run there; move it away or choose another --out"
    )


def enclosing_dataset(path: str | os.PathLike[str]) -> Path | None:
    """The dataset folder ``path`` is or lies in: the nearest of ``path`` (absolute, symbolic
    links followed) and its parent folders with a dataset's ``manifest.json``; None when there
    is none.

    Parameters
    ----------
    path : str or os.PathLike
        A local folder, which need not exist.
    """
    resolved = Path(path).resolve()
    return next((f for f in (resolved, *resolved.parents) if _holds_a_dataset(f)), None)


def _holds_a_dataset(folder: Path) -> bool:
    """Whether ``folder`` has a ``manifest.json`` of a dataset: a JSON object with its
    ``schema_version`` and ``splits``, not the manifest of a web app or browser extension that
    a project folder above a run may hold. One that cannot be read counts as a dataset's."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_bytes())
    except (OSError, ValueError):
        return True
    return isinstance(data, dict) and {"schema_version", "splits"} <= data.keys()


def _refuse_a_dataset(path: Path, command: str) -> None:
    """Refuse an ``--out`` that is a dataset's folder or lies inside one, naming the dataset."""
    dataset = enclosing_dataset(path)
    if dataset is None:
        return
    where = (
        f"is a dataset (it has {MANIFEST})"
        if dataset == path.resolve()
        else f"is inside the dataset {dataset} (it has {MANIFEST})"
    )
    raise FileExistsError(
        f"--out {path} {where}: {command} would write its files into it; choose a folder "
        "outside the dataset"
    )


def check_writable(path: str | os.PathLike[str], command: str) -> None:
    """Refuse an ``--out`` folder that ``command`` could not write or make, before any work.

    Decided by the folder, or where it does not exist yet its nearest existing parent: a file
    there, or a folder this process may not write (permissions, ``chattr +i``, a read-only
    file system), is refused. Nothing is written.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to be written, which need not exist.
    command : str
        Named in the message.

    Raises
    ------
    PermissionError
        With one line naming the folder and the reason.
    """
    path = Path(path)
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    if not existing.is_dir():
        reason = f"{existing} is a file, not a folder"
    else:
        reason = f"{existing} is not writable"
    raise PermissionError(f"--out {path}: {command} cannot write there: {reason}")


def out_error_line(exc: OSError, path: str | os.PathLike[str], command: str) -> str:
    """One line saying why ``command``, writing its ``--out`` ``path``, failed with ``exc``.

    Parameters
    ----------
    exc : OSError
        What was raised: a refusal of :func:`check_out_dir` (its message is the line), or a
        write that failed later (a full disk, a folder made read-only meanwhile).
    path : str or os.PathLike
        The ``--out`` folder.
    command : str
        The command writing it.

    Returns
    -------
    str
        The message of an error that has no ``errno`` (a refusal, whose message is the line);
        ``FILE: REASON`` for a failed file outside ``path`` (one read); else ``--out PATH:
        COMMAND could not write its files: REASON``, naming the file where the error does.
    """
    if exc.errno is None or not exc.strerror:
        return str(exc)
    line = f"--out {path}: {command} could not write its files: {exc.strerror}"
    if exc.filename is None:
        return line
    where, failed = Path(path).absolute(), Path(exc.filename).absolute()
    if failed != where and where not in failed.parents:
        return f"{exc.filename}: {exc.strerror}"
    return f"{line} ({exc.filename})"


def check_out_dir(
    path: str | os.PathLike[str], command: str, kind: str, *, restart: bool = False
) -> None:
    """Refuse an ``--out`` of ``command`` where writing would damage what the folder holds.

    Nothing is written. A dataset's folder (it has ``manifest.json``), or a folder inside one
    (new or not), is refused for every ``kind``, and so is a folder that cannot be written or
    made (:func:`check_writable`); outside datasets, a folder that does not exist yet, or holds
    only hidden entries, is accepted.

    Parameters
    ----------
    path : str or os.PathLike
        The ``--out`` folder.
    command : str
        The command writing it, for the message.
    kind : {"run", "sweep", "output"}
        ``"run"`` (``train``): the folder must be a run (``run.json``) or empty, since
        ``--restart`` moves the whole folder aside; ``"sweep"``: a sweep's folder
        (``sweep.json`` or runs at SETTING/FOLD) or empty; ``"output"`` (``evaluate``,
        ``export``): anything but a run's own folder.
    restart : bool
        ``kind="run"`` only: the run will be started over, so a ``RUN.previous`` that is not a
        run (and would be deleted) is refused too.

    Raises
    ------
    FileExistsError
        With one line naming the folder and why it is refused.
    PermissionError
        From :func:`check_writable`.
    """
    if kind not in OUT_KINDS:
        raise ValueError(f"kind must be one of {OUT_KINDS}, got {kind!r}")
    path = Path(path)
    _refuse_a_dataset(path, command)
    if path.exists() and not path.is_dir():
        raise FileExistsError(
            f"--out {path} is a file, not a folder: {command} writes a folder; choose another --out"
        )
    check_writable(path, command)
    if not path.exists():
        return
    is_run = RunDir(path).exists
    if kind == "output":
        if is_run:
            raise FileExistsError(
                f"--out {path} is a training run (it has {RUN_CONFIG}): {command} would write "
                f"its files among the run's; choose another --out, e.g. {path / command}"
            )
        return
    if kind == "sweep":
        if is_run:
            raise FileExistsError(
                f"--out {path} is a training run (it has {RUN_CONFIG}), not a sweep's folder; "
                "choose another --out"
            )
        if _visible_entries(path) and not _holds_sweep(path):
            raise FileExistsError(
                f"--out {path} is not empty and not a sweep's folder (no {SWEEP_JSON} or runs "
                "in SETTING/FOLD): sweep would write its runs among its files; choose an empty "
                "or new folder"
            )
        return
    if not is_run and _visible_entries(path):
        raise FileExistsError(
            f"--out {path} is not empty and not a training run (no {RUN_CONFIG}): {command} "
            "would write a run among its files (and --restart move them all aside); choose an "
            "empty or new folder"
        )
    if restart and is_run:
        problem = previous_problem(path)
        if problem is not None:
            raise FileExistsError(problem)


def load_trained_model(run: str | os.PathLike[str] | RunDir, which: str = "best") -> Any:
    """Rebuild a run's model and load its trained weights.

    Parameters
    ----------
    run : str, os.PathLike or RunDir
    which : {"best", "last"}

    Returns
    -------
    keras.Model
        Outputs (batch, num_classes) float32 scores; inputs raw embeddings (0..255 as float or
        uint8) or waveforms scaled to [-1, 1].
    """
    from modeling.models import build_model

    run = run if isinstance(run, RunDir) else RunDir(run)
    config = run.load_config()
    model = build_model(
        config.model, config.input_kind, config.num_classes, config.task, **config.model_kwargs
    )
    model.load_weights(run.weights_path(which))
    return model
