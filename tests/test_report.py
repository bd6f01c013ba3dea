"""Dataset report (``features.report``): self-contained HTML with embedded PNGs, numbers checked
against the data the test wrote; robust to no failures, one class and embeddings-only data."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

import features.report as report_module
from features.report import (
    SILENCE_DBFS,
    build_report,
    gather_split,
    ledger_latest,
    requested_segments,
    rms_dbfs,
    sample_rows,
)
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from tests.dataset_builders import SR, Built, T, make_dataset

SECTIONS = (
    "Summary",
    "Class counts",
    "Label cardinality",
    "Co-occurrence of the top classes",
    "Clip durations",
    "Source sample rates",
    "Loudness",
    "Failures by reason",
    "Availability against requested segments",
)
PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in PNG.findall(page)]


def _section(page: str, split: str) -> str:
    start = page.index(f'<section id="split-{split}">')
    return page[start : page.index("</section>", start)]


def _level(amplitude: int) -> float:
    return 20 * np.log10(amplitude / 32768)


TRAIN = [[0], [1, 2], [], [0, 3], [4], [0], [0, 1], [2], [0, 2, 4]]
EVAL = [[1], [3]]
FAILURES = {
    "train": [("private", [0]), ("private", [3]), ("timeout", [5])],
    "test": [("unavailable", [1])],
}


@pytest.fixture
def full(tmp_path: Path) -> Built:
    return make_dataset(
        tmp_path / "ds",
        {"train": TRAIN, "eval": EVAL},
        num_classes=6,
        shard_clips=4,
        formats=("hdf5", "parquet"),
        failures=FAILURES,
    )


def test_report_sections_images_and_numbers(tmp_path: Path, full: Built):
    path = build_report(full.root, tmp_path / "out", client="synchronous")
    assert path == str(tmp_path / "out" / "index.html")
    page = Path(path).read_text()
    for title in SECTIONS:
        assert f">{title}</h" in page, title
    assert "http://" not in page and "https://" not in page, "no external assets"
    images = _pngs(page)
    assert len(images) >= 15
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["splits"]
    assert set(summary) == {"train", "eval", "test"}
    train = summary["train"]
    assert train["committed_clips"] == len(TRAIN)
    assert train["requested_clips"] == len(TRAIN) + len(FAILURES["train"])
    assert train["failed_clips"] == 3
    assert train["shards"] == 3
    assert train["unlabeled_clips"] == 1
    assert train["labels_per_clip"] == round(sum(map(len, TRAIN)) / len(TRAIN), 3)
    assert train["classes_with_clips"] == 5
    assert train["classes_without_clips"] == 1
    clips = full.clips["train"]
    assert train["median_audio_seconds"] == round(
        float(np.median([c.num_samples / SR for c in clips])), 3
    )
    assert train["median_delivered_seconds"] == round(
        float(np.median([c.delivered_seconds for c in clips])), 3
    )
    assert train["loudness_clips_measured"] == len(TRAIN)  # 8 per shard >= 4 clips per shard
    assert train["median_loudness_dbfs"] == round(
        float(np.median([_level(c.amplitude) for c in clips])), 3
    )
    assert summary["test"]["committed_clips"] == 0
    assert summary["test"]["failed_clips"] == 1

    section = _section(page, "train")
    assert "<td>private</td><td>2</td>" in section
    assert "<td>timeout</td><td>1</td>" in section
    assert "<td>44,100</td><td>3</td>" in section  # source sample rates of committed clips
    assert "1 classes without clips: sound 5" in section
    # sound 5 was requested once (a failed clip) and never committed; sound 3 twice, once.
    assert "<td>sound 5</td><td>1</td><td>0</td><td>0.0%</td>" in section
    assert "<td>sound 3</td><td>2</td><td>1</td><td>50.0%</td>" in section
    assert "No failures recorded in the ledger." in _section(page, "eval")
    empty = _section(page, "test")
    assert "No committed clips." in empty
    assert "<td>unavailable</td><td>1</td>" in empty


def test_statistics_match_brute_force(full: Built):
    store = DatasetStore(full.root)
    manifest = load_manifest(store)
    stats = gather_split(
        store, manifest, "train", ledger_latest(store), requested_segments(store), "synchronous", 2
    )
    targets = full.targets("train")
    np.testing.assert_array_equal(stats.counts, targets.sum(axis=0))
    np.testing.assert_array_equal(stats.cardinality, np.bincount(targets.sum(axis=1)))
    top = stats.top
    assert list(top) == list(np.argsort(-targets.sum(axis=0), kind="stable")[:5])
    m = targets[:, top].astype(int)
    np.testing.assert_array_equal(stats.cooccurrence, m.T @ m)
    assert stats.sample_rates == {44100: 3, 48000: 3, 16000: 3}
    assert stats.failures == {"private": 2, "timeout": 1}
    requested = np.zeros(6, dtype=int)
    for labels in TRAIN + [f[1] for f in FAILURES["train"]]:
        requested[labels] += 1
    np.testing.assert_array_equal(stats.requested, requested)
    # two evenly spaced clips per shard: rows 0 and n-1 of the shards of 4, 4 and 1 clips
    sampled = [full.clips["train"][g] for g in (0, 3, 4, 7, 8)]
    np.testing.assert_allclose(stats.loudness_dbfs, [_level(c.amplitude) for c in sampled])


def test_parquet_shards_give_the_same_statistics(tmp_path: Path):
    kwargs = {"num_classes": 6, "shard_clips": 4}
    h5 = make_dataset(tmp_path / "h5", {"train": TRAIN}, formats=("hdf5",), **kwargs)
    pq_ = make_dataset(tmp_path / "pq", {"train": TRAIN}, formats=("parquet",), **kwargs)
    out = []
    for built in (h5, pq_):
        store = DatasetStore(built.root)
        manifest = load_manifest(store)
        out.append(
            gather_split(
                store,
                manifest,
                "train",
                ledger_latest(store),
                requested_segments(store),
                "synchronous",
                3,
            )
        )
    a, b = out
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.audio_seconds, b.audio_seconds)
    np.testing.assert_allclose(a.loudness_dbfs, b.loudness_dbfs)
    assert len(a.loudness_dbfs) == 3 + 3 + 1


def test_one_class_no_failures_report_inside_the_dataset(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": [[0], [0], [], [0]]}, num_classes=1)
    path = build_report(built.root, client=None)  # default: threaded LocalCluster
    assert path == str(tmp_path / "ds" / "reports" / "dataset" / "index.html")
    page = Path(path).read_text()
    assert "No failures recorded in the ledger." in page
    assert len(_pngs(page)) >= 7
    summary = json.loads((tmp_path / "ds" / "reports" / "dataset" / "summary.json").read_text())
    assert summary["splits"]["train"]["classes_with_clips"] == 1
    assert summary["splits"]["train"]["failed_clips"] == 0


def test_classes_without_clips_are_listed_apart_by_semicolons(tmp_path: Path):
    """AudioSet's display names hold commas ("Chuckle, chortle"), so a comma cannot part them."""
    built = make_dataset(tmp_path / "ds", {"train": [[0], [0]]}, num_classes=3)
    page = Path(build_report(built.root, client=None)).read_text()
    assert "2 classes without clips: sound 1; sound 2</p>" in _section(page, "train")


