"""Hostile and malformed input, concurrent runs, inspection and verification through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import pytest

from tests.ingest_helpers import audiomill, hdf5_clips, ledger, manifest
from tests.media import write_media

CLASSES = "index,mid,display_name\n0,/m/a,Alpha\n1,/m/b,Beta\n"


def _one_clip_list(root: Path) -> Path:
    """A manifest of one 1 s clip, a.wav labelled Alpha, beside classes.csv (:data:`CLASSES`)."""
    write_media(root / "a.wav", 1.0, 16000)
    (root / "classes.csv").write_text(CLASSES)
    rows = root / "manifest.csv"
    rows.write_text("path,labels\na.wav,Alpha\n")
    return rows


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.slow
def test_hostile_ids_never_become_commands_or_paths(tmp_path: Path):
    audio = tmp_path / "audio"
    write_media(audio / "good_id_001.wav", 3.0, 16000)
    write_media(audio / "Ygood_id_002.wav", 2.0, 16000)
    (tmp_path / "classes.csv").write_text(CLASSES)
    long_id = "L" * 300
    segs = tmp_path / "segments.csv"
    segs.write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'good_id_001, 0.000, 2.000, "/m/a"\n'
        'good_id_002, 30.000, 32.000, "/m/b,/m/a"\n'
        '--exec=touch x, 0.000, 2.000, "/m/a"\n'
        '../../etc/passwd, 0.000, 2.000, "/m/a"\n'
        '$(reboot), 0.000, 2.000, "/m/a"\n'
        'héllo_wörld, 0.000, 2.000, "/m/a"\n'
        f'{long_id}, 0.000, 2.000, "/m/a"\n'
        'good_id_003, 5.000, 2.000, "/m/a"\n'
        'good_id_004, 0.000, 2.000, "/m/unknown"\n'
        "broken line without fields\n"
        'good_id_001, 0.000, 2.000, "/m/a"\n'
    )
    work = tmp_path / "cwd"
    work.mkdir()
    before = _tree(tmp_path) - _tree(work)
    out = tmp_path / "ds"
    proc = audiomill(
        "ingest", "--segments", str(segs), "--classes", str(tmp_path / "classes.csv"),
        "--out", str(out), "--audio-root", str(audio), "--sample-rate", "8000",
        "--clip-seconds", "2", "--workers", "1", cwd=work,
    )  # fmt: skip
    assert "segments.csv:12: duplicate clip id 'good_id_001_0' (first on line 2)" in proc.stderr
    assert "segments.csv:11: expected 4 fields" in proc.stderr
    rows = ledger(out)
    assert rows["good_id_001_0"]["status"] == "ok"
    assert rows["good_id_002_30000"]["status"] == "ok"
    for bad in (
        "--exec=touch x_0",
        "../../etc/passwd_0",
        "$(reboot)_0",
        "héllo_wörld_0",
        f"{long_id}_0",
        "good_id_003_5000",
        "good_id_004_0",
    ):
        assert rows[bad]["status"] == "failed", bad
        assert rows[bad]["reason"] == "validation", bad
    assert "expect_column_values_to_match_regex" in rows["$(reboot)_0"]["detail"]
    assert rows["good_id_004_0"]["detail"] == (
        "labels not in the class map: '/m/unknown' "
        "[expect_column_values_to_be_between:num_unknown_labels]"
    )
    assert rows["good_id_003_5000"]["detail"].startswith("end 2 s is not after start 5 s [")
    # 11 lines of segments: the duplicate is one malformed line, not a segment as well
    assert manifest(out)["runs"][-1]["requested"] == 11
    # the run lists its failures with their list line, reason and detail
    assert "7 clip(s) failed:" in proc.stderr
    assert "segments.csv:9: good_id_003_5000: validation: end 2 s is not after start 5 s" in (
        proc.stderr
    )
    listed = audiomill("dataset", "failures", str(out), "--reason", "validation", "--json")
    failures = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [f["line"] for f in failures] == [4, 5, 6, 7, 8, 9, 10]
    assert failures[5]["clip_id"] == "good_id_003_5000"
    assert failures[5]["detail"] == rows["good_id_003_5000"]["detail"]
    refused = audiomill("dataset", "failures", str(out), "--reason", "not_found", check=False)
    assert refused.returncode == 2 and "its reasons: validation" in refused.stderr, refused.stderr
    assert list(work.iterdir()) == []
    after = _tree(tmp_path) - _tree(work) - _tree(out) - {out}
    assert after == before
    assert not Path("/etc/passwd_0").exists()
    clips = hdf5_clips(out)
    assert clips["good_id_002_30000"]["audio_name"] == "Ygood_id_002.wav"
    assert clips["good_id_002_30000"]["labels"] == [0, 1]


@pytest.mark.slow
def test_second_concurrent_run_is_refused(tmp_path: Path):
    from pipelines.storage import DatasetLock, DatasetStore

    write_media(tmp_path / "a.wav", 1.0, 8000)
    (tmp_path / "m.csv").write_text("path,labels\na.wav,x\n")
    out = tmp_path / "ds"
    out.mkdir()
    with DatasetLock(DatasetStore(str(out)), {"host": "test", "pid": os.getpid()}):
        proc = audiomill(
            "ingest", "--segments", str(tmp_path / "m.csv"), "--out", str(out), check=False
        )
    assert proc.returncode == 2
    assert "lock" in proc.stderr.lower() and str(os.getpid()) in proc.stderr
    assert not (out / "manifest.json").exists()


def test_bad_arguments_get_clear_errors(tmp_path: Path):
    (tmp_path / "m.csv").write_text("path,labels\na.wav,x\n")
    cases = [
        (["--source", "ftp"], "--source must be one of"),
        (["--source", "http"], "--url-template"),
        (["--sample-rate", "0"], "--sample-rate must be positive"),
        (["--format", "mp4"], "--format must be among"),
        (["--retries", "-1"], "--retries must be 0 or more, not -1"),
        (["--timeout", "0"], "--timeout must be positive, not 0"),
        (["--cookies", str(tmp_path / "nope.txt")], "no such file"),
        (["--cookies", str(tmp_path / "m.csv")], f"--cookies {tmp_path / 'm.csv'}: not a Netscape "
         "cookies file ("),
        # Beam's options go after --: a misspelt option of ours is not passed on to Beam
        (["--shards", "4"], "No such option: --shards"),
        (["--sample_rate", "8000"], "No such option: --sample_rate"),
        (["--", "--runer=DataflowRunner", "--foo", "x"], "Beam does not know the option(s) "
         "--foo, --runer given after --"),
    ]  # fmt: skip
    for extra, message in cases:
        proc = audiomill(
            "ingest",
            "--segments",
            str(tmp_path / "m.csv"),
            "--out",
            str(tmp_path / "ds"),
            *extra,
            check=False,
        )
        assert proc.returncode == 2, (extra, proc.stderr)
        assert message in proc.stderr, (extra, proc.stderr)
        assert not (tmp_path / "ds").exists(), extra
    proc = audiomill(
        "ingest",
        "--segments",
        str(tmp_path / "nope.csv"),
        "--out",
        str(tmp_path / "ds"),
        check=False,
    )
    assert proc.returncode == 2 and "nope.csv" in proc.stderr


def test_segments_inspect_real_audioset(audioset_dir: Path):
    proc = audiomill(
        "segments", "inspect", str(audioset_dir / "balanced_train_segments.csv"),
        "--classes", str(audioset_dir / "class_labels_indices.csv"), "--json",
    )  # fmt: skip
    rep = json.loads(proc.stdout)
    assert rep["segments"] == 22160
    assert rep["positive_labels"] == 52882
    assert rep["classes_used"] == 527
    assert rep["problems"] == [] and rep["notes"] == []  # the header's counts are the list's


def test_segments_inspect_lists_every_bad_line(tmp_path: Path, audioset_dir: Path):
    segs = tmp_path / "s.csv"
    segs.write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'aaaaaaaaaaa, 0.000, 10.000, "/m/09x0r"\n'
        'bbbbbbbbbbb, 10.000, 5.000, "/m/09x0r"\n'
        "ccccccccccc, 0.000\n"
        'ddddddddddd, 0.000, 10.000, "/m/nothing"\n'
        'aaaaaaaaaaa, 0.000, 10.000, "/m/09x0r"\n'
    )
    proc = audiomill(
        "segments",
        "inspect",
        str(segs),
        "--classes",
        str(audioset_dir / "class_labels_indices.csv"),
        check=False,
    )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(str(segs))]
    assert [ln.split(":")[1] for ln in lines] == ["3", "4", "5", "6"]
    assert "labels not in the class map: '/m/nothing'" in proc.stdout
    assert "duplicate" in lines[3]


@pytest.mark.slow
def test_verify_detects_corruption(tmp_path: Path):
    for i in range(4):
        write_media(tmp_path / f"a{i}.wav", 1.0, 8000, seed=i)
    (tmp_path / "m.csv").write_text("path,labels\n" + "".join(f"a{i}.wav,x\n" for i in range(4)))
    out = tmp_path / "ds"
    audiomill(
        "ingest",
        "--segments",
        str(tmp_path / "m.csv"),
        "--out",
        str(out),
        "--sample-rate",
        "8000",
        "--clip-seconds",
        "1",
        "--shard-clips",
        "2",
        "--workers",
        "1",
    )
    assert "OK" in audiomill("dataset", "verify", str(out)).stdout
    shard = out / manifest(out)["splits"]["train"]["shards"][1]["files"]["hdf5"]["path"]
    with h5py.File(shard, "r+") as hf:
        hf["waveform"][0, :10] = 1234
    proc = audiomill("dataset", "verify", str(out), check=False)
    assert proc.returncode == 1
    assert "shard-00001.h5: sha256 mismatch" in proc.stdout


@pytest.mark.slow
def test_manifest_naming_every_split_leaves_no_empty_default_split(tmp_path: Path):
    for name in ("a", "b"):
        write_media(tmp_path / f"{name}.wav", 1.0, 16000)
    (tmp_path / "classes.csv").write_text(CLASSES)
    rows = tmp_path / "manifest.csv"
    rows.write_text("path,labels,split\na.wav,Alpha,fold1\nb.wav,Beta,fold2\na.wav,Beta,fold3\n")
    out = tmp_path / "ds"
    audiomill("ingest", "--segments", str(rows), "--classes", str(tmp_path / "classes.csv"),
              "--out", str(out), "--sample-rate", "8000", "--clip-seconds", "1",
              "--workers", "1", cwd=tmp_path)  # fmt: skip
    splits = manifest(out)["splits"]
    assert set(splits) == {"fold1", "fold2"}  # not fold3: its only row repeats a.wav
    assert [splits[s]["num_clips"] for s in ("fold1", "fold2")] == [1, 1]
    # the segment suite's report, written in the background, is there when the run ends
    run_id = manifest(out)["runs"][-1]["run_id"]
    reports = {p.name for p in (out / "reports" / "validation").iterdir()}
    assert {f"segments-{run_id}.json", f"segments-{run_id}.html"} <= reports


def test_unsafe_split_names_are_refused_before_anything_is_written(tmp_path: Path):
    rows = _one_clip_list(tmp_path)
    out = tmp_path / "ds"
    proc = audiomill("ingest", "--segments", str(rows), "--classes", str(tmp_path / "classes.csv"),
                     "--out", str(out), "--split", "../up", "--workers", "1", cwd=tmp_path,
                     check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "--split: split '../up' is not a valid split name" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_formats_add_up_and_a_dataset_keeps_its_settings(tmp_path: Path):
    rows = _one_clip_list(tmp_path)
    out = tmp_path / "ds"
    base = ["ingest", "--segments", str(rows), "--out", str(out), "--workers", "1"]
    ours = ["--classes", str(tmp_path / "classes.csv"), "--sample-rate", "8000",
            "--clip-seconds", "1"]  # fmt: skip
    beam = ["--", "--direct_running_mode=in_memory"]
    audiomill(*base, *ours, "--format", "hdf5", "--format", "parquet", *beam, cwd=tmp_path)
    assert manifest(out)["formats"] == ["hdf5", "parquet"]
    assert manifest(out)["runs"][-1]["config"]["beam_args"] == beam[1:]
    assert {p.name for p in (out / "waveforms" / "train").iterdir()} == {
        "shard-00000.h5",
        "shard-00000.parquet",
    }
    before = (out / "manifest.json").read_bytes()
    (tmp_path / "other.csv").write_text(CLASSES.replace("Beta", "Gamma"))
    both = ["--format", "hdf5,parquet"]
    refusals = [
        ([*ours, *both, "--sample-rate", "16000"], "it is at 8000 Hz, not 16000"),
        ([*ours, *both, "--clip-seconds", "2"], "its clips are 1.0 s, not 2.0"),
        ([*ours, "--format", "hdf5"], "its shards are hdf5,parquet, not hdf5 (--format)"),
        ([*ours, *both, "--classes", str(tmp_path / "other.csv")], "class map differs"),
    ]
    for extra, message in refusals:  # a repeated option's last value counts
        proc = audiomill(*base, *extra, cwd=tmp_path, check=False)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert "cannot add to the existing dataset" in proc.stderr and message in proc.stderr
        assert (out / "manifest.json").read_bytes() == before
    # the same formats in another order are the same dataset: the re-run skips the clip
    proc = audiomill(*base, *ours, "--format", "parquet,hdf5", cwd=tmp_path)
    assert "1 already done" in proc.stdout + proc.stderr
    assert manifest(out)["splits"]["train"]["num_clips"] == 1


def test_a_list_without_segments_is_refused_before_the_dataset_is_made(tmp_path: Path):
    (tmp_path / "classes.csv").write_text(CLASSES)
    for name, text in (("empty.csv", ""), ("header.csv", "path,labels\n")):
        (tmp_path / name).write_text(text)
        for classes in (["--classes", str(tmp_path / "classes.csv")], []):
            proc = audiomill("ingest", "--segments", str(tmp_path / name), *classes,
                             "--out", str(tmp_path / "ds"), check=False)  # fmt: skip
            if not classes and name == "header.csv":  # no labels to make a class map of
                assert proc.returncode == 2 and "no labels found" in proc.stderr
                continue
            assert proc.returncode == 2, proc.stderr
            assert f"{tmp_path / name}: the list holds no segments" in proc.stderr
            assert not (tmp_path / "ds" / "classes.csv").exists()
            assert not (tmp_path / "ds" / "manifest.json").exists()


def test_an_output_that_cannot_be_a_directory_gets_a_clear_error(tmp_path: Path):
    (tmp_path / "m.csv").write_text("path,labels\na.wav,x\n")
    (tmp_path / "afile").write_text("not a dataset")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        proc = audiomill("ingest", "--segments", str(tmp_path / "m.csv"), "--out", str(out),
                         check=False)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert f"cannot write the dataset at {out}: {tmp_path / 'afile'} is a file" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert (tmp_path / "afile").read_text() == "not a dataset"


@pytest.mark.slow
def test_a_rerun_says_what_it_skipped_and_refuses_to_move_clips(tmp_path: Path):
    rows = _one_clip_list(tmp_path)
    rows.write_text("path,labels,split\na.wav,Alpha,train\nmissing.wav,Alpha,train\n")
    out = tmp_path / "ds"
    base = ["ingest", "--segments", str(rows), "--classes", str(tmp_path / "classes.csv"),
            "--out", str(out), "--sample-rate", "8000", "--clip-seconds", "1",
            "--workers", "1"]  # fmt: skip
    audiomill(*base, cwd=tmp_path)
    again = audiomill(*base, cwd=tmp_path)
    assert (
        "1 clip(s) not tried again, failed permanently in earlier runs (not_found 1): "
        f"`audiomill dataset failures {out}` lists them, `--retry-reason not_found` tries them "
        "again"
    ) in again.stderr
    assert len(manifest(out)["runs"]) == 1  # a re-run that did nothing is not recorded
    retried = audiomill(*base, "--retry-reason", "not_found", cwd=tmp_path)
    assert "1 clip(s) failed:" in retried.stderr and "not tried again" not in retried.stderr
    rows.write_text("path,labels,split\na.wav,Alpha,eval\n")
    before = (out / "manifest.json").read_bytes()
    moved = audiomill(*base, cwd=tmp_path, check=False)
    assert moved.returncode == 2
    assert (
        "1 clip(s) are committed in another split than the list now gives them, e.g. a.wav_0 "
        "(train, line 2 says eval); a dataset cannot move clips between splits: use a new --out"
    ) in moved.stderr
    assert manifest(out)["splits"].keys() == {"train"}
    assert (out / "manifest.json").read_bytes() == before
    # a split whose only clip fails is still listed, with its failure
    rows.write_text("path,labels,split\ngone.wav,Alpha,holdout\n")
    audiomill(*base, cwd=tmp_path, check=False)
    info = json.loads(audiomill("dataset", "info", str(out), "--json").stdout)
    assert info["splits"]["holdout"]["clips"] == 0 and info["splits"]["holdout"]["failed"] == 1
