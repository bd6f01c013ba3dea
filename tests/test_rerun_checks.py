"""pipelines/rerun_checks.py: a segment list checked against the clips the dataset holds, on
segments parsed from real lists, local files and a dataset ingested once."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from pipelines.dataset_state import ledger_state, load_manifest, unledgered_note
from pipelines.ingest import run_ingest
from pipelines.rerun_checks import (
    add_unledgered_shards,
    check_committed,
    committed_labels,
    dedupe,
    same_audio,
    warn_changed_sources,
)
from pipelines.segment_loading import class_map_from_list, load_segment_list
from pipelines.sources import SourceConfig
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.ledger import STATUS_OK
from schemas.segments import Segment
from tests.media import write_media
from tests.test_ingest_driver import local_config

LISTED = "path,labels\na.wav,dog\nb.wav,cat\n"


def _parse(listing: Path, text: str) -> tuple[list[Segment], ClassMap]:
    """The segments of ``text`` written to ``listing``, as an ingest run parses them."""
    listing.write_text(text)
    class_map = class_map_from_list(str(listing))
    return load_segment_list(str(listing), class_map, "train").segments, class_map


def _sources(folder: Path) -> tuple[SourceConfig, None]:
    """Relative paths of a list in ``folder`` resolve against it."""
    return SourceConfig(manifest_dir=str(folder)), None


def _committed_row(clip_id: str, path: Path, **changes: object) -> dict:
    """The ledger row of a clip committed from the whole of ``path`` as it is now."""
    info = path.stat()
    row = {
        "clip_id": clip_id,
        "status": STATUS_OK,
        "split": "train",
        "source": str(path),
        "media_bytes": info.st_size,
        "recorded_at": info.st_mtime,
        "start_s": None,
        "end_s": None,
    }
    return row | changes


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of two committed clips, a.wav 'dog' and b.wav 'cat', in one shard."""
    work = tmp_path_factory.mktemp("ingested")
    write_media(work / "audio" / "a.wav", 1.0, 16000, freq=300, seed=1)
    write_media(work / "audio" / "b.wav", 1.0, 16000, freq=900, seed=2)
    (work / "list.csv").write_text(LISTED)
    summary = run_ingest(local_config(work / "list.csv", work / "audio", work / "ds"), log=print)
    assert summary.committed == 2
    return work


@pytest.fixture
def dataset(ingested: Path, tmp_path: Path) -> Path:
    """A copy of the ingested work folder that a test may damage."""
    return Path(shutil.copytree(ingested, tmp_path / "work"))


