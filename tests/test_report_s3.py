"""``audiomill report --out s3://...`` writes the report to the object store with the storage
options, where it failed for want of credentials."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.dataset_builders import make_dataset
from tests.s3_server import S3Server
from workflows.cli import app


def test_report_to_an_object_store(s3_server: S3Server, tmp_path: Path) -> None:
    built = make_dataset(tmp_path / "ds", {"train": [[0], [1], [0, 1]]}, num_classes=2)
    url = f"s3://{s3_server.create_bucket()}/report"
    args = ["report", str(built.root), "--out", url, "--scheduler", "threads"]
    args += ["--storage-options", json.dumps(s3_server.storage_options)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"report written to {url}/index.html" in result.output
    fs = s3_server.filesystem()
    summary = json.loads(fs.cat(f"{url}/summary.json"))
    assert summary["splits"]["train"]["committed_clips"] == 3
    assert b"<html" in fs.cat(f"{url}/index.html")
