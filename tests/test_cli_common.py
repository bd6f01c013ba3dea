"""The pieces the commands share: ``--format`` and ``--storage-options`` parsing, errors, and
the warnings of audiomill's modules under a progress bar."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from tests.ingest_helpers import audiomill
from tests.media import write_media
from workflows.cli_common import fail, local_dir, parse_formats, storage_options_from


def test_parse_formats_adds_up_repeated_and_comma_separated_values():
    assert parse_formats(None) == ("hdf5",)
    assert parse_formats([]) == ("hdf5",)
    assert parse_formats(["parquet"]) == ("parquet",)
    assert parse_formats(["hdf5", "parquet"]) == ("hdf5", "parquet")
    assert parse_formats(["parquet, hdf5", "hdf5"]) == ("parquet", "hdf5")


def test_parse_formats_refuses_unknown_formats_naming_the_values(capsys):
    for values in (["mp4"], ["hdf5", "wav"], [","]):
        with pytest.raises(typer.Exit) as exited:
            parse_formats(values)
        assert exited.value.exit_code == 2
        err = capsys.readouterr().err
        assert "--format must be among hdf5, parquet" in err and ", ".join(values) in err


def test_storage_options_from_text_or_environment(monkeypatch):
    monkeypatch.delenv("AUDIOMILL_STORAGE_OPTIONS", raising=False)
    assert storage_options_from(None) is None
    assert storage_options_from('{"anon": true}') == {"anon": True}
    monkeypatch.setenv("AUDIOMILL_STORAGE_OPTIONS", '{"key": "k"}')
    assert storage_options_from(None) == {"key": "k"}
    for bad in ("{nope", "[1, 2]"):
        with pytest.raises(typer.BadParameter) as refused:
            storage_options_from(bad)
        assert refused.value.param_hint == "--storage-options"


@pytest.mark.parametrize("bad", ["{nope", "[1, 2]"])
def test_bad_storage_options_from_the_environment_name_the_variable(monkeypatch, bad):
    monkeypatch.setenv("AUDIOMILL_STORAGE_OPTIONS", bad)
    with pytest.raises(typer.BadParameter) as refused:
        storage_options_from(None)
    assert refused.value.format_message().startswith(
        "Invalid value for $AUDIOMILL_STORAGE_OPTIONS: "
    )


def test_fail_prints_the_message_and_exits_with_the_code(capsys):
    with pytest.raises(typer.Exit) as exited:
        fail("no such file: [x].wav", code=1)
    assert exited.value.exit_code == 1
    assert "error: no such file: [x].wav" in capsys.readouterr().err


def test_local_dir_refuses_a_url(capsys):
    assert local_dir("runs/att", "train") == Path("runs/att")
    with pytest.raises(typer.Exit) as exited:
        local_dir("s3://bucket/runs/att", "train")
    assert exited.value.exit_code == 2
    err = capsys.readouterr().err
    assert "--out s3://bucket/runs/att: train writes to a local directory" in err


@pytest.mark.slow
def test_a_warning_logged_under_a_progress_bar_is_a_line_of_the_command(tmp_path: Path):
    audio = tmp_path / "audio" / "zero"
    audio.mkdir(parents=True)
    write_media(audio / "a.wav", 1.0, 8000)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "ds"
    out.mkdir()
    stale = {"host": socket.gethostname(), "pid": dead.pid, "started": "then", "token": "t"}
    (out / ".lock").write_text(json.dumps(stale))
    args = ["--sample-rate", "8000", "--clip-seconds", "1", "--workers", "1"]
    proc = audiomill("ingest", "--segments", str(tmp_path / "audio"), "--out", str(out), *args)
    lock = out / ".lock"
    note = f"warning: removed stale dataset lock {lock} of pid {dead.pid}, whose run has ended "
    assert any(line.startswith(note) for line in proc.stderr.splitlines()), proc.stderr
    assert "WARNING:" not in proc.stderr
