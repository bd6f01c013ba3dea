"""The quickstart's ingest stage resumes a dataset it committed clips to: the demo's URLs, which
the ledger records as the clips' sources, are the same on every run over a demo folder."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer

from workflows.demo import make_demo
from workflows.demo_server import PORT_FILE, ingest_demo_over_http


def _ingest(demo: Path, out: Path) -> dict:
    return ingest_demo_over_http(str(demo), str(out), workers=1, clip_seconds=1.0, shard_clips=4)


def _hold_a_port() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1, so that no other server takes it."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


@pytest.mark.slow
def test_ingests_of_the_demo_resume_whatever_the_clips_per_class(tmp_path: Path) -> None:
    demo, out = tmp_path / "demo-audio", tmp_path / "dataset"
    make_demo(demo, clips_per_class=1, seconds=1.0)
    first = _ingest(demo, out)
    assert first["clips"] == 5
    urls = (demo / "url-manifest.csv").read_text()
    with _hold_a_port():  # the free port a second server would take were the port not recorded
        again = _ingest(demo, out)
    assert again["clips"] == 0 and again["dataset_clips"] == 5
    assert (demo / "url-manifest.csv").read_text() == urls
    make_demo(demo, clips_per_class=2, seconds=1.0)  # as the quickstart's --clips-per-class 2
    more = _ingest(demo, out)
    assert more["clips"] == 5 and more["dataset_clips"] == 10


def test_a_demo_whose_port_is_taken_is_one_error_line(tmp_path: Path, capsys) -> None:
    demo = tmp_path / "demo-audio"
    make_demo(demo, clips_per_class=1, seconds=0.5)
    with _hold_a_port() as holder:
        port = holder.getsockname()[1]
        (demo / PORT_FILE).write_text(f"{port}\n")
        with pytest.raises(typer.Exit):
            _ingest(demo, tmp_path / "dataset")
    err = " ".join(capsys.readouterr().err.split())
    assert f"{demo / PORT_FILE}: port {port} of 127.0.0.1" in err and "new --out" in err
    assert not (tmp_path / "dataset").exists()