def test_embeddings_only_dataset(tmp_path: Path):
    built = make_dataset(
        tmp_path / "ds",
        {"eval": [[0, 1], [1], [2]]},
        num_classes=4,
        waveforms=False,
        embedding_formats=("hdf5",),
        ledger=False,
        segments=False,
    )
    page = Path(build_report(built.root, tmp_path / "out", client="synchronous")).read_text()
    for title in SECTIONS:
        assert f">{title}</h" in page, title
    section = _section(page, "eval")
    assert "labels read from embeddings/vggish" in section
    assert "No loudness" in section
    assert "No durations" in section
    assert "No requested segments recorded" in section
    assert "No source sample rates" in section
    assert len(_pngs(section)) == 3  # class counts, cardinality, co-occurrence
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["splits"]["eval"]
    assert summary["committed_clips"] == 3
    assert summary["labels_per_clip"] == round(4 / 3, 3)
    assert summary["median_loudness_dbfs"] is None


def test_dataset_without_manifest(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no manifest"):
        build_report(tmp_path, tmp_path / "out", client="synchronous")


def test_unwritable_report_dir_is_refused_before_reading(tmp_path: Path, monkeypatch):
    built = make_dataset(tmp_path / "ds", {"train": [[0]]}, num_classes=1)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "deeper"):
        with pytest.raises(ValueError, match=f"report to {out}: {afile} is a file, not a dir"):
            build_report(built.root, out, client="synchronous")
    monkeypatch.setattr(report_module.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match=f"{tmp_path} is not writable"):
        build_report(built.root, tmp_path / "new", client="synchronous")
    assert not (tmp_path / "new").exists()


def test_damaged_shard_and_failed_write_name_the_file(tmp_path: Path, monkeypatch):
    built = make_dataset(tmp_path / "ds", {"train": [[0], [0]]}, num_classes=1)
    manifest = load_manifest(DatasetStore(built.root))
    shard = built.root / manifest.splits["train"].shards[0].files["hdf5"].path
    good = shard.read_bytes()
    shard.write_bytes(b"garbage" + good[7:])
    with pytest.raises(ValueError, match=rf"{shard}: cannot be read \(.*signature"):
        build_report(built.root, tmp_path / "out", client="synchronous")
    shard.write_bytes(good)

    def full(self, rel, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DatasetStore, "write_bytes_atomic", full)
    with pytest.raises(ValueError, match=rf"report to {tmp_path}/out: .*No space left"):
        build_report(built.root, tmp_path / "out", client="synchronous")


def test_rms_dbfs_and_sample_rows():
    full_square = np.tile(np.array([32767, -32767], dtype=np.int16), T // 2)
    t = np.arange(T) / SR
    sine = np.round(32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    padded = full_square.copy()
    padded[T // 2 :] = 0
    rows = np.stack([full_square, sine, np.zeros(T, np.int16), padded])
    levels = rms_dbfs(rows, np.array([T, T, T, T // 2]))
    np.testing.assert_allclose(levels[:2], [0.0, -3.0103], atol=1e-3)
    assert levels[2] == SILENCE_DBFS
    np.testing.assert_allclose(levels[3], 0.0, atol=1e-3)  # padding is not measured
    assert rms_dbfs(rows[:1], np.array([0]))[0] == SILENCE_DBFS
    assert sample_rows(10, 3).tolist() == [0, 4, 9]
    assert sample_rows(2, 8).tolist() == [0, 1]
    assert sample_rows(5, 0).size == 0