def test_dedupe_keeps_the_first_segment_of_each_clip_id(tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    segments, _ = _parse(listing, LISTED + "a.wav,cat\n")
    kept, dupes = dedupe(segments)
    assert [(s.clip_id, s.line) for s in kept] == [("a.wav_0", 2), ("b.wav_0", 3)]
    assert [str(d) for d in dupes] == [
        f"{listing}:4: duplicate clip id 'a.wav_0' (first on line 2): 'a.wav'"
    ]


def test_same_audio_by_another_path_of_the_list_is_a_repeat(tmp_path: Path) -> None:
    write_media(tmp_path / "a.wav", 0.5, 8000)
    os.symlink(tmp_path / "a.wav", tmp_path / "link.wav")
    text = f"path,labels\na.wav,dog\n{tmp_path / 'a.wav'},dog\nlink.wav,cat\n"
    segments, _ = _parse(tmp_path / "list.csv", text)
    kept, repeats = same_audio(segments, {}, _sources(tmp_path))
    assert kept == segments[:1]
    reason = "the same audio as line 2 (clip 'a.wav_0', split 'train') by another path"
    assert [(r.line, r.reason) for r in repeats] == [
        (3, f"{reason}: not ingested twice"),
        (4, f"{reason}: not ingested twice"),
    ]


def test_a_hard_link_is_a_file_of_its_own(tmp_path: Path) -> None:
    write_media(tmp_path / "a.wav", 0.5, 8000)
    os.link(tmp_path / "a.wav", tmp_path / "hard.wav")
    segments, _ = _parse(tmp_path / "list.csv", "path,labels\na.wav,dog\nhard.wav,dog\n")
    state = {"c_0": _committed_row("c_0", tmp_path / "a.wav")}
    assert same_audio(segments[1:], state, _sources(tmp_path)) == (segments[1:], [])
    assert same_audio(segments, {}, _sources(tmp_path)) == (segments, [])


def test_same_audio_as_a_committed_clip_is_a_repeat_while_its_file_is_unchanged(tmp_path):
    write_media(tmp_path / "a.wav", 0.5, 8000)
    os.symlink(tmp_path / "a.wav", tmp_path / "link.wav")
    segments, _ = _parse(tmp_path / "list.csv", "path,labels\nlink.wav,dog\n")
    state = {"c_0": _committed_row("c_0", tmp_path / "a.wav")}
    kept, repeats = same_audio(segments, state, _sources(tmp_path))
    assert kept == []
    assert [r.reason for r in repeats] == [
        f"the same audio as clip 'c_0', committed in split 'train' from {tmp_path / 'a.wav'}: "
        "not ingested again under another id"
    ]
    resized = {"c_0": _committed_row("c_0", tmp_path / "a.wav", media_bytes=1)}
    assert same_audio(segments, resized, _sources(tmp_path)) == (segments, [])


def test_warn_changed_sources_names_the_changed_committed_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_media(tmp_path / "a.wav", 0.5, 8000)
    write_media(tmp_path / "b.wav", 0.5, 8000)
    segments, _ = _parse(tmp_path / "list.csv", LISTED)
    state = {
        "a.wav_0": _committed_row("a.wav_0", tmp_path / "a.wav", media_bytes=7),
        "b.wav_0": _committed_row("b.wav_0", tmp_path / "b.wav"),
    }
    logger = logging.getLogger("test_rerun_checks")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        warn_changed_sources(segments, state, logger)
        size = (tmp_path / "a.wav").stat().st_size
        assert [(r.name, r.getMessage()) for r in caplog.records] == [
            (
                logger.name,
                "1 committed clip(s) come from local files that changed since they were "
                f"ingested: a.wav_0 ({tmp_path / 'a.wav'}: {size} bytes, 7 when ingested). The "
                "dataset keeps their audio as ingested; to ingest the new audio, give those rows "
                "a clip_id of their own (a clip_id column) or use a new --out",
            )
        ]
        caplog.clear()
        warn_changed_sources(segments, {"b.wav_0": state["b.wav_0"]}, logger)
        assert caplog.records == []


def test_check_committed_refuses_another_split_or_other_labels(tmp_path: Path) -> None:
    write_media(tmp_path / "a.wav", 0.5, 8000)
    write_media(tmp_path / "b.wav", 0.5, 8000)
    listing = tmp_path / "list.csv"
    segments, class_map = _parse(listing, LISTED)
    state = {s.clip_id: _committed_row(s.clip_id, tmp_path / s.source) for s in segments}
    labels = {s.clip_id: s.labels for s in segments}
    sources = _sources(tmp_path)
    check_committed(segments, state, str(listing), sources, labels, class_map)
    state["a.wav_0"]["split"] = "test"
    labels["b.wav_0"] = (0, 1)
    with pytest.raises(ValueError) as refused:
        check_committed(segments, state, str(listing), sources, labels, class_map)
    assert str(refused.value) == (
        f"{listing}: 1 clip(s) are committed in another split than the list now gives them, "
        "e.g. a.wav_0 (test, line 2 says train); a dataset cannot move clips between splits: "
        "use a new --out; 1 clip(s) are committed with other labels than the list now gives "
        "them, e.g. b.wav_0 (committed as 'cat; dog', line 3 says 'cat'); a dataset cannot "
        "relabel committed clips: use a new --out"
    )


@pytest.mark.parametrize("table_lost", [False, True])
def test_committed_labels_come_from_the_run_or_its_shard(dataset: Path, table_lost: bool):
    if table_lost:
        for table in (dataset / "ds" / "segments").glob("*.parquet"):
            table.unlink()
    store = DatasetStore(dataset / "ds")
    segments, _ = _parse(dataset / "list.csv", LISTED + "c.wav,dog\n")
    state = ledger_state(store, "train")
    found = committed_labels(store, load_manifest(store), state, segments)
    assert found == {s.clip_id: s.labels for s in segments[:2]}


def test_add_unledgered_shards_reads_the_clips_of_a_shard_without_ledger_part(dataset: Path):
    store = DatasetStore(dataset / "ds")
    manifest = load_manifest(store)
    state = ledger_state(store, "train")
    before = {c: dict(row) for c, row in state.items()}
    lines: list[str] = []
    add_unledgered_shards(store, manifest, state, lines.append)
    assert (state, lines) == (before, [])

    (part,) = (dataset / "ds" / "ledger" / "train").glob("shard-*.parquet")
    part.unlink()
    state = ledger_state(store, "train")
    add_unledgered_shards(store, manifest, state, lines.append)
    segments, _ = _parse(dataset / "list.csv", LISTED)
    shard = manifest.splits["train"].shards[0]
    assert {c: (r["status"], r["split"], r["shard"], r["labels"]) for c, r in state.items()} == {
        s.clip_id: (STATUS_OK, "train", shard.index, s.labels) for s in segments
    }
    assert lines == [unledgered_note(store, [f"ledger/train/{part.name}"])]
