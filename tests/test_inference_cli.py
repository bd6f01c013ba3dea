"""``audiomill predict``, ``search`` and ``export`` end to end through the CLI app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.inference_fixtures import Served, served_runs
from workflows.cli import app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def test_predict_cli_files_and_clip_ids(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    audio = tmp_path / "tone.wav"
    sf.write(audio, 0.3 * np.sin(2 * np.pi * 300 * np.arange(4000) / 16000), 16000)
    args = ["predict", str(served.wave), str(audio), "eval-clip0002_2000", "--dataset"]
    args += [str(served.root), "--top-k", "2", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    file_row, clip_row = json.loads(result.stdout)
    assert file_row["kind"] == "file" and file_row["windows"] == 4
    assert clip_row["kind"] == "clip" and clip_row["labels"] == ["sound 2"]
    assert clip_row["split"] == "eval"
    for row in (file_row, clip_row):
        assert len(row["top"]) == 2 and row["top"][0]["score"] >= row["top"][1]["score"]
        assert {t["display_name"] for t in row["top"]} <= {"sound 0", "sound 1", "sound 2"}

    table = runner.invoke(app, args[:-1])
    assert table.exit_code == 0 and "rank" in table.stdout
    assert "4 windows" in table.stdout and "labels: sound 2" in table.stdout
    no_dataset = runner.invoke(app, ["predict", str(served.wave), "missing.wav"])
    assert no_dataset.exit_code == 2 and "--dataset" in no_dataset.output
    unknown = runner.invoke(app, [*args[:4], "no-such-clip", *args[5:]])
    assert unknown.exit_code == 2 and "no-such-clip" in unknown.output
    vggish = runner.invoke(app, ["predict", str(served.emb), str(audio)])
    assert vggish.exit_code == 2 and "--checkpoint" in vggish.output
    given = runner.invoke(app, [*args[:3], "--checkpoint", "vggish_model.ckpt"])
    message = (
        f"error: run {served.wave} scores waveforms: --checkpoint and --pca-params are for "
        "runs on VGGish embeddings"
    )
    assert given.exit_code == 2 and message in given.output.splitlines()


def test_search_cli(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    shutil.copytree(served.emb, run)
    args = ["search", str(run), str(served.root), "sound 0", "--top", "5"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["matched"] == [{"display_name": "sound 0", "mid": "sound 0"}]
    assert [h["labels"] for h in found["hits"]] == [["sound 0"]] * 5
    assert not found["cached"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "eval-clip" in table.stdout
    assert "cached scores" in table.output
    bad = runner.invoke(app, ["search", str(run), str(served.root), "snd"])
    assert bad.exit_code == 2 and "did you mean" in bad.output and "sound" in bad.output
    split = runner.invoke(app, [*args, "--split", "dev"])
    assert split.exit_code == 2 and "no committed shards" in split.output


def test_export_cli(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "export"
    result = runner.invoke(
        app, ["export", str(served.wave), "--out", str(out), "--weights", "last"]
    )
    assert result.exit_code == 0, result.output
    assert "8000 Hz" in result.stdout
    assert {p.name for p in out.iterdir()} == {"saved_model", "export.json", "classes.csv"}
    assert json.loads((out / "export.json").read_text())["weights"] == "last.weights.h5"
    again = runner.invoke(app, ["export", str(served.wave), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in out.iterdir()) == ["classes.csv", "export.json", "saved_model"]
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code == 2 and "not a training run" in missing.output
