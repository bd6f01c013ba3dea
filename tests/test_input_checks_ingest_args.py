"""Ingest options no run could succeed with are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.sources import audio_root_problem
from tests.ingest_helpers import audiomill
from tests.media import write_media


def _list(root: Path) -> Path:
    """A one-clip manifest of a.wav beside it."""
    write_media(root / "a.wav", 1.0, 16000)
    rows = root / "m.csv"
    rows.write_text("path,labels\na.wav,Alpha\n")
    return rows


def _refused(tmp_path: Path, *extra: str) -> str:
    """Run ingest with ``extra`` options; assert exit 2, no traceback and no dataset; return
    stderr."""
    rows = tmp_path / "m.csv" if (tmp_path / "m.csv").exists() else _list(tmp_path)
    out = tmp_path / "ds"
    proc = audiomill("ingest", "--segments", str(rows), "--out", str(out), *extra, check=False)
    assert proc.returncode == 2, (extra, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists(), extra
    return proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # D5: a clip longer than the longest segment allowed grew to 24 GB
        (["--clip-seconds", "100000"],
         "--clip-seconds must be at most 60 s (the longest segment allowed), not 100000"),
        (["--clip-seconds", "60.5"], "--clip-seconds must be at most 60 s"),
        # D6: a rate whose 100 ms frames hold no sample ended in a traceback
        (["--sample-rate", "1"], "--sample-rate must be 1000 to 384000 Hz, not 1"),
        (["--sample-rate", "999"], "--sample-rate must be 1000 to 384000 Hz, not 999"),
        (["--sample-rate", "384001"], "--sample-rate must be 1000 to 384000 Hz, not 384001"),
        # D14: fractions outside [0, 1] made every clip a permanent failure
        (["--max-silence", "-1"], "--max-silence must be in [0, 1], not -1"),
        (["--max-silence", "1.5"], "--max-silence must be in [0, 1], not 1.5"),
        (["--max-clipping", "-0.1"], "--max-clipping must be in [0, 1], not -0.1"),
        (["--max-clipping", "2"], "--max-clipping must be in [0, 1], not 2"),
        (["--max-clipping", "nan"], "--max-clipping must be in [0, 1], not nan"),
        # an infinite --timeout ended every fetch in an OverflowError traceback, one over the
        # longest a socket can wait failed every fetched clip for good as 'unavailable'
        (["--timeout", "inf"], "--timeout must be at most 9223372036 s (the longest a socket "
         "can wait), not inf"),
        (["--timeout", "1e10"], "--timeout must be at most 9223372036 s (the longest a socket "
         "can wait), not 1e+10"),
    ],
)  # fmt: skip
def test_out_of_range_clip_options_are_refused(tmp_path: Path, extra: list[str], message: str):
    assert message in _refused(tmp_path, *extra)


def test_a_missing_audio_root_is_refused_before_the_dataset_is_made(tmp_path: Path):
    _list(tmp_path)
    missing = tmp_path / "nonexistent"
    assert f"--audio-root {missing}: no such folder" in _refused(
        tmp_path, "--audio-root", str(missing)
    )
    a_file = tmp_path / "a.wav"
    assert f"--audio-root {a_file}: not a folder" in _refused(tmp_path, "--audio-root", str(a_file))
    proc = audiomill("segments", "inspect", str(tmp_path / "m.csv"), "--audio-root", str(missing),
                     check=False)  # fmt: skip
    assert proc.returncode == 2
    assert f"--audio-root {missing}: no such folder" in proc.stderr


def test_audio_root_problem(tmp_path: Path):
    (tmp_path / "f.wav").write_bytes(b"")
    assert audio_root_problem(str(tmp_path)) is None
    assert audio_root_problem(str(tmp_path / "f.wav")) == "not a folder"
    assert audio_root_problem(str(tmp_path / "none")) == "no such folder"
    assert audio_root_problem(f"file://{tmp_path}") is None
    assert audio_root_problem(f"file://{tmp_path}/none") == "no such folder"
    assert audio_root_problem("http://127.0.0.1:9/audio") is None  # servers list no folders


@pytest.mark.parametrize(
    ("rate", "seconds", "samples"),
    [
        # every clip failed as 'decode_error: decoded to 0 frames' and the dataset was made
        ("8000", "0.00001", "0.08"),
        # half a sample rounds to none (round half to even): a traceback in the shard writer
        ("8000", "0.0000625", "0.5"),
    ],
)
def test_a_clip_of_no_sample_is_refused(tmp_path: Path, rate: str, seconds: str, samples: str):
    stderr = _refused(tmp_path, "--sample-rate", rate, "--clip-seconds", seconds)
    assert (
        f"--clip-seconds {float(seconds):g} at --sample-rate {rate} is {samples} samples, "
        "which rounds to 0: a clip must hold at least one sample" in stderr
    ), stderr


def test_a_clip_of_one_sample_runs(tmp_path: Path):
    rows = _list(tmp_path)
    out = tmp_path / "ds"
    audiomill("ingest", "--segments", str(rows), "--out", str(out), "--sample-rate", "8000",
              "--clip-seconds", "0.000125", "--min-coverage", "0.01")  # fmt: skip
    assert (out / "manifest.json").exists()


def test_limits_in_range_still_run(tmp_path: Path):
    rows = _list(tmp_path)
    out = tmp_path / "ds"
    audiomill("ingest", "--segments", str(rows), "--out", str(out), "--clip-seconds", "1",
              "--sample-rate", "1000", "--max-silence", "1", "--max-clipping", "0",
              "--audio-root", str(tmp_path))  # fmt: skip
    assert (out / "manifest.json").exists()
