"""Dataset storage through fsspec: contained paths, atomic commits, checksums and a run lock.

A dataset root is a local directory or an fsspec URL such as ``s3://bucket/prefix``. Every path
below it is given relative to the root and checked, so nothing is ever written outside the dataset.
Published files are committed atomically: on a local disk they are written under a temporary name
(``<name>.tmp-<hex>``) in the destination directory, fsynced and renamed over the destination; on
an object store they are uploaded straight to the final key, since object stores never expose a
put (or a multipart upload) half-done. A crash therefore leaves only temporary files, which
`DatasetStore.remove_temporaries` deletes: only names `temporary_name` makes, of files its caller
writes there, never a user's file that merely ends in ``.tmp-...``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

import fsspec
import psutil
from fsspec.implementations.local import LocalFileSystem

from pipelines.guarded_file import GuardedFile
from pipelines.page_cache import hash_file_uncached

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_TEMPORARY = re.compile(r"(.+)\.tmp-[0-9a-f]{32}")
LOCK_NAME = ".lock"
OPTIONS_HINT = "--storage-options or $AUDIOMILL_STORAGE_OPTIONS"
START_TOLERANCE_S = 2.0
"""How far two readings of one process's start after boot may differ: the boot time they are
reckoned from is whole seconds, which may tick over between the readings."""
# Errors that say something about a path, not about reaching the store: callers rely on them.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)


def temporary_name(name: str) -> str:
    """Return a unique temporary sibling name for `name`, one `remove_temporaries` will delete."""
    return f"{name}.tmp-{uuid.uuid4().hex}"


def temporary_of(name: str) -> str | None:
    """The name whose temporary `name` is, as `temporary_name` makes them, or None for any other
    name (``notes.txt.tmp-old`` is none of ours)."""
    match = _TEMPORARY.fullmatch(name)
    return match[1] if match else None


@dataclass(frozen=True)
class CommitRecord:
    """A file committed to a dataset.

    Attributes
    ----------
    path : str
        Path relative to the dataset root.
    sha256 : str
        Hex digest of the content.
    bytes : int
        Size of the content.
    """

    path: str
    sha256: str
    bytes: int


class DatasetStore:
    """A dataset root on any fsspec filesystem, with atomic writes.

    Parameters
    ----------
    root : str or os.PathLike
        Local directory or fsspec URL of the dataset (``s3://bucket/prefix``).
    storage_options : dict, optional
        Filesystem options (for s3fs: ``key``, ``secret``, ``client_kwargs``, ...). Directory
        listings are never cached, since other processes may change the dataset.
    """

    def __init__(
        self, root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> None:
        self.storage_options = dict(storage_options or {})
        options = _fs_options(os.fspath(root), self.storage_options)
        self.fs, path = fsspec.core.url_to_fs(os.fspath(root), **options)
        self.root: str = path.rstrip("/")
        if not self.root:
            raise ValueError(f"dataset root {os.fspath(root)!r} must not be a filesystem root")

    def __repr__(self) -> str:
        return f"DatasetStore({self.url()!r})"

    @property
    def is_local(self) -> bool:
        """Whether the dataset is on a local filesystem (renames are atomic, fsync works)."""
        return isinstance(self.fs, LocalFileSystem)

    def _path(self, *parts: str) -> str:
        """Return the filesystem path of `parts` below the root, refusing anything outside it."""
        segments: list[str] = []
        for part in parts:
            for segment in part.split("/"):
                if segment in ("", ".", "..") or "\\" in segment or "\0" in segment:
                    raise ValueError(
                        f"unsafe dataset path {'/'.join(parts)!r}: paths must be relative, with "
                        "no empty, '.' or '..' segments, backslashes or NUL characters"
                    )
                segments.append(segment)
        return "/".join([self.root, *segments])

    def _dir_path(self, rel_dir: str) -> str:
        return self._path(rel_dir) if rel_dir else self.root

    def url(self, *parts: str) -> str:
        """Return the location of `parts` below the root: a plain path when local, else a URL.

        Raises
        ------
        ValueError
            If a part is absolute or has an empty, ``.`` or ``..`` segment, a backslash or a NUL.
        """
        path = self._path(*parts)
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def local_path(self, *parts: str) -> Path:
        """Return the local path of `parts` below the root of a local dataset."""
        if not self.is_local:
            raise ValueError(f"{self.url()} is not on a local filesystem")
        return Path(self._path(*parts))

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """Run calls to a remote store, turning a failure to reach it (no connection, no access)
        into a `DatasetAccessError` naming the dataset and the reason; a missing file stays a
        `FileNotFoundError`, other errors pass unchanged."""
        try:
            yield
        except PATH_ERRORS:
            raise
        except Exception as exc:
            failure = None if self.is_local else store_failure(exc)
            if failure is None:
                raise
            verb, reason = failure
            endpoint = self.storage_options.get("endpoint_url") or (
                self.storage_options.get("client_kwargs") or {}
            ).get("endpoint_url")
            where = f"{self.url()} (endpoint {endpoint})" if endpoint else self.url()
            raise DatasetAccessError(f"cannot {verb} the dataset at {where}: {reason}") from exc

    def check_writable(self, rel_dir: str) -> None:
        """Refuse, before any work, a local dataset whose folder `rel_dir` could not be made or
        written: a file in the way, or a folder this process may not write (permissions,
        ``chattr +i``, a read-only file system). Nothing is left behind; an object store is
        not checked.

        Raises
        ------
        DatasetAccessError
            Naming the dataset and the reason.
        """
        if not self.is_local:
            return
        path = self.local_path(rel_dir)
        try:
            with tempfile.TemporaryFile(dir=nearest_existing(path)):
                pass
        except OSError as exc:
            raise _access_error(self.url(), path, exc) from exc

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Write to a local dataset, a failure of which (no permission, a file in the way, a full
        disk) becomes a `DatasetAccessError` naming the dataset and the reason; a missing file
        stays a `FileNotFoundError`."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            if not self.is_local:
                raise
            in_the_way = (
                exc.filename if isinstance(exc, NotADirectoryError | FileExistsError) else None
            )
            raise _access_error(self.url(), Path(in_the_way or self.local_path()), exc) from exc

    def exists(self, rel: str) -> bool:
        """Whether `rel` exists."""
        with self._reaching():
            return self.fs.exists(self._path(rel))

    def read_bytes(self, rel: str) -> bytes:
        """Return the content of `rel`."""
        with self._reaching():
            return self.fs.cat_file(self._path(rel))

    def read_text(self, rel: str, encoding: str = "utf-8") -> str:
        """Return the content of `rel` decoded as text."""
        return self.read_bytes(rel).decode(encoding)

    def open(self, rel: str, mode: str = "rb", **kwargs: Any) -> IO[Any] | GuardedFile:
        """Open `rel` (creating local parent directories for writing); writes are not atomic.

        A remote file's reads, seeks, writes and close fail as the open does: a store that
        goes away mid-stream is a `DatasetAccessError`, not its client's own exception."""
        path = self._path(rel)
        if self.is_local and not mode.startswith("r"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self._reaching():
            raw = self.fs.open(path, mode, **kwargs)
        return raw if self.is_local else GuardedFile(raw, self._reaching)

    @contextlib.contextmanager
    def open_hdf5(self, rel: str) -> Iterator[Any]:
        """Open the HDF5 file `rel` for reading (an ``h5py.File``): by path when local, else
        through fsspec, where only the datasets then indexed are read (ranged reads)."""
        import h5py

        with contextlib.ExitStack() as stack:
            source = self.local_path(rel) if self.is_local else stack.enter_context(self.open(rel))
            yield stack.enter_context(h5py.File(source, "r"))

    def listdir(self, rel_dir: str = "") -> list[str]:
        """Return the sorted names in `rel_dir` (the root when empty); ``[]`` if it is missing."""
        path = self._dir_path(rel_dir)
        try:
            with self._reaching():
                entries = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        children = {entry.rstrip("/") for entry in entries} - {path}
        return sorted(child.rsplit("/", 1)[-1] for child in children)

    def file_sizes(self, rel_dir: str) -> dict[str, int]:
        """Return the size in bytes of each file in `rel_dir` by name (one listing, fresh from
        the store); ``{}`` if the folder is missing."""
        path = self._dir_path(rel_dir)
        try:
            with self._reaching():
                self.fs.invalidate_cache(path)
                entries = self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return {
            entry["name"].rstrip("/").rsplit("/", 1)[-1]: int(entry["size"])
            for entry in entries
            if entry.get("type") == "file"
        }

    def remove(self, rel: str) -> None:
        """Delete the file `rel`; a missing file is not an error."""
        with contextlib.suppress(FileNotFoundError), self._reaching():
            self.fs.rm_file(self._path(rel))

    def size(self, rel: str) -> int:
        """Return the size of `rel` in bytes."""
        with self._reaching():
            return int(self.fs.size(self._path(rel)))

    def sha256_of(self, rel: str) -> str:
        """Return the sha256 hex digest of stored file `rel`, read as a stream (past the page
        cache on a local dataset: a file is checked once)."""
        if self.is_local:
            return hash_file_uncached(self._path(rel))[0]
        with self._reaching(), self.fs.open(self._path(rel), "rb") as stream:
            return _hash_stream(stream)[0]

    def commit_file(
        self, local_tmp_file: str | os.PathLike[str], rel_dest: str, sha256: str | None = None
    ) -> CommitRecord:
        """Publish a finished local file atomically at `rel_dest` and consume it.

        Locally, a file already in the destination directory (named with `temporary_name`, so
        a crash before the commit leaves only a temporary) is fsynced and renamed over the
        destination; any other file is copied to a temporary in that directory first. On an object
        store the file is uploaded straight to its final key. Either way the destination is
        never seen half-written, and the source is gone once the commit succeeded.

        Parameters
        ----------
        local_tmp_file : str or PathLike
        rel_dest : str
        sha256 : str, optional
            The file's sha256 hex digest, when its writer computed it from the bytes it wrote
            (``pipelines.shard_writers.HDF5ShardWriter``); the file is then not read to hash it.

        Returns
        -------
        CommitRecord
            `rel_dest` with the sha256 and size of the committed content.
        """
        src = Path(local_tmp_file)
        dest = self._path(rel_dest)
        known = None if sha256 is None else (sha256, src.stat().st_size)
        if self.is_local:
            dest_path = Path(dest)
            dest_path.parent.mkdir(parents=True, exist_ok=True)
            in_place = src.resolve().parent == dest_path.parent.resolve()
            with src.open("rb") as stream:
                if in_place:
                    # Flushing to disk and hashing both release the GIL. The file is not read
                    # again by this run: the hash reads it past the page cache.
                    with ThreadPoolExecutor(1) as pool:
                        synced = pool.submit(os.fsync, stream.fileno())
                        digest, size = known or hash_file_uncached(src)
                        synced.result()
                else:
                    digest, size = known or _hash_stream(stream)
            if in_place:
                os.replace(src, dest_path)
                _fsync_dir(dest_path.parent)
            else:
                _write_local_atomic(dest_path, lambda out: _copy_file(src, out))
                src.unlink()
        else:
            with src.open("rb") as stream:
                digest, size = known or _hash_stream(stream)
            with self._reaching():
                self.fs.put_file(str(src), dest)
            src.unlink()
        return CommitRecord(rel_dest, digest, size)

    def write_bytes_atomic(self, rel_dest: str, data: bytes) -> CommitRecord:
        """Write `data` to `rel_dest` atomically and return its `CommitRecord`."""
        dest = self._path(rel_dest)
        if self.is_local:
            dest_path = Path(dest)
            dest_path.parent.mkdir(parents=True, exist_ok=True)
            _write_local_atomic(dest_path, lambda out: out.write(data))
        else:
            with self._reaching():
                self.fs.pipe_file(dest, data)
        return CommitRecord(rel_dest, hashlib.sha256(data).hexdigest(), len(data))

    def write_json_atomic(self, rel: str, obj: Any) -> CommitRecord:
        """Write `obj` as JSON (sorted keys, indent 2) to `rel` atomically."""
        text = json.dumps(obj, sort_keys=True, indent=2) + "\n"
        return self.write_bytes_atomic(rel, text.encode("utf-8"))

    def remove_temporaries(self, rel_dir: str, ours: Callable[[str], bool]) -> list[str]:
        """Delete the temporaries that crashed writes left in `rel_dir` (the root when empty).

        Call it only while holding the `DatasetLock`: a live run's temporaries look the same.

        Parameters
        ----------
        rel_dir : str
        ours : callable
            Whether a file of this name in `rel_dir` is one the caller's writers make: only
            names it accepts that `temporary_name` made (`temporary_of`) are deleted, so a
            user's ``notes.txt.tmp-old`` or ``shard-00000.h5.tmp-backup`` stays.

        Returns
        -------
        list of str
            The removed paths, relative to the root.
        """
        removed = []
        for name in self.listdir(rel_dir):
            if temporary_of(name) is None or not ours(name):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            self.remove(rel)
            removed.append(rel)
        return removed


def _fs_options(url: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """The fsspec options of the store at `url`: listings are never cached, and S3 clients retry
    in botocore's standard mode (three attempts, an unreachable endpoint fails in seconds, not
    the legacy mode's 5-15 s) unless ``config_kwargs`` or ``$AWS_RETRY_MODE`` chooses a mode."""
    options = {"use_listings_cache": False, **storage_options}
    if fsspec.core.split_protocol(url)[0] in ("s3", "s3a") and "AWS_RETRY_MODE" not in os.environ:
        config = options.get("config_kwargs") or {}
        options["config_kwargs"] = {"retries": {"mode": "standard"}, **config}
    return options


def _hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """Return the sha256 hex digest and length of what is left in `stream`."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _copy_file(src: Path, out: BinaryIO) -> None:
    with src.open("rb") as stream:
        shutil.copyfileobj(stream, out, CHUNK_BYTES)


def _fsync_dir(path: Path) -> None:
    """Make a rename or creation in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_local_atomic(dest: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Fill a temporary next to `dest`, fsync it and rename it over `dest`; never half a file."""
    tmp = dest.with_name(temporary_name(dest.name))
    try:
        with tmp.open("xb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


class DatasetLockedError(RuntimeError):
    """Another run holds the dataset's lock."""


class DatasetAccessError(RuntimeError):
    """The dataset cannot be reached, read or written: a file in the way, no permission, no
    connection to its store or no credentials for it."""


ACCESS_ERROR_LINE = f"{DatasetAccessError.__module__}.{DatasetAccessError.__qualname__}: "
"""How the last line of a :class:`DatasetAccessError`'s traceback starts, as the text a Beam
worker process sends its runner holds it."""


def store_failure(exc: Exception) -> tuple[str, str] | None:
    """Why a call to a remote store failed, as ``(verb, reason)``.

    Parameters
    ----------
    exc : Exception
        What a call through fsspec (s3fs, botocore, aiohttp) raised.

    Returns
    -------
    tuple of str, or None
        ``("reach", "connection refused")``, ``("access", "no credentials (...)")`` and the
        like; None when `exc` is not a failure of the store (a bug, a bad argument).
    """
    from aiohttp import ClientError
    from botocore.exceptions import (
        BotoCoreError,
        ConnectTimeoutError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "access", f"no credentials (give a key and secret in {OPTIONS_HINT})"
    if isinstance(exc, PermissionError):
        return "access", f"access denied (check the key and secret in {OPTIONS_HINT})"
    causes = _causes(exc)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "reach", "connection refused"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "reach", "unknown host"
    if any(isinstance(c, TimeoutError | ConnectTimeoutError | ReadTimeoutError) for c in causes):
        return "reach", "timed out"
    if isinstance(exc, BotoConnectionError | ConnectionError | ClientError):
        return "reach", str(exc)
    if isinstance(exc, BotoCoreError | OSError):
        return "access", exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from, botocore's wrapped ``error`` included."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        kwargs = getattr(current, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        if not isinstance(wrapped, BaseException):
            wrapped = current.__cause__ or current.__context__
        current = wrapped
    return chain


def nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else its nearest existing parent: what decides whether a
    directory can be made there (a file in the way, no permission)."""
    return next(p for p in (path, *path.parents) if p.exists())


def _access_error(url: str, path: Path, exc: OSError) -> DatasetAccessError:
    """Say why the dataset at ``url`` cannot be written, ``path`` being what failed."""
    reason = exc.strerror or str(exc)
    existing = nearest_existing(path)
    if not existing.is_dir():
        reason = f"{existing} is a file, not a directory"
    return DatasetAccessError(f"cannot write the dataset at {url}: {reason}")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _seconds_after_boot(pid: int) -> float | None:
    """When process `pid` started, in seconds after this host booted (a count of clock ticks, so
    setting the system clock leaves it alone); None when psutil cannot tell."""
    try:
        return psutil.Process(pid).create_time() - psutil.boot_time()
    except (psutil.Error, OSError, NotImplementedError):
        return None


def _holder_is_dead(holder: dict[str, Any]) -> bool:
    """Whether a lock record names a process on this host that no longer exists: none has its
    pid, or the one that has it now started at another time than the holder (``process_start``),
    its pid having been reused. A record without that start time (an older audiomill's) and a
    process whose start cannot be read are judged by the pid alone."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    recorded = holder.get("process_start")
    started = _seconds_after_boot(pid)
    if not isinstance(recorded, int | float) or started is None:
        return False
    return abs(started - recorded) > START_TOLERANCE_S


def _readable_time(stamp: object) -> str | None:
    """An ISO time of a lock record as ``2026-12-04 19:46:40 UTC``; None when it has none."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_holder(holder: dict[str, Any]) -> str:
    """The run a lock record names, in words.

    Parameters
    ----------
    holder : dict
        A lock record (:class:`DatasetLock`); ``{}`` for an unreadable one.

    Returns
    -------
    str
        ``pid 4242 on host box since 2026-12-04 19:46:40 UTC (embed run 20261204T194640-ca81c8)``:
        its stage or command, run id and any other detail of its owner in the parentheses.
    """
    if "pid" not in holder:
        return "an unknown run (its lock file is unreadable)"
    text = f"pid {holder['pid']} on host {holder.get('host')}"
    if since := _readable_time(holder.get("started")):
        text += f" since {since}"
    owner = holder.get("owner")
    owner = dict(owner) if isinstance(owner, dict) else {}
    for key in ("host", "pid"):
        owner.pop(key, None)
    run = " ".join(str(owner.pop(k)) for k in ("stage", "command") if owner.get(k))
    if run_id := owner.pop("run_id", None):
        run = f"{run} run {run_id}".lstrip()
    details = [run] if run else []
    details += [f"{key} {value}" for key, value in sorted(owner.items())]
    return f"{text} ({', '.join(details)})" if details else text


def _parse_record(text: str) -> dict[str, Any]:
    """Parse a lock record; an unreadable one (a run died while creating it) gives ``{}``."""
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


class DatasetLock:
    """Context manager that keeps a second run off the same dataset.

    The lock is ``<dataset>/.lock``, a JSON record of the holder (host, pid, start time, when its
    process started after boot, a unique token and `owner_info`), removed on exit if it is still
    ours.

    On a local filesystem the lock is created exclusively (``O_CREAT|O_EXCL``). A lock whose
    process is dead on this host (no process has its pid, or the one that has it started at
    another time: the pid was reused) is stale: it is removed with a warning (race-free, see
    `_remove_stale`) and created anew.

    On an object store, which has no exclusive create, locking is best effort: a lock whose
    heartbeat (refreshed every `heartbeat_s` by a background thread) is younger than
    `stale_after_s` is respected, unless its process is dead on this host; otherwise we write our
    own and read it back after `settle_s`, going ahead only if our token is still there. Two runs
    can both go ahead only if one of them checks and writes more than `settle_s` apart,
    straddling the other's whole write-and-settle.

    Parameters
    ----------
    store : DatasetStore
        The dataset to lock.
    owner_info : dict, optional
        JSON-serialisable details shown to a refused run (command, user, ...).
    stale_after_s, heartbeat_s, settle_s : float
        Object stores only: heartbeat age after which a lock is abandoned, heartbeat period,
        and the delay before re-reading a freshly written lock.

    Raises
    ------
    DatasetLockedError
        On entry, when another run holds the lock; the message names it and what to do.
    """

    def __init__(
        self,
        store: DatasetStore,
        owner_info: dict[str, Any] | None = None,
        *,
        stale_after_s: float = 6 * 3600.0,
        heartbeat_s: float = 300.0,
        settle_s: float = 2.0,
    ) -> None:
        self.store = store
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.settle_s = settle_s
        self.token = uuid.uuid4().hex
        self.record: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _now(),
            "process_start": _seconds_after_boot(os.getpid()),
            "token": self.token,
            "owner": dict(owner_info or {}),
        }
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> DatasetLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        DatasetLockedError
            Another run holds it.
        DatasetAccessError
            A local dataset whose directory cannot be made or written.
        """
        if self.store.is_local:
            self._acquire_local()
        else:
            self._acquire_remote()

    def release(self) -> None:
        """Give the lock back, unless another run has taken it over meanwhile."""
        if self._heartbeat is not None:
            self._stop.set()
            self._heartbeat.join()
            self._heartbeat = None
        holder = self._read()
        if holder.get("token") == self.token:
            self.store.remove(LOCK_NAME)
        else:
            log.warning("dataset lock %s is no longer ours; leaving it", self.store.url(LOCK_NAME))

    def _read(self) -> dict[str, Any]:
        """Return the current lock record; ``{}`` when there is none or it is unreadable."""
        try:
            return _parse_record(self.store.read_text(LOCK_NAME))
        except FileNotFoundError:
            return {}

    def _stale(self, holder: dict[str, Any]) -> bool:
        """Whether the run of a lock record may be taken over: its process is dead on this host,
        or, on an object store, its heartbeat is older than `stale_after_s`."""
        if _holder_is_dead(holder):
            return True
        return not self.store.is_local and _age_s(holder) >= self.stale_after_s

    def live_holder(self) -> dict[str, Any] | None:
        """The record of the run that holds the lock, as :meth:`acquire` judges it.

        Returns
        -------
        dict or None
            None when there is no lock or it would be taken over as stale; ``{}`` for a local
            lock file that cannot be read, which :meth:`acquire` respects.
        """
        try:
            holder = _parse_record(self.store.read_text(LOCK_NAME))
        except FileNotFoundError:
            return None
        if not holder:
            return holder if self.store.is_local else None
        return None if self._stale(holder) else holder

    def _error(self, holder: dict[str, Any]) -> DatasetLockedError:
        who = describe_holder(holder)
        expiry = (
            ""
            if self.store.is_local
            else f" A lock without a heartbeat for {self.stale_after_s / 3600:g} h is taken over."
        )
        return DatasetLockedError(
            f"dataset {self.store.url()} is in use by {who}. Wait for that run to finish; if that "
            f"process is dead, remove {self.store.url(LOCK_NAME)} and run again.{expiry}"
        )

    def _acquire_local(self) -> None:
        path = self.store.local_path(LOCK_NAME)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _access_error(self.store.url(), path.parent, exc) from exc
        holder: dict[str, Any] = {}
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = _parse_record(path.read_text())
                except FileNotFoundError:
                    continue
                if not self._stale(holder):
                    raise self._error(holder) from None
                _remove_stale(path, holder)
                continue
            except OSError as exc:
                raise _access_error(self.store.url(), path, exc) from exc
            with os.fdopen(fd, "w") as out:
                json.dump(self.record, out)
                out.flush()
                os.fsync(out.fileno())
            _fsync_dir(path.parent)
            return
        raise self._error(holder)

    def _acquire_remote(self) -> None:
        holder = self._read()
        if holder:
            if not self._stale(holder):
                raise self._error(holder)
            dead = _holder_is_dead(holder)
            log.warning(
                "taking over the dataset lock of pid %s on %s: %s",
                holder.get("pid"),
                holder.get("host"),
                "the process is dead" if dead else f"no heartbeat since {holder.get('heartbeat')}",
            )
        self.record["heartbeat"] = _now()
        self.store.write_json_atomic(LOCK_NAME, self.record)
        time.sleep(self.settle_s)
        holder = self._read()
        if holder.get("token") != self.token:
            raise self._error(holder)
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="dataset-lock", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        """Refresh the heartbeat of a remote lock until released or taken over."""
        while not self._stop.wait(self.heartbeat_s):
            try:
                if self._read().get("token") != self.token:
                    log.error("dataset lock %s was taken over", self.store.url(LOCK_NAME))
                    return
                self.record["heartbeat"] = _now()
                self.store.write_json_atomic(LOCK_NAME, self.record)
            except Exception:  # keep beating through transient store errors
                log.exception("could not refresh dataset lock %s", self.store.url(LOCK_NAME))


def _age_s(holder: dict[str, Any]) -> float:
    """Seconds since the holder's last heartbeat; 0 when it has none (never presumed stale)."""
    try:
        beat = datetime.fromisoformat(holder["heartbeat"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return (datetime.now(UTC) - beat).total_seconds()


def _remove_stale(path: Path, holder: dict[str, Any]) -> None:
    """Delete the lock file at `path` if it still holds the stale record `holder`.

    Runs taking over the same stale lock serialise on an ``flock`` of its inode, and each checks,
    under that flock, that `path` still names that inode and record before unlinking it. Since a
    live lock is only ever created with ``O_EXCL`` (never renamed into place), a lock created by
    another run meanwhile is never removed.
    """
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        return
    with stream:
        fcntl.flock(stream, fcntl.LOCK_EX)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            return
        opened = os.fstat(stream.fileno())
        if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
            return
        if _parse_record(stream.read().decode("utf-8", "replace")) != holder:
            return
        path.unlink()
    log.warning(
        "removed stale dataset lock %s of pid %s, whose run has ended (started %s)",
        path,
        holder.get("pid"),
        holder.get("started"),
    )
