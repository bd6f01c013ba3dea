"""``audiomill prepare`` and ``download`` through the command line, and one real ingest."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.http_media_server import MediaServer
from tests.ingest_helpers import audiomill, hdf5_clips, manifest
from tests.recipe_layouts import make_fsd2019, make_urbansound8k, make_whale
from workflows.cli import app

runner = CliRunner()


def _invoke(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def _next_commands(stdout: str, prefix: str) -> list[list[str]]:
    """The command lines a command printed to run next, split as a shell would."""
    return [shlex.split(line) for line in stdout.splitlines() if line.startswith(prefix)]


@pytest.mark.slow
def test_prepare_urbansound8k_then_the_printed_ingest_command(tmp_path: Path):
    expected = make_urbansound8k(tmp_path / "UrbanSound8K", folds=3, per_fold=2)
    dataset = tmp_path / "dataset"
    res = _invoke(
        "prepare", "urbansound8k", str(tmp_path / "UrbanSound8K"),
        "--out", str(tmp_path / "prepared"), "--dataset", str(dataset),
    )  # fmt: skip
    assert "missing audio file" in res.stdout and "fold1" in res.stdout
    [command] = _next_commands(res.stdout, "audiomill ingest")
    assert command[-2:] == ["--out", str(dataset)]
    audiomill(*command[1:], "--workers", "1", "--sample-rate", "8000", cwd=tmp_path)
    splits = {k: v["num_clips"] for k, v in manifest(dataset)["splits"].items() if v["num_clips"]}
    assert splits == expected
    clips = hdf5_clips(dataset, "fold1")
    assert sorted(clips) == ["100010-2-0-0", "100011-3-0-1"]
    assert clips["100010-2-0-0"]["labels"] == [2]
    assert clips["100011-3-0-1"]["labels"] == [3]
    # Whole slices, not the CSV's start/end (positions in the original recording): 0.75 s.
    assert clips["100011-3-0-1"]["num_samples"] == 6000


def test_prepare_whale_prints_summary_and_next_command(tmp_path: Path):
    make_whale(tmp_path / "data", positives=2, negatives=8)
    res = _invoke(
        "prepare", "whale", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
        "--task", "singlelabel", "--eval-fraction", "0.5",
    )  # fmt: skip
    assert "2 classes, 10 clips" in res.stdout
    [command] = _next_commands(res.stdout, "audiomill ingest")
    assert command[command.index("--out") + 1] == str(tmp_path / "out" / "dataset")
    assert command[command.index("--audio-root") + 1] == str((tmp_path / "data").resolve())
    assert (tmp_path / "out" / "manifest.csv").read_text().count(",eval,") == 5


def test_prepare_reports_bad_input_as_errors(tmp_path: Path):
    res = _invoke("prepare", "urbansound8k", str(tmp_path / "nope"), "--out", "o", code=2)
    assert "no such directory" in res.output
    make_whale(tmp_path / "data", positives=1, negatives=1)
    res = _invoke("prepare", "whale", str(tmp_path / "data"), "--out", "o", "--task", "x", code=2)
    assert "task must be one of binary, singlelabel" in res.output


def test_prepare_fsd2019_with_no_audio_exits_1(tmp_path: Path):
    make_fsd2019(tmp_path / "fsd")
    for folder in ("train_curated", "train_noisy", "test"):
        for f in (tmp_path / "fsd" / folder).iterdir():
            f.unlink()
    res = _invoke("prepare", "fsd2019", str(tmp_path / "fsd"), "--out", str(tmp_path / "o"), code=1)
    assert "no usable clips" in res.output
    assert "train_curated.csv:2: missing audio file" in res.stdout


def test_prepare_folder_with_labels_csv(tmp_path: Path):
    from tests.media import write_media

    write_media(tmp_path / "audio" / "x.wav", 0.3, 8000)
    write_media(tmp_path / "audio" / "y.flac", 0.3, 8000)
    (tmp_path / "labels.csv").write_text("path,labels\nx.wav,Bird song;Rain\n")
    res = _invoke(
        "prepare", "folder", str(tmp_path / "audio"), "--out", str(tmp_path / "o"),
        "--labels-csv", str(tmp_path / "labels.csv"),
    )  # fmt: skip
    assert "not listed in the labels CSV" in res.stdout
    assert (tmp_path / "o" / "classes.csv").read_text().splitlines()[1:] == [
        "0,Bird_song,Bird song",
        "1,Rain,Rain",
    ]


def test_download_then_prepare_audioset(tmp_path: Path, audioset_dir: Path):
    www = tmp_path / "www"
    www.mkdir()
    for name in ("balanced_train_segments.csv", "class_labels_indices.csv"):
        (www / name).write_bytes((audioset_dir / name).read_bytes())
    (www / "eval_segments.csv").write_text(
        '# YTID, start_seconds, end_seconds, positive_labels\nabcdefghijk, 0, 10, "/m/09x0r"\n'
        "bad line\n"
    )
    (www / "unbalanced_train_segments.csv").write_text("# nothing\n")
    with MediaServer(www) as server:
        res = _invoke("download", "audioset", "--out", str(tmp_path / "as"), "--url-base",
                      server.base_url)  # fmt: skip
        again = _invoke("download", "audioset", "--out", str(tmp_path / "as"), "--url-base",
                        server.base_url)  # fmt: skip
        assert again.stdout.count("already present") == 4 and len(server.requests) == 4
    [prepare] = _next_commands(res.stdout, "audiomill prepare audioset")
    res = _invoke(*prepare[1:])
    assert "eval_segments.csv:3: malformed line" in res.stdout
    ingests = _next_commands(res.stdout, "audiomill ingest")
    splits = [c[c.index("--split") + 1] for c in ingests]
    assert splits == ["balanced_train", "eval"]  # unbalanced_train is empty: nothing to ingest
    res = _invoke("download", "audioset", "--out", str(tmp_path / "as2"), "--url-base", "ftp://x",
                  code=2)  # fmt: skip
    assert "http(s) URL" in res.output
