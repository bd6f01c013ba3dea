"""Dataset storage: contained paths, atomic commits and the run lock, locally and on S3."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import BinaryIO

import pytest

from pipelines import storage
from pipelines.storage import (
    CommitRecord,
    DatasetLock,
    DatasetLockedError,
    DatasetStore,
    nearest_existing,
    temporary_name,
    temporary_of,
)
from tests.s3_server import S3Server, s3_server  # noqa: F401  (s3_server is a fixture)

SHARD = "waveforms/train/shard-00000.h5"
UNSAFE_PATHS = ["../x", "/etc/passwd", "a/../../b", "", "a//b", "./a", "a/", "..\\x", "a\0b"]


@pytest.fixture
def s3_store(s3_server: S3Server) -> DatasetStore:  # noqa: F811
    """An empty dataset in a fresh bucket of the test S3 server."""
    return DatasetStore(f"s3://{s3_server.create_bucket()}/ds", s3_server.storage_options)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DatasetStore:
    """An empty dataset, in a local directory or in a fresh bucket of the test S3 server."""
    if request.param == "local":
        return DatasetStore(tmp_path / "ds")
    return request.getfixturevalue("s3_store")


@pytest.fixture
def lock_file_store(tmp_path: Path) -> DatasetStore:
    """A local dataset whose directory exists, for tests that plant a lock file."""
    (tmp_path / "ds").mkdir()
    return DatasetStore(tmp_path / "ds")


def _payload(size: int = (3 << 20) + 17) -> bytes:
    return os.urandom(size)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _fast_lock(store: DatasetStore, **owner: str) -> DatasetLock:
    return DatasetLock(store, owner, settle_s=0.05)


def _contend(root: str, start: Barrier, attempted: Barrier, won: Queue[bool]) -> None:
    """Try to take the lock of `root` together with other processes; report whether we won."""
    lock = DatasetLock(DatasetStore(root))
    start.wait()
    try:
        lock.acquire()
    except DatasetLockedError:
        won.put(False)
        attempted.wait()
        return
    won.put(True)
    attempted.wait()
    lock.release()


def test_commit_file_round_trip(store: DatasetStore, tmp_path: Path) -> None:
    data = _payload()
    src = tmp_path / "work" / "shard.h5"
    src.parent.mkdir()
    src.write_bytes(data)

    record = store.commit_file(src, SHARD)

    digest = hashlib.sha256(data).hexdigest()
    assert record == CommitRecord(SHARD, digest, len(data))
    assert store.sha256_of(SHARD) == digest
    assert store.read_bytes(SHARD) == data
    assert store.size(SHARD) == len(data)
    assert store.listdir("waveforms/train") == ["shard-00000.h5"]
    assert not src.exists()


def test_commit_file_replaces_existing(store: DatasetStore, tmp_path: Path) -> None:
    store.write_bytes_atomic(SHARD, b"old")
    src = tmp_path / "new.h5"
    src.write_bytes(b"new")

    store.commit_file(src, SHARD)

    assert store.read_bytes(SHARD) == b"new"
    assert store.listdir("waveforms/train") == ["shard-00000.h5"]


def test_local_commit_renames_a_temporary_in_place(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "ds")
    dest = store.local_path(SHARD)
    dest.parent.mkdir(parents=True)
    src = dest.with_name(temporary_name(dest.name))
    src.write_bytes(b"payload")
    inode = src.stat().st_ino

    record = store.commit_file(src, SHARD)

    assert record.sha256 == hashlib.sha256(b"payload").hexdigest()
    assert dest.stat().st_ino == inode
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]


@pytest.mark.parametrize("existing", [False, True])
def test_local_commit_failing_midway_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    store = DatasetStore(tmp_path / "ds")
    if existing:
        store.write_bytes_atomic(SHARD, b"old")
    data = _payload()
    src = tmp_path / "shard.h5"
    src.write_bytes(data)

    def copy_half_then_fail(stream: BinaryIO, out: BinaryIO, length: int = 0) -> None:
        out.write(stream.read(len(data) // 2))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        store.commit_file(src, SHARD)

    assert store.listdir("waveforms/train") == (["shard-00000.h5"] if existing else [])
    if existing:
        assert store.read_bytes(SHARD) == b"old"
    assert src.read_bytes() == data


def test_write_json_atomic(store: DatasetStore) -> None:
    store.write_json_atomic("manifest.json", {"old": True})

    record = store.write_json_atomic("manifest.json", {"b": 1, "a": [1, 2]})

    text = store.read_text("manifest.json")
    assert text == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert record == CommitRecord(
        "manifest.json", hashlib.sha256(text.encode()).hexdigest(), len(text)
    )
    assert store.listdir() == ["manifest.json"]


def test_listdir_and_remove(store: DatasetStore) -> None:
    assert store.listdir() == []
    assert store.listdir("missing/dir") == []
    for rel in ("a/x", "a/a", "a/sub/z"):
        store.write_bytes_atomic(rel, rel.encode())

    assert store.listdir() == ["a"]
    assert store.listdir("a") == ["a", "sub", "x"]
    assert store.listdir("a/x") == []
    assert store.exists("a/sub/z")

    store.remove("a/x")
    store.remove("a/never-there")
    assert store.listdir("a") == ["a", "sub"]
    assert not store.exists("a/x")


def test_file_sizes_lists_the_files_of_a_folder_fresh(store: DatasetStore) -> None:
    store.write_bytes_atomic("a/x", b"12345")
    store.write_bytes_atomic("a/sub/z", b"1")
    assert store.file_sizes("a") == {"x": 5}
    store.write_bytes_atomic("a/x", b"123")  # the same store object sees the change
    store.write_bytes_atomic("a/y", b"")
    assert store.file_sizes("a") == {"x": 3, "y": 0}
    assert store.file_sizes("missing") == {}


def test_remove_temporaries_removes_only_ours(store: DatasetStore) -> None:
    ours = [temporary_name("shard-00000.h5"), temporary_name("manifest.json")]
    mine = ["shard-00000.h5.tmp-0123abcd", "notes.txt.tmp-old", temporary_name("notes.txt")]
    for name in [*ours, *mine, "shard-00000.h5"]:
        store.write_bytes_atomic(f"waveforms/train/{name}", b"x")

    def written(name: str) -> bool:
        return temporary_of(name) in ("shard-00000.h5", "manifest.json")

    removed = store.remove_temporaries("waveforms/train", written)
    assert sorted(removed) == sorted(f"waveforms/train/{name}" for name in ours)
    assert store.remove_temporaries("waveforms/train", written) == []
    assert store.listdir("waveforms/train") == sorted([*mine, "shard-00000.h5"])


def test_temporary_of_reads_only_temporary_names() -> None:
    assert temporary_of(temporary_name("shard-00000.h5.waveforms")) == "shard-00000.h5.waveforms"
    hex32 = "0123456789abcdef" * 2
    for name in (
        "shard-00000.h5",
        "a.tmp-old",
        "a.tmp-0123abcd",
        f"a.tmp-{hex32.upper()}",
        f".tmp-{hex32}",
    ):
        assert temporary_of(name) is None, name


@pytest.mark.parametrize("rel", UNSAFE_PATHS)
def test_paths_outside_the_dataset_are_rejected(
    store: DatasetStore, tmp_path: Path, rel: str
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"data")
    attempts = [
        lambda: store.url(rel),
        lambda: store.url("waveforms", rel),
        lambda: store.exists(rel),
        lambda: store.read_bytes(rel),
        lambda: store.open(rel, "wb"),
        lambda: store.remove(rel),
        lambda: store.write_bytes_atomic(rel, b"data"),
        lambda: store.write_json_atomic(rel, {}),
        lambda: store.commit_file(src, rel),
    ]
    if rel:
        attempts += [lambda: store.listdir(rel), lambda: store.remove_temporaries(rel, bool)]
    for attempt in attempts:
        with pytest.raises(ValueError, match="unsafe dataset path"):
            attempt()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.bin"]
    assert src.read_bytes() == b"data"


def test_url_and_local_path(tmp_path: Path) -> None:
    local = DatasetStore(tmp_path / "ds")
    assert local.is_local
    assert local.url("a", "b/c") == str(tmp_path / "ds" / "a" / "b" / "c")
    assert local.local_path("a/b") == tmp_path / "ds" / "a" / "b"

    remote = DatasetStore("s3://bucket/prefix/", {"anon": True})
    assert not remote.is_local
    assert remote.url() == "s3://bucket/prefix"
    assert remote.url("a", "b/c") == "s3://bucket/prefix/a/b/c"
    with pytest.raises(ValueError, match="not on a local filesystem"):
        remote.local_path("a")


def test_lock_refuses_a_second_run_and_names_the_holder(store: DatasetStore) -> None:
    with _fast_lock(store, command="ingest"):
        with pytest.raises(DatasetLockedError) as refused:
            _fast_lock(store).acquire()
        message = str(refused.value)
        record = json.loads(store.read_text(".lock"))
    since = datetime.fromisoformat(record["started"]).strftime("since %Y-%m-%d %H:%M:%S UTC")
    for part in (f"pid {os.getpid()}", socket.gethostname(), since, "(ingest)"):
        assert part in message
    assert store.url(".lock") in message
    assert "Wait for that run to finish" in message
    assert not store.exists(".lock")


def test_lock_is_released_when_the_run_fails(store: DatasetStore) -> None:
    with pytest.raises(KeyError), _fast_lock(store):
        raise KeyError("boom")
    assert not store.exists(".lock")
    with _fast_lock(store):
        assert store.exists(".lock")


def test_lock_taken_over_meanwhile_is_left_alone(
    store: DatasetStore, caplog: pytest.LogCaptureFixture
) -> None:
    intruder = {"host": "elsewhere", "pid": 1, "started": "then", "token": "not-ours"}
    with caplog.at_level(logging.WARNING, logger="pipelines.storage"), _fast_lock(store):
        store.write_json_atomic(".lock", intruder)
    assert json.loads(store.read_text(".lock")) == intruder
    assert "no longer ours" in caplog.text


def test_stale_local_lock_of_a_dead_process_is_taken_over(
    lock_file_store: DatasetStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = lock_file_store
    pid = _dead_pid()
    stale = {"host": socket.gethostname(), "pid": pid, "started": "earlier", "token": "old"}
    store.write_json_atomic(".lock", stale)

    with caplog.at_level(logging.WARNING, logger="pipelines.storage"), _fast_lock(store) as lock:
        assert json.loads(store.read_text(".lock"))["token"] == lock.token
    assert (
        f"stale dataset lock {store.local_path('.lock')} of pid {pid}, whose run has ended"
        in caplog.text
    )
    assert store.listdir() == []


@pytest.mark.parametrize("stale", [False, True])
def test_local_lock_has_exactly_one_winner_among_racing_processes(
    lock_file_store: DatasetStore, stale: bool
) -> None:
    store = lock_file_store
    if stale:
        dead = {"host": socket.gethostname(), "pid": _dead_pid(), "started": "x", "token": "t"}
        store.write_json_atomic(".lock", dead)
    ctx = multiprocessing.get_context("spawn")
    n = 4
    start, attempted, won = ctx.Barrier(n), ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_contend, args=(store.url(), start, attempted, won)) for _ in range(n)
    ]
    for proc in procs:
        proc.start()
    results = [won.get(timeout=20) for _ in procs]
    for proc in procs:
        proc.join(timeout=20)
        assert proc.exitcode == 0
    assert sorted(results) == [False] * (n - 1) + [True]
    assert store.listdir() == []


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (json.dumps({"host": "other-host", "pid": 12345, "started": "x", "token": "t"}), "12345"),
        ("", "unknown run"),
        ("[1, 2]", "unknown run"),
    ],
    ids=["dead-pid-on-another-host", "empty", "not-a-record"],
)
def test_local_locks_that_cannot_be_judged_stale_are_respected(
    lock_file_store: DatasetStore, content: str, named: str
) -> None:
    lock_path = lock_file_store.local_path(".lock")
    lock_path.write_text(content)
    with pytest.raises(DatasetLockedError, match=named):
        _fast_lock(lock_file_store).acquire()
    assert lock_path.read_text() == content


@pytest.mark.slow
@pytest.mark.parametrize(("hours_ago", "taken_over"), [(7.0, True), (0.1, False)])
def test_remote_lock_is_taken_over_only_without_a_recent_heartbeat(
    s3_store: DatasetStore, hours_ago: float, taken_over: bool
) -> None:
    store = s3_store
    beat = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()
    old = {"host": "other", "pid": 7, "started": beat, "heartbeat": beat, "token": "old"}
    store.write_json_atomic(".lock", old)
    lock = _fast_lock(store)
    if taken_over:
        with lock:
            assert json.loads(store.read_text(".lock"))["token"] == lock.token
        assert not store.exists(".lock")
    else:
        with pytest.raises(DatasetLockedError, match="without a heartbeat for 6 h"):
            lock.acquire()
        assert json.loads(store.read_text(".lock")) == old


@pytest.mark.slow
@pytest.mark.parametrize("alive", [False, True])
def test_remote_lock_of_a_dead_process_on_this_host_is_taken_over_despite_its_heartbeat(
    s3_store: DatasetStore, caplog: pytest.LogCaptureFixture, alive: bool
) -> None:
    store = s3_store
    beat = datetime.now(UTC).isoformat()
    pid = os.getpid() if alive else _dead_pid()
    old = {"host": socket.gethostname(), "pid": pid, "heartbeat": beat, "token": "old"}
    store.write_json_atomic(".lock", old)
    lock = _fast_lock(store)
    if alive:
        with pytest.raises(DatasetLockedError, match=f"pid {pid} on host"):
            lock.acquire()
        assert json.loads(store.read_text(".lock")) == old
        return
    with caplog.at_level(logging.WARNING, logger="pipelines.storage"), lock:
        assert json.loads(store.read_text(".lock"))["token"] == lock.token
    assert f"taking over the dataset lock of pid {pid}" in caplog.text
    assert "the process is dead" in caplog.text
    assert not store.exists(".lock")


@pytest.mark.slow
def test_remote_lock_heartbeat_refreshes_the_record(s3_store: DatasetStore) -> None:
    with DatasetLock(s3_store, heartbeat_s=0.1, settle_s=0.05):
        first = json.loads(s3_store.read_text(".lock"))["heartbeat"]
        deadline = time.monotonic() + 10
        while json.loads(s3_store.read_text(".lock"))["heartbeat"] == first:
            assert time.monotonic() < deadline, "heartbeat never refreshed"
            time.sleep(0.05)
    assert not s3_store.exists(".lock")


@pytest.mark.slow
def test_remote_lock_gives_way_to_a_run_that_wrote_during_the_settle_delay(
    s3_store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    beat = datetime.now(UTC).isoformat()
    rival = {"host": "rival", "pid": 9, "started": beat, "heartbeat": beat, "token": "rival"}
    monkeypatch.setattr(storage.time, "sleep", lambda _: s3_store.write_json_atomic(".lock", rival))
    with pytest.raises(DatasetLockedError, match="pid 9 on host rival"):
        _fast_lock(s3_store).acquire()
    assert json.loads(s3_store.read_text(".lock")) == rival


def test_nearest_existing_is_the_path_or_its_closest_existing_parent(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    assert nearest_existing(tmp_path / "a") == tmp_path / "a"
    assert nearest_existing(tmp_path / "a" / "b" / "c") == tmp_path / "a"
    assert nearest_existing(tmp_path / "a" / "f" / "g") == tmp_path / "a" / "f"
