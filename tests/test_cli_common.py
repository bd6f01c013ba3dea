"""The pieces the commands share: ``--format`` and ``--storage-options`` parsing, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

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
