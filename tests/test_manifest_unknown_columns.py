"""A manifest column the format does not know is one error about the header, written nowhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.ingest_helpers import audiomill
from tests.shared_data import FSDD_RECORDINGS

RECORDINGS = FSDD_RECORDINGS
FSDD_LABELS = RECORDINGS.parent / "labels.csv"
ACCEPTED = "path or url, start_seconds, end_seconds, labels, split, clip_id"


def _work(tmp_path: Path) -> Path:
    for name, wav in (("a.wav", "0_jackson_0.wav"), ("b.wav", "1_jackson_0.wav")):
        shutil.copy(RECORDINGS / wav, tmp_path / name)
    (tmp_path / "c2.csv").write_text("index,mid,display_name\n0,zero,zero\n1,one,one\n")
    return tmp_path


def test_an_unknown_csv_column_is_one_header_error_before_anything_is_written(tmp_path: Path):
    work = _work(tmp_path)
    (work / "lab.csv").write_text("path,Label\na.wav,zero\nb.wav,one\n")
    error = (
        f"error: {work / 'lab.csv'}:1: the header names unknown column 'Label'; a manifest's "
        f"columns are {ACCEPTED}\n"
    )
    runs = [
        ("ingest", "--segments", str(work / "lab.csv"), "--out", str(work / "L1")),
        ("ingest", "--segments", str(work / "lab.csv"), "--classes", str(work / "c2.csv"),
         "--out", str(work / "L2")),
        ("segments", "inspect", str(work / "lab.csv")),
        ("segments", "inspect", str(work / "lab.csv"), "--classes", str(work / "c2.csv")),
    ]  # fmt: skip
    for args in runs:
        proc = audiomill(*args, check=False)
        assert (proc.returncode, proc.stderr, proc.stdout) == (2, error, ""), args
    assert not (work / "L1").exists() and not (work / "L2").exists()


def test_fsdd_labels_csv_gets_one_line_naming_its_unknown_columns(tmp_path: Path):
    proc = audiomill("ingest", "--segments", str(FSDD_LABELS), "--out", str(tmp_path / "d"),
                     check=False)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {FSDD_LABELS}:1: the header names unknown columns 'digit', 'speaker', 'index', "
        "'gender', 'accent', 'sample_rate', 'channels', 'num_samples', 'duration_s'; a "
        f"manifest's columns are {ACCEPTED}\n"
    )
    assert not (tmp_path / "d").exists()


def test_an_unknown_jsonl_key_is_a_problem_of_its_line_naming_the_accepted_keys(tmp_path: Path):
    work = _work(tmp_path)
    rows = [{"path": "a.wav", "label": "zero"}, {"path": "b.wav", "labels": "one"}]
    listed = work / "m.jsonl"
    listed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reason = f"unknown key 'label'; a manifest's keys are {ACCEPTED}"
    proc = audiomill("segments", "inspect", str(listed), "--classes", str(work / "c2.csv"),
                     check=False)  # fmt: skip
    assert proc.returncode == 1
    assert f"{listed}:1: {reason}" in proc.stdout
    assert "1 problem line(s)" in proc.stdout
    listed.write_text(json.dumps(rows[0]) + "\n")
    proc = audiomill("ingest", "--segments", str(listed), "--out", str(work / "d"), check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {listed}:1: every row is malformed (1), so no labels found to make a class map; "
        f"the first: {reason}: {json.dumps(rows[0])!r}\n"
    )
