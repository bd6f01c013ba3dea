"""``audiomill predict`` scores audio at a URL (``s3://...``) as ingest reads it, where it took
the URL for a missing local file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.inference_fixtures import Served, served_runs
from tests.s3_server import S3Server
from workflows.cli import app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def test_predict_a_file_on_an_object_store(
    served: Served, s3_server: S3Server, tmp_path: Path, monkeypatch
) -> None:
    audio = tmp_path / "tone.wav"
    sf.write(audio, 0.3 * np.sin(2 * np.pi * 300 * np.arange(4000) / 16000), 16000)
    url = f"s3://{s3_server.create_bucket()}/in/tone.wav"
    s3_server.filesystem().put(str(audio), url)
    options = ["--storage-options", json.dumps(s3_server.storage_options)]
    args = ["predict", str(served.wave), str(audio), url, "--top-k", "3", "--json", *options]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    local, remote = json.loads(result.stdout)
    assert remote["input"] == url and remote["kind"] == "file" and remote["windows"] == 4
    assert remote["top"] == local["top"]
    missing = CliRunner().invoke(app, ["predict", str(served.wave), url + ".gone", *options])
    assert missing.exit_code == 1  # each input that fails is reported, the others scored
    assert f"not_found: no such object: {url}.gone" in missing.output.replace("\n", "")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    endpoint = {"client_kwargs": s3_server.storage_options["client_kwargs"]}
    anonymous = ["--storage-options", json.dumps({**endpoint, "skip_instance_cache": True})]
    no_keys = CliRunner().invoke(app, ["predict", str(served.wave), url, *anonymous])
    assert no_keys.exit_code == 1
    assert f"cannot access {url}: no credentials" in no_keys.output.replace("\n", "")
