"""Modeling commands write with local file calls: a URL ``--out`` is refused in one line, where
it was collapsed to a local folder ``./s3:/...``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from workflows.cli import app


@pytest.mark.parametrize(
    "args",
    [
        ["train", "ds"],
        ["sweep", "ds"],
        ["evaluate", "run", "ds"],
        ["export", "run"],
    ],
)
def test_url_out_is_refused(args: list[str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*args, "--out", "s3://bucket/x"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"error: --out s3://bucket/x: {args[0]} writes to a local directory, not "
                     "a URL; give a local path and copy the result to the object store "
                     "afterwards"], lines  # fmt: skip
    assert not list(tmp_path.iterdir())
