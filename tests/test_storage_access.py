"""A remote dataset that cannot be reached or accessed: one `DatasetAccessError` saying why."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetAccessError, DatasetStore
from tests.ingest_helpers import audiomill
from tests.s3_server import S3Server, run_s3_server, s3_server  # noqa: F401  (a fixture)

HINT = "--storage-options or $AUDIOMILL_STORAGE_OPTIONS"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _calls(store: DatasetStore) -> dict[str, object]:
    return {
        "exists": lambda: store.exists("manifest.json"),
        "read": lambda: store.read_bytes("manifest.json"),
        "open": lambda: store.open("manifest.json"),
        "listdir": lambda: store.listdir(),
        "write": lambda: store.write_json_atomic("x.json", {}),
        "load_manifest": lambda: load_manifest(store),
    }


def test_a_refused_connection_is_one_line_naming_the_dataset_and_endpoint_within_seconds():
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    options = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": endpoint}}
    store = DatasetStore("s3://bucket/ds", options)
    for name, call in _calls(store).items():
        started = time.monotonic()
        with pytest.raises(DatasetAccessError) as failed:
            call()
        assert str(failed.value) == (
            f"cannot reach the dataset at s3://bucket/ds (endpoint {endpoint}): connection refused"
        ), name
        assert time.monotonic() - started < 6, name


def test_s3_clients_retry_in_standard_mode_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    config = DatasetStore("s3://bucket/ds", {"anon": True}).fs.config_kwargs
    assert config["retries"] == {"mode": "standard"}
    own = {"anon": True, "config_kwargs": {"retries": {"mode": "legacy"}, "connect_timeout": 3}}
    config = DatasetStore("s3://bucket/ds", own).fs.config_kwargs
    assert config == {"retries": {"mode": "legacy"}, "connect_timeout": 3}
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert "retries" not in DatasetStore("s3://bucket/other", {"anon": True}).fs.config_kwargs


@pytest.mark.slow
@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_are_access_denied_naming_where_to_fix_them(
    s3_server: S3Server,  # noqa: F811
    wrong: str,
) -> None:
    url = f"s3://{s3_server.create_bucket()}/ds"
    DatasetStore(url, s3_server.storage_options).write_json_atomic("manifest.json", {})
    store = DatasetStore(url, {**s3_server.storage_options, wrong: "wrong"})
    for name, call in _calls(store).items():
        with pytest.raises(DatasetAccessError) as failed:
            call()
        assert str(failed.value) == (
            f"cannot access the dataset at {url} (endpoint {s3_server.endpoint_url}): "
            f"access denied (check the key and secret in {HINT})"
        ), name


@pytest.mark.slow
def test_no_credentials_say_so(
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    url = f"s3://{s3_server.create_bucket()}/ds"
    options = {k: v for k, v in s3_server.storage_options.items() if k not in ("key", "secret")}
    with pytest.raises(DatasetAccessError) as failed:
        load_manifest(DatasetStore(url, options))
    assert str(failed.value) == (
        f"cannot access the dataset at {url} (endpoint {s3_server.endpoint_url}): "
        f"no credentials (give a key and secret in {HINT})"
    )


@pytest.mark.slow
def test_missing_files_and_buckets_stay_file_not_found(s3_server: S3Server) -> None:  # noqa: F811
    store = DatasetStore(f"s3://{s3_server.create_bucket()}/ds", s3_server.storage_options)
    assert load_manifest(store) is None
    with pytest.raises(FileNotFoundError):
        store.read_bytes("manifest.json")
    with pytest.raises(FileNotFoundError):
        DatasetStore("s3://no-such-bucket/ds", s3_server.storage_options).read_bytes("x")


def test_every_command_says_it_in_one_line_and_exits_2():
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    options = f'{{"key": "k", "secret": "s", "client_kwargs": {{"endpoint_url": "{endpoint}"}}}}'
    for command in (["dataset", "info", "s3://bucket/ds"], ["index", "s3://bucket/ds"]):
        proc = audiomill(*command, "--storage-options", options, check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: cannot reach the dataset at s3://bucket/ds (endpoint {endpoint}): "
            "connection refused"
        )
        assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_store_gone_mid_stream_fails_reads_and_writes_of_open_files_in_one_line(tmp_path: Path):
    blob = np.random.default_rng(0).integers(0, 255, 1 << 20, dtype=np.uint8).tobytes()
    with run_s3_server(tmp_path) as server:
        url = f"s3://{server.create_bucket()}/ds"
        store = DatasetStore(url, server.storage_options)
        store.write_bytes_atomic("blob.bin", blob)
        with h5py.File(tmp_path / "shard.h5", "w") as hf:
            hf["waveform"] = np.arange(1 << 18, dtype=np.int16)
        store.write_bytes_atomic("shard.h5", (tmp_path / "shard.h5").read_bytes())
        reader = store.open("blob.bin", block_size=1 << 16)
        assert reader.read(1000) == blob[:1000]
        shard = h5py.File(store.open("shard.h5", block_size=1 << 14), "r")
        assert shard["waveform"][:10].tolist() == list(range(10))
        writer = store.open("out.bin", "wb")
        writer.write(b"x" * 100)
    where = f"{url} (endpoint {server.endpoint_url})"
    for name, call in {
        "read": reader.read,
        "hdf5 read": lambda: shard["waveform"][:],
        "write": writer.close,
    }.items():
        with pytest.raises(DatasetAccessError) as failed:
            call()
        assert str(failed.value) == f"cannot reach the dataset at {where}: connection refused", name
