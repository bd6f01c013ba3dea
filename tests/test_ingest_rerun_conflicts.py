"""pipelines/ingest.py: a re-run that names a committed clip id with other media or other
labels is refused before it writes anything (a clip id names one clip of the dataset)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.ingest import IngestConfig, _sources, run_ingest
from pipelines.rerun_checks import _same_source, check_committed
from schemas.classmap import ClassMap
from schemas.ledger import STATUS_OK
from schemas.segments import Segment
from tests.ingest_helpers import hdf5_clips
from tests.media import write_media
from tests.test_ingest_driver import local_config


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``root``: size, modification time and inode."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def _segment(source: str, kind: str, clip_id: str = "x.wav_0", line: int = 2) -> Segment:
    return Segment(
        clip_id=clip_id,
        source=source,
        source_kind=kind,
        start_s=None,
        end_s=None,
        labels=(0,),
        label_mids=("dog",),
        unknown_labels=(),
        split="train",
        origin="list.csv",
        line=line,
    )


def _check(segments: list[Segment], state: dict[str, dict], cfg: IngestConfig) -> None:
    """The committed-clip check with no committed labels to compare."""
    sources = _sources(cfg, segments)
    check_committed(segments, state, cfg.segments, sources, {}, ClassMap.from_names([]))


def test_same_clip_path_under_another_audio_root_is_refused_before_writing(tmp_path: Path):
    write_media(tmp_path / "rootA" / "dog" / "1.wav", 1.0, 8000, freq=300, seed=1)
    write_media(tmp_path / "rootB" / "dog" / "1.wav", 1.0, 8000, freq=900, seed=2)
    listing = tmp_path / "list.csv"
    listing.write_text("path,labels\ndog/1.wav,dog\n")
    out = tmp_path / "ds"
    first = run_ingest(local_config(listing, tmp_path / "rootA", out), log=lambda line: None)
    assert first.committed == 1
    waveform = next(iter(hdf5_clips(out).values()))["waveform"].copy()
    before = _snapshot(out)
    with pytest.raises(ValueError) as refused:
        run_ingest(local_config(listing, tmp_path / "rootB", out), log=lambda line: None)
    message = str(refused.value)
    assert message.startswith(f"{listing}: 1 clip(s) are committed from another source")
    assert f"committed from {tmp_path / 'rootA' / 'dog' / '1.wav'}" in message
    assert f"line 2 names {tmp_path / 'rootB' / 'dog' / '1.wav'}" in message
    assert "a clip_id column" in message and "new --out" in message
    assert _snapshot(out) == before
    assert (next(iter(hdf5_clips(out).values()))["waveform"] == waveform).all()
    # the same files again, however the root is spelled, are a plain resume
    again = local_config(listing, tmp_path / "rootA" / ".." / "rootA", out)
    assert run_ingest(again, log=lambda line: None).already_done == 1


@pytest.mark.parametrize(
    ("committed", "new"),
    [
        ("http://127.0.0.1:8765/x.wav", "http://localhost:8765/x.wav"),
        ("http://127.0.0.1:8765/x.wav", "/data/x.wav"),
        ("/data/x.wav", "http://127.0.0.1:8765/x.wav"),
    ],
)
def test_a_url_and_another_url_or_path_are_other_sources(committed: str, new: str, tmp_path):
    kind = "url" if "://" in new else "path"
    state = {"x.wav_0": {"status": STATUS_OK, "split": "train", "source": committed}}
    cfg = IngestConfig(segments="list.csv", out=str(tmp_path / "ds"))
    seg = _segment(new, kind)
    with pytest.raises(ValueError, match="1 clip\\(s\\) are committed from another source"):
        _check([seg], state, cfg)
    state["x.wav_0"]["source"] = new
    _check([seg], state, cfg)  # the same source: no error


def test_a_relative_source_from_another_working_directory_is_the_same(tmp_path, monkeypatch):
    write_media(tmp_path / "work" / "audio" / "a.wav", 1.0, 8000)
    write_media(tmp_path / "other" / "a.wav", 1.0, 8000)
    monkeypatch.chdir(tmp_path)
    assert _same_source("audio/a.wav", os.path.join("work", "audio", "a.wav"))
    assert not _same_source("other/a.wav", os.path.join("work", "audio", "a.wav"))
    assert not _same_source("other/a.wav", "gone/a.wav")  # the committed file is there
    monkeypatch.chdir(tmp_path / "work")
    assert _same_source(str(tmp_path / "work" / "audio" / "a.wav"), "audio/a.wav")


def test_youtube_ids_from_another_mirror_are_the_same_clip(tmp_path: Path):
    state = {"abc_0": {"status": STATUS_OK, "split": "train", "source": "https://yt/abc"}}
    cfg = IngestConfig(segments="list.csv", out=str(tmp_path), url_template="http://m/{ytid}")
    seg = _segment("abc", "youtube", clip_id="abc_0")
    _check([seg], state, cfg)


def test_a_committed_file_moved_away_is_not_another_source(tmp_path: Path):
    write_media(tmp_path / "moved" / "dog" / "1.wav", 1.0, 8000)
    assert _same_source(str(tmp_path / "root" / "dog" / "1.wav"), str(tmp_path / "moved/dog/1.wav"))


def test_the_refusal_names_the_first_three_and_counts_all(tmp_path: Path):
    for i in range(5):
        for side in ("old", "new"):
            write_media(tmp_path / side / f"{i}.wav", 0.1 * (i + 1), 8000)
    new, old = tmp_path / "new", tmp_path / "old"
    segs = [_segment(f"{new}/{i}.wav", "path", clip_id=f"c{i}", line=i + 2) for i in range(5)]
    state = {
        s.clip_id: {"status": STATUS_OK, "split": "train", "source": f"{old}/{i}.wav"}
        for i, s in enumerate(segs)
    }
    cfg = IngestConfig(segments="list.csv", out=str(tmp_path))
    with pytest.raises(ValueError) as refused:
        _check(segs, state, cfg)
    message = str(refused.value)
    assert "5 clip(s) are committed from another source" in message
    assert f"c2 (committed from {old}/2.wav, line 4 names {new}/2.wav)" in message
    assert "c3" not in message


def _two_labelled_clips(tmp_path: Path) -> tuple[Path, Path]:
    """Two 1 s clips, 'dog' and 'cat', in a list; returns the list and the audio root."""
    audio = tmp_path / "audio"
    write_media(audio / "a.wav", 1.0, 16000, freq=300, seed=1)
    write_media(audio / "b.wav", 1.0, 16000, freq=900, seed=2)
    listing = tmp_path / "list.csv"
    listing.write_text("path,labels\na.wav,dog\nb.wav,cat\n")
    return listing, audio


@pytest.mark.parametrize("table_lost", [False, True])
def test_a_changed_label_of_a_committed_clip_is_refused_before_writing(tmp_path, table_lost):
    listing, audio = _two_labelled_clips(tmp_path)
    out = tmp_path / "ds"
    cfg = local_config(listing, audio, out)
    assert run_ingest(cfg, log=lambda line: None).committed == 2
    if table_lost:  # the labels are then read from the shard
        for table in (out / "segments").glob("*.parquet"):
            table.unlink()
    before = _snapshot(out)
    listing.write_text("path,labels\na.wav,dog\nb.wav,dog\n")
    with pytest.raises(ValueError) as refused:
        run_ingest(cfg, log=lambda line: None)
    assert str(refused.value) == (
        f"{listing}: 1 clip(s) are committed with other labels than the list now gives them, "
        "e.g. b.wav_0 (committed as 'cat', line 3 says 'dog'); a dataset cannot relabel "
        "committed clips: use a new --out"
    )
    assert _snapshot(out) == before
    listing.write_text("path,labels\na.wav,dog\nb.wav,cat\n")  # the labels it has: a resume
    assert run_ingest(cfg, log=lambda line: None).already_done == 2
