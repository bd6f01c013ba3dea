"""The per-clip and per-shard transforms of ingest and the dataset state around them, without Beam:
staging (``pipelines.staging``), ``stage_clip``, ``pack_shard``, ``build_shard``, shard planning
and Beam options, manifest/ledger repair (``pipelines.dataset_state``), ``dataset info`` and
``dataset verify``."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import apache_beam as beam
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from features.embedding_shards import commit_embedding_shard
from pipelines import staging
from pipelines.beam_ingest import (
    BEAM_DOFN_LOGGER,
    DEFAULT_RUNNER_ARGS,
    QuietInterrupts,
    caused_by_interrupt,
    direct_runner,
    local_parallelism,
    pipeline_options,
    plan_direct_shards,
    plan_shards,
    run_pipeline,
    unknown_beam_options,
)
from pipelines.clip_stage import ClipSettings, prepare_item, stage_clip
from pipelines.dataset_state import (
    adopt_commits,
    ledger_state,
    load_manifest,
    read_ledger,
    record_run,
    remove_orphans,
    save_manifest,
)
from pipelines.dataset_tools import dataset_info, verify_dataset
from pipelines.fetch import FetchOptions, is_local
from pipelines.pack import PackSettings, ledger_part_path, pack_shard, report_stem
from pipelines.shard_build import build_shard
from pipelines.storage import DatasetStore, temporary_name
from schemas.classmap import ClassMap
from schemas.dataset import (
    CLASSES,
    MANIFEST,
    DatasetManifest,
    ShardEntry,
    ShardFile,
    embedding_shard_path,
    waveform_shard_path,
)
from schemas.embeddings import EmbeddingRows
from schemas.ledger import LEDGER_SCHEMA, STATUS_FAILED, STATUS_OK, ledger_table
from schemas.shards import hdf5_problems, read_hdf5_rows, read_parquet_rows
from tests.ingest_helpers import audiomill
from tests.media import write_media

SR = 8000
CLIP_S = 1.0
CLASSES_MAP = ClassMap.from_names(["dog", "cat", "bird"])
HOSTILE_IDS = [
    "../../etc/passwd",
    "--exec=rm -rf /",
    "a/b\\c",
    "x\0y",
    "名前 with spaces",
    "",
    ".",
    "$(touch pwned)",
    "A" * 5000,
]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "ds")


@pytest.fixture
def clip_settings(tmp_path: Path) -> ClipSettings:
    return ClipSettings(
        sample_rate=SR,
        clip_seconds=CLIP_S,
        min_coverage=0.9,
        fetch=FetchOptions(limiter_state=str(tmp_path / "limit.state"), retries=0),
    )


def _pack_settings(formats=("hdf5", "parquet"), run_id: str = "run1") -> PackSettings:
    return PackSettings(
        formats=tuple(formats),
        sample_rate=SR,
        clip_seconds=CLIP_S,
        num_classes=len(CLASSES_MAP),
        class_map_sha256=CLASSES_MAP.sha256,
        run_id=run_id,
    )


def _item(clip_id: str, location: str, labels=(0,), split: str = "train", **kw) -> dict:
    return {
        "clip_id": clip_id,
        "split": split,
        "location": location,
        "precut": False,
        "start_s": None,
        "end_s": None,
        "labels": list(labels),
        "audio_name": clip_id,
        "origin": "manifest.csv",
        "line": 2,
        **kw,
    }


def _silent(path: Path, seconds: float = 1.0, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(round(seconds * sr), dtype=np.int16), sr, subtype="PCM_16")
    return path


def _stage(
    tmp_path: Path,
    store: DatasetStore,
    settings: ClipSettings,
    names: dict[str, tuple[int, ...]],
    split: str = "train",
    silent: tuple[str, ...] = (),
) -> dict[str, dict]:
    """Stage clip ``name_0`` (labels) from a 1 s tone (or silence) at 16 kHz; return metas."""
    metas = {}
    for seed, (name, labels) in enumerate(names.items()):
        src = tmp_path / "src" / f"{name}.wav"
        if name in silent:
            _silent(src)
        elif not src.exists():
            write_media(src, 1.0, 16000, freq=300 + 100 * seed, seed=seed)
        out = stage_clip(
            _item(f"{name}_0", str(src), labels, split=split, line=seed + 2),
            store,
            settings,
            str(tmp_path / "work"),
        )
        assert out["status"] == "ok", out
        metas[f"{name}_0"] = out["meta"]
    return metas


def _dataset(tmp_path: Path, store: DatasetStore, settings: ClipSettings) -> DatasetManifest:
    """A committed dataset: shard 0 of 'train' with 3 clips (a silent fourth one rejected),
    classes.csv, a failures ledger part with one not_found clip."""
    metas = _stage(
        tmp_path,
        store,
        settings,
        {"dog": (0,), "cat": (1,), "both": (0, 1), "quiet": (2,)},
        silent=("quiet",),
    )
    manifest = DatasetManifest(
        class_map_sha256=CLASSES_MAP.sha256,
        num_classes=len(CLASSES_MAP),
        sample_rate=SR,
        clip_seconds=CLIP_S,
        formats=["hdf5", "parquet"],
    )
    store.write_bytes_atomic(CLASSES, CLASSES_MAP.to_csv_text().encode())
    pack_shard("train", 0, sorted(metas), store, _pack_settings())
    adopt_commits(store, manifest, "train")
    _write_part(
        store,
        "ledger/train/failures-run1.parquet",
        [_failed("gone_0", "not_found", 5.0)],
    )
    return manifest


def _failed(clip_id: str, reason: str, t: float, split: str = "train") -> dict:
    return {
        "clip_id": clip_id,
        "split": split,
        "status": STATUS_FAILED,
        "reason": reason,
        "run_id": "run1",
        "recorded_at": t,
    }


def _write_part(store: DatasetStore, rel: str, rows: list[dict]) -> None:
    buf = io.BytesIO()
    pq.write_table(ledger_table(rows), buf)
    store.write_bytes_atomic(rel, buf.getvalue())


def _ledger_rows(store: DatasetStore, rel: str) -> list[dict]:
    return pq.read_table(io.BytesIO(store.read_bytes(rel))).to_pylist()


# --------------------------------------------------------------------------- staging


def test_clip_key_is_stable():
    assert staging.clip_key("abc") == hashlib.sha256(b"abc").hexdigest()[:32]
    assert staging.clip_key("abc") == "ba7816bf8f01cfea414140de5dae2223"
    assert staging.clip_key("--PJHxphWEs_30000") == staging.clip_key("--PJHxphWEs_30000")
    assert staging.clip_key("a_1") != staging.clip_key("a_10")


@pytest.mark.parametrize("clip_id", HOSTILE_IDS)
def test_staging_paths_are_path_safe_for_hostile_ids(clip_id, store):
    key = staging.clip_key(clip_id)
    assert len(key) == 32 and set(key) <= set("0123456789abcdef")
    for rel in (
        staging.staged_clip_path("train", clip_id),
        staging.failed_path("train", clip_id),
    ):
        assert rel.startswith(".staging/train/")
        assert rel.rsplit("/", 1)[-1].startswith(key)
        store.url(rel)  # accepted by the store: relative, no '..', no NUL or backslash
    assert staging.commit_record_path("eval", 7) == ".staging/eval/commits/shard-00007.json"


@pytest.mark.parametrize("clip_id", ["--exec=rm -rf /_30000", "../../x_0"])
def test_write_and_read_staged_clip(store, clip_id):
    wave = np.arange(-500, 500, dtype=np.int16)
    meta = {
        "clip_id": clip_id,
        "labels": [0, 2],
        "start_s": None,
        "peak": 0.25,
        "audio_name": "Yé.wav",
    }
    staging.write_staged_clip(store, "train", wave, meta)
    got_wave, got_meta = staging.read_staged_clip(store, "train", clip_id)
    assert got_wave.dtype == np.int16
    np.testing.assert_array_equal(got_wave, wave)
    assert got_meta == meta
    assert staging.read_staged_meta(store, "train", clip_id) == meta
    assert staging.staged_names(store, "train", "clips") == [f"{staging.clip_key(clip_id)}.clip"]


def test_staged_names_skips_temporaries(store):
    assert staging.staged_names(store, "train", "clips") == []  # missing directory
    store.write_bytes_atomic(".staging/train/commits/shard-00000.json", b"{}")
    store.write_bytes_atomic(".staging/train/commits/shard-00001.json.tmp-0123abcd", b"{")
    store.write_bytes_atomic(".staging/train/failed/abc.json", b"{}")
    assert staging.staged_names(store, "train", "commits") == ["shard-00000.json"]
    assert staging.staged_names(store, "train", "failed") == ["abc.json"]
    assert staging.read_json(store, ".staging/train/commits/shard-00000.json") == {}


# --------------------------------------------------------------------------- stage_clip


def test_stage_clip_success(tmp_path, store, clip_settings):
    src = write_media(tmp_path / "src" / "a.wav", 1.0, 16000)
    item = _item("a.wav_0", str(src), labels=(1, 2), audio_name="Ya.wav", line=7)
    out = stage_clip(item, store, clip_settings, str(tmp_path / "work"))
    assert out["status"] == "ok"
    meta = out["meta"]
    wave, staged_meta = staging.read_staged_clip(store, "train", "a.wav_0")
    assert staged_meta == meta
    assert wave.dtype == np.int16 and wave.shape == (SR,)
    assert meta["clip_id"] == "a.wav_0"
    assert meta["labels"] == [1, 2]
    assert meta["audio_name"] == "Ya.wav"
    assert (meta["origin"], meta["line"], meta["source"]) == ("manifest.csv", 7, str(src))
    assert meta["num_samples"] == SR
    assert (meta["sample_rate"], meta["channels"]) == (SR, 1)
    assert (meta["source_sample_rate"], meta["source_channels"]) == (16000, 1)
    assert meta["delivered_seconds"] == pytest.approx(1.0)
    assert meta["requested_seconds"] == pytest.approx(1.0)
    assert meta["media_bytes"] == src.stat().st_size
    assert meta["attempts"] == 1
    assert meta["waveform_sha256"] == hashlib.sha256(wave.tobytes()).hexdigest()
    assert 0.3 < meta["peak"] < 0.7 and meta["silence_ratio"] == 0.0
    assert src.exists()  # the user's file is never deleted
    assert not store.exists(staging.failed_path("train", "a.wav_0"))


def test_stage_clip_section_is_padded(tmp_path, store):
    settings = ClipSettings(
        sample_rate=SR,
        clip_seconds=2.0,
        min_coverage=0.9,
        fetch=FetchOptions(limiter_state=str(tmp_path / "l")),
    )
    src = write_media(tmp_path / "src" / "long.flac", 3.0, 16000, channels=2)
    item = _item("long_1000", str(src), start_s=1.0, end_s=2.0)
    meta = stage_clip(item, store, settings, str(tmp_path / "work"))["meta"]
    wave, _ = staging.read_staged_clip(store, "train", "long_1000")
    assert wave.shape == (2 * SR,)
    assert meta["num_samples"] == SR  # the 1 s section, then zero padding
    assert not wave[SR:].any() and wave[: SR - 10].any()
    assert meta["source_channels"] == 2 and meta["channels"] == 1
    assert meta["start_s"] == 1.0 and meta["end_s"] == 2.0


def test_stage_clip_precut_file_is_read_whole(tmp_path, store, clip_settings):
    """A PANNs-style Y<YTID>.wav holds only the segment: start 30 s is not sought in it."""
    src = write_media(tmp_path / "src" / "Y-x_Abc123de.wav", 1.0, 16000)
    item = _item("-x_Abc123de_30000", str(src), precut=True, start_s=30.0, end_s=31.0)
    out = stage_clip(item, store, clip_settings, str(tmp_path / "work"))
    assert out["status"] == "ok", out
    assert out["meta"]["num_samples"] == SR


def test_stage_clip_missing_file_stages_not_found(tmp_path, store, clip_settings):
    item = _item("gone_0", str(tmp_path / "src" / "gone.wav"), line=11)
    out = stage_clip(item, store, clip_settings, str(tmp_path / "work"))
    assert out["status"] == "failed"
    rec = out["record"]
    assert rec["reason"] == "not_found"
    assert rec["status"] == "failed"
    assert rec["transient"] is False
    assert (rec["clip_id"], rec["split"], rec["line"]) == ("gone_0", "train", 11)
    assert "gone.wav" in rec["detail"]
    assert staging.read_json(store, staging.failed_path("train", "gone_0")) == rec
    assert not store.exists(staging.staged_clip_path("train", "gone_0"))
    ledger_table([rec])  # a valid ledger row as is (run_id is added by the driver)


def test_stage_clip_too_short_and_corrupt(tmp_path, store, clip_settings):
    short = write_media(tmp_path / "src" / "short.wav", 0.5, 16000)
    out = stage_clip(
        _item("short_0", str(short), start_s=0.0, end_s=1.0),
        store,
        clip_settings,
        str(tmp_path / "w"),
    )
    assert (out["status"], out["record"]["reason"]) == ("failed", "too_short")
    bad = tmp_path / "src" / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 8)
    out = stage_clip(_item("bad_0", str(bad)), store, clip_settings, str(tmp_path / "w"))
    assert (out["status"], out["record"]["reason"]) == ("failed", "decode_error")
    assert sorted(staging.staged_names(store, "train", "failed")) == sorted(
        f"{staging.clip_key(c)}.json" for c in ("short_0", "bad_0")
    )


def test_stage_clip_already_staged_is_not_fetched_again(tmp_path, store, clip_settings):
    src = write_media(tmp_path / "src" / "a.wav", 1.0, 16000)
    item = _item("a_0", str(src))
    first = stage_clip(item, store, clip_settings, str(tmp_path / "work"))
    src.unlink()
    second = stage_clip(item, store, clip_settings, str(tmp_path / "work"))
    assert second == first
    assert second["status"] == "ok"


def test_stage_clip_success_clears_an_earlier_failure(tmp_path, store, clip_settings):
    src = tmp_path / "src" / "late.wav"
    item = _item("late_0", str(src))
    assert stage_clip(item, store, clip_settings, str(tmp_path / "w"))["status"] == "failed"
    assert store.exists(staging.failed_path("train", "late_0"))
    write_media(src, 1.0, 16000)
    assert stage_clip(item, store, clip_settings, str(tmp_path / "w"))["status"] == "ok"
    assert not store.exists(staging.failed_path("train", "late_0"))
    assert staging.staged_names(store, "train", "failed") == []


# --------------------------------------------------------------------------- pack_shard


def test_pack_shard_writes_shard_ledger_report_and_commit(tmp_path, store, clip_settings):
    metas = _stage(
        tmp_path,
        store,
        clip_settings,
        {"dog": (0,), "cat": (1,), "both": (0, 1), "quiet": (2,)},
        silent=("quiet",),
    )
    settings = _pack_settings()
    rec = pack_shard("train", 4, list(reversed(list(metas))), store, settings)

    kept = ["both_0", "cat_0", "dog_0"]  # sorted; the silent clip fails the clip suite
    assert rec["split"] == "train" and rec["index"] == 4
    assert rec["clip_ids"] == [*kept, "quiet_0"]
    assert rec["rejected"] == ["quiet_0"]
    assert rec["ledger"] == "ledger/train/shard-00004.parquet"
    assert staging.read_json(store, staging.commit_record_path("train", 4)) == rec
    entry = ShardEntry.from_dict(rec["entry"])
    assert (entry.index, entry.num_clips, entry.run_id) == (4, 3, "run1")
    assert entry.clip_ids_sha256 == hashlib.sha256("\n".join(kept).encode()).hexdigest()
    assert set(entry.files) == {"hdf5", "parquet"}
    for fmt, f in entry.files.items():
        assert f.path == waveform_shard_path("train", 4, fmt)
        assert f.sha256 == store.sha256_of(f.path)
        assert f.bytes == store.size(f.path)

    h5 = store.local_path(entry.files["hdf5"].path)
    assert hdf5_problems(str(h5), len(CLASSES_MAP), SR) == []
    with h5py.File(h5, "r") as hf:
        assert hf.attrs["class_map_sha256"] == CLASSES_MAP.sha256
        assert hf.attrs["sample_rate"] == SR
        assert hf.attrs["split"] == "train" and hf.attrs["shard_index"] == 4
    rows = list(read_hdf5_rows(str(h5)))
    assert [r.clip_id for r in rows] == kept
    assert [r.labels for r in rows] == [[0, 1], [1], [0]]
    for r in rows:
        wave, _ = staging.read_staged_clip(store, "train", r.clip_id)
        np.testing.assert_array_equal(r.waveform, wave)
        assert r.start_s is None and r.num_samples == SR
    prow = list(read_parquet_rows(str(store.local_path(entry.files["parquet"].path)), SR))
    assert [r.clip_id for r in prow] == kept
    for a, b in zip(rows, prow, strict=True):
        np.testing.assert_array_equal(a.waveform, b.waveform)

    ledger = {r["clip_id"]: r for r in _ledger_rows(store, rec["ledger"])}
    assert set(ledger) == {*kept, "quiet_0"}
    for row_no, clip_id in enumerate(kept):
        r = ledger[clip_id]
        assert (r["status"], r["shard"], r["row"], r["run_id"]) == (STATUS_OK, 4, row_no, "run1")
        assert r["waveform_sha256"] == metas[clip_id]["waveform_sha256"]
        assert r["reason"] is None
    quiet = ledger["quiet_0"]
    assert (quiet["status"], quiet["reason"], quiet["transient"]) == (
        STATUS_FAILED,
        "validation",
        False,
    )
    assert quiet["shard"] is None and quiet["row"] is None
    assert quiet["detail"] == (
        "100% of its 100 ms frames are silent, more than the 99% accepted (--max-silence) "
        "[expect_column_values_to_be_between:silence_ratio]"
    )

    report = json.loads(store.read_text(report_stem("train", 4, "run1") + ".json"))
    assert report["success"] is False
    assert "<html" in store.read_text(report_stem("train", 4, "run1") + ".html").lower()
    # staged clips stay until the commit is adopted into the manifest
    assert all(store.exists(staging.staged_clip_path("train", c)) for c in metas)


def test_pack_shard_single_format(tmp_path, store, clip_settings):
    metas = _stage(tmp_path, store, clip_settings, {"dog": (0,)})
    rec = pack_shard("train", 0, list(metas), store, _pack_settings(formats=("parquet",)))
    assert set(rec["entry"]["files"]) == {"parquet"}
    assert store.listdir("waveforms/train") == ["shard-00000.parquet"]


def test_pack_shard_is_idempotent(tmp_path, store, clip_settings):
    metas = _stage(tmp_path, store, clip_settings, {"dog": (0,), "cat": (1,)})
    first = pack_shard("train", 0, list(metas), store, _pack_settings())
    second = pack_shard("train", 0, list(metas), store, _pack_settings())
    assert second["entry"] == first["entry"]  # same bytes, same checksums
    assert store.listdir("waveforms/train") == ["shard-00000.h5", "shard-00000.parquet"]
    rows = list(read_hdf5_rows(str(store.local_path("waveforms/train/shard-00000.h5"))))
    assert [r.clip_id for r in rows] == ["cat_0", "dog_0"]


def test_pack_shard_all_rejected(tmp_path, store, clip_settings):
    metas = _stage(tmp_path, store, clip_settings, {"q1": (0,), "q2": (1,)}, silent=("q1", "q2"))
    rec = pack_shard("train", 2, list(metas), store, _pack_settings(run_id="r-7"))
    assert rec["entry"] is None
    assert rec["rejected"] == ["q1_0", "q2_0"]
    assert rec["ledger"] == "ledger/train/rejected-r-7-00002.parquet"
    assert rec["ledger"] == ledger_part_path("train", 2, "r-7", committed=False)
    assert store.listdir("waveforms/train") == []
    rows = _ledger_rows(store, rec["ledger"])
    assert {(r["clip_id"], r["reason"]) for r in rows} == {
        ("q1_0", "validation"),
        ("q2_0", "validation"),
    }
    assert store.exists(staging.commit_record_path("train", 2))


def test_ledger_part_path():
    assert ledger_part_path("eval", 3, "r", committed=True) == "ledger/eval/shard-00003.parquet"
    assert ledger_part_path("eval", 3, "r", committed=False) == (
        "ledger/eval/rejected-r-00003.parquet"
    )


# --------------------------------------------------------------------------- build_shard


def _sources(tmp_path: Path, names: dict[str, tuple[int, ...]], silent=()) -> list[dict]:
    """Planned items (not staged) for 1 s tones (or silence) at 16 kHz, as the driver makes."""
    items = []
    for seed, (name, labels) in enumerate(names.items()):
        src = tmp_path / "src" / f"{name}.wav"
        if name in silent:
            _silent(src)
        else:
            write_media(src, 1.0, 16000, freq=300 + 100 * seed, seed=seed)
        item = _item(f"{name}_0", str(src), labels, line=seed + 2)
        items.append({**item, "staged": False, "stale_failure": False})
    return items


@pytest.mark.parametrize(
    ("threads", "formats", "silent"),
    [
        (1, ("hdf5", "parquet"), ("quiet",)),  # a rejected clip: kept rows copied out
        (3, ("hdf5", "parquet"), ("quiet",)),
        (3, ("hdf5", "parquet"), ()),  # every clip kept: the decode-time file is the shard
        (1, ("hdf5",), ()),
        (3, ("parquet",), ("quiet",)),  # no HDF5: waveforms wait in a scratch file
    ],
)
def test_build_shard_equals_stage_then_pack(tmp_path, clip_settings, threads, formats, silent):
    names = {"dog": (0,), "cat": (1,), "both": (0, 1), "quiet": (2,)}
    items = _sources(tmp_path, names, silent=silent)
    settings = _pack_settings(formats)
    staged_store = DatasetStore(tmp_path / "staged")
    for item in items:
        assert stage_clip(item, staged_store, clip_settings, str(tmp_path / "w"))["status"] == "ok"
    want = pack_shard("train", 3, [i["clip_id"] for i in items], staged_store, settings)

    store = DatasetStore(tmp_path / "direct")
    with ThreadPoolExecutor(threads) as pool:
        got = build_shard(
            "train", 3, list(reversed(items)), store, clip_settings, settings,
            workdir=str(tmp_path / "w"), executor=pool if threads > 1 else None,
            pack_executor=pool if threads > 1 else None,
        )  # fmt: skip
    assert want["staged"] is True and got["staged"] is False
    assert {**got, "staged": True} == want  # same files, checksums, clips, rejections
    assert got["rejected"] == [f"{n}_0" for n in silent]
    assert staging.read_json(store, staging.commit_record_path("train", 3)) == got
    for f in got["entry"]["files"].values():
        assert store.sha256_of(f["path"]) == f["sha256"]
    assert store.listdir("waveforms/train") == sorted(
        waveform_shard_path("train", 3, fmt).rsplit("/", 1)[1] for fmt in formats
    )
    assert staging.staged_names(store, "train", "clips") == []  # nothing staged
    rows = {r["clip_id"]: r for r in _ledger_rows(store, got["ledger"])}
    staged_rows = {r["clip_id"]: r for r in _ledger_rows(staged_store, want["ledger"])}
    for clip_id, row in rows.items():
        for key in ("status", "reason", "shard", "row", "waveform_sha256", "num_samples"):
            assert row[key] == staged_rows[clip_id][key], (clip_id, key)
    assert store.exists(report_stem("train", 3, "run1") + ".html")
    assert not list((tmp_path / "w").glob("audiomill-shard-*"))  # scratch removed


def test_build_shard_stages_failures_and_reuses_staged_clips(tmp_path, store, clip_settings):
    items = _sources(tmp_path, {"a": (0,), "b": (1,), "c": (2,)})
    # b was staged by an interrupted run, then its source disappeared: it is read from staging
    assert stage_clip(items[1], store, clip_settings, str(tmp_path / "w"))["status"] == "ok"
    Path(items[1]["location"]).unlink()
    items[1]["staged"] = True
    # c failed in an interrupted run (a stale failure) and decodes now
    store.write_json_atomic(staging.failed_path("train", "c_0"), {"clip_id": "c_0"})
    items[2]["stale_failure"] = True
    missing = {**_item("gone_0", str(tmp_path / "src" / "gone.wav"), line=9), "staged": False}
    rec = build_shard(
        "train", 0, [*items, missing], store, clip_settings, _pack_settings(),
        workdir=str(tmp_path / "w"),
    )  # fmt: skip
    assert rec["clip_ids"] == ["a_0", "b_0", "c_0"] and rec["entry"]["num_clips"] == 3
    assert staging.staged_names(store, "train", "failed") == [f"{staging.clip_key('gone_0')}.json"]
    failure = staging.read_json(store, staging.failed_path("train", "gone_0"))
    assert (failure["reason"], failure["line"]) == ("not_found", 9)
    manifest = _empty_manifest()
    adopt_commits(store, manifest, "train")
    assert manifest.split("train").num_clips == 3
    assert staging.staged_names(store, "train", "clips") == []  # b's staged copy is adopted


def test_build_shard_commits_its_hdf5_file_without_reading_it_back(
    tmp_path, store, clip_settings, monkeypatch
):
    def no_hash(path, *args, **kwargs):
        raise AssertionError(f"{path} was read back to hash it")

    monkeypatch.setattr("pipelines.storage.hash_file_uncached", no_hash)
    items = _sources(tmp_path, {"a": (0,), "b": (1,), "c": (0, 2)})
    rec = build_shard(
        "train", 0, items, store, clip_settings, _pack_settings(("hdf5",)),
        workdir=str(tmp_path / "w"),
    )  # fmt: skip
    shard = rec["entry"]["files"]["hdf5"]
    data = store.read_bytes(shard["path"])
    assert rec["entry"]["num_clips"] == 3 and len(data) == shard["bytes"]
    assert hashlib.sha256(data).hexdigest() == shard["sha256"]
    assert hdf5_problems(io.BytesIO(data), len(CLASSES_MAP), int(SR * CLIP_S)) == []


def test_build_shard_packs_a_staged_clip_as_it_was_staged(tmp_path, store, clip_settings):
    items = _sources(tmp_path, {"a": (0,), "b": (1,)})
    # b was staged by an interrupted run when the manifest gave it label 1; now it says 2
    assert stage_clip(items[1], store, clip_settings, str(tmp_path / "w"))["status"] == "ok"
    items[1] = {**items[1], "staged": True, "labels": [2]}
    rec = build_shard(
        "train", 0, items, store, clip_settings, _pack_settings(("hdf5",)),
        workdir=str(tmp_path / "w"),
    )  # fmt: skip
    shard = rec["entry"]["files"]["hdf5"]
    rows = {r.clip_id: r for r in read_hdf5_rows(io.BytesIO(store.read_bytes(shard["path"])))}
    assert (list(rows["a_0"].labels), list(rows["b_0"].labels)) == ([0], [1])  # as staged
    assert store.sha256_of(shard["path"]) == shard["sha256"]


def test_build_shard_all_failed(tmp_path, store, clip_settings):
    gone = {**_item("gone_0", str(tmp_path / "nope.wav")), "staged": False}
    rec = build_shard(
        "train", 5, [gone], store, clip_settings, _pack_settings(), workdir=str(tmp_path)
    )
    assert rec["entry"] is None and rec["clip_ids"] == [] and rec["rejected"] == []
    assert store.listdir("waveforms/train") == []
    assert staging.staged_names(store, "train", "failed") == [f"{staging.clip_key('gone_0')}.json"]


def test_build_shard_error_leaves_no_shard_files(tmp_path, store, clip_settings, monkeypatch):
    items = _sources(tmp_path, {"a": (0,)})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("pipelines.storage.DatasetStore.commit_file", boom)
    with pytest.raises(OSError, match="disk full"):
        build_shard(
            "train", 0, items, store, clip_settings, _pack_settings(), workdir=str(tmp_path)
        )
    assert store.listdir("waveforms/train") == []
    assert not store.exists(staging.commit_record_path("train", 0))


@pytest.mark.parametrize("formats", [("hdf5", "parquet"), ("parquet",)])
def test_build_shard_decode_crash_leaves_nothing(
    tmp_path, store, clip_settings, monkeypatch, formats
):
    """An unexpected error while decoding (not a clip failure) fails the build; the other
    decodes finish first, and neither shard files nor scratch files are left."""
    items = _sources(tmp_path, {f"c{i}": (0,) for i in range(6)})
    real = prepare_item

    def flaky(item, *args):
        if item["clip_id"] == "c2_0":
            raise RuntimeError("decoder crashed")
        return real(item, *args)

    monkeypatch.setattr("pipelines.shard_build.prepare_item", flaky)
    with ThreadPoolExecutor(3) as pool, pytest.raises(RuntimeError, match="decoder crashed"):
        build_shard(
            "train", 0, items, store, clip_settings, _pack_settings(formats),
            workdir=str(tmp_path / "w"), executor=pool, pack_executor=pool,
        )  # fmt: skip
    assert store.listdir("waveforms/train") == []
    assert not store.exists(staging.commit_record_path("train", 0))
    assert not list((tmp_path / "w").glob("audiomill-shard-*"))


def test_is_local():
    assert is_local("/data/a.wav") and is_local("rel/a.wav") and is_local("file:///data/a.wav")
    assert not is_local("s3://bucket/a.wav")
    assert not is_local("https://host/a.wav")
    assert not is_local("https://www.youtube.com/watch?v=abc")


# --------------------------------------------------------------------------- beam_ingest


def test_plan_shards_sorted_deduplicated_numbered_from_next_index():
    clips = iter(["d_0", "a_0", "c_0", "a_0", "e_0", "b_0"])
    assert list(plan_shards(("train", clips), {"train": 3, "eval": 9}, 2)) == [
        ("train", 3, ["a_0", "b_0"]),
        ("train", 4, ["c_0", "d_0"]),
        ("train", 5, ["e_0"]),
    ]
    assert list(plan_shards(("new", ["x_0"]), {"train": 3}, 1000)) == [("new", 0, ["x_0"])]
    assert list(plan_shards(("train", []), {}, 10)) == []


def test_plan_shards_exact_multiple():
    out = list(plan_shards(("s", [f"c{i}" for i in range(6)]), {}, 3))
    assert [(i, len(c)) for _, i, c in out] == [(0, 3), (1, 3)]


def test_plan_direct_shards_sorted_per_split_numbered_from_next_index():
    pairs = [("d", "train"), ("a", "train"), ("x", "eval"), ("c", "train"), ("b", "train")]
    items = [{"clip_id": c, "split": s} for c, s in pairs]
    plans = plan_direct_shards(items, {"train": 3, "eval": 0}, 2)
    assert [(s, i, [x["clip_id"] for x in c]) for s, i, c in plans] == [
        ("eval", 0, ["x"]),
        ("train", 3, ["a", "b"]),
        ("train", 4, ["c", "d"]),
    ]
    assert plan_direct_shards([], {}, 10) == []
    assert plan_direct_shards([{"clip_id": "z", "split": "new"}], {}, 10)[0][:2] == ("new", 0)


def test_local_parallelism():
    # shards built directly: threads within a process, at most one process per shard
    assert local_parallelism(2, direct_shards=1, staged_clips=0) == (1, 2)
    assert local_parallelism(2, direct_shards=5, staged_clips=0) == (1, 2)
    assert local_parallelism(16, direct_shards=16, staged_clips=0) == (4, 4)
    assert local_parallelism(16, direct_shards=3, staged_clips=0) == (3, 6)
    assert local_parallelism(16, direct_shards=1, staged_clips=0) == (1, 16)
    # clips to stage: one process per worker
    assert local_parallelism(4, direct_shards=0, staged_clips=10) == (4, 2)
    assert local_parallelism(4, direct_shards=1, staged_clips=10) == (4, 2)
    assert local_parallelism(0, direct_shards=0, staged_clips=1) == (1, 1)


def test_pipeline_options_defaults():
    opts = pipeline_options([], workers=3).get_all_options(drop_default=True)
    assert DEFAULT_RUNNER_ARGS == (
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
    )
    assert opts["runner"] == "DirectRunner"
    assert opts["direct_running_mode"] == "multi_processing"
    assert opts["direct_num_workers"] == 3
    assert opts["default_sdk_harness_log_level"] == "WARNING"


def test_pipeline_options_run_one_worker_in_this_process():
    opts = pipeline_options([], workers=1).get_all_options()
    assert opts["runner"] == "DirectRunner"
    assert opts["direct_running_mode"] == "in_memory"
    assert opts["direct_num_workers"] == 1
    chosen = pipeline_options(["--direct_running_mode=multi_processing"], workers=1)
    assert chosen.get_all_options()["direct_running_mode"] == "multi_processing"


def test_unknown_beam_options_are_named_without_beam_logging_them(caplog):
    caplog.set_level("WARNING")
    runner = ["--runner=FlinkRunner", "--flink_master=host:8081", "--direct_num_workers", "2"]
    assert unknown_beam_options(runner) == []
    assert unknown_beam_options(["--runer=DataflowRunner", "--foo", "x", "--job_name=j"]) == [
        "--foo",
        "--runer",
    ]
    assert not caplog.records


def test_pipeline_options_user_args_override_defaults():
    opts = pipeline_options(
        [
            "--runner=FlinkRunner",
            "--flink_master=host:8081",
            "--direct_num_workers=7",
            "--default_sdk_harness_log_level=DEBUG",
        ],
        workers=2,
    ).get_all_options(drop_default=True, retain_unknown_options=True)
    assert opts["runner"] == "FlinkRunner"
    assert opts["flink_master"] == "host:8081"
    assert opts["direct_num_workers"] == 7
    assert opts["default_sdk_harness_log_level"] == "DEBUG"


def test_pipeline_options_space_separated_user_args():
    opts = pipeline_options(["--runner", "SparkRunner", "--direct_running_mode", "in_memory"], 2)
    got = opts.get_all_options()
    assert got["runner"] == "SparkRunner"
    assert got["direct_running_mode"] == "in_memory"
    assert got["direct_num_workers"] == 2


def test_direct_runner_is_the_fn_api_runner_with_the_options_provisioned():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    for runner in ("DirectRunner", "directrunner", "Direct"):
        chosen = direct_runner(pipeline_options([f"--runner={runner}"], workers=2))
        assert isinstance(chosen, FnApiRunner), runner
    provisioned = direct_runner(pipeline_options([], workers=3))._provision_info.provision_info
    assert float(provisioned.pipeline_options["beam:option:direct_num_workers:v1"]) == 3
    for runner in ("PrismRunner", "SparkRunner", "FlinkRunner"):
        assert direct_runner(pipeline_options([f"--runner={runner}"], workers=2)) is None


class _RecordWorker(beam.DoFn):
    """A DoFn that writes, per element, the process and the module it runs in."""

    def __init__(self, out: str) -> None:
        self.out = out

    def process(self, element: int):
        import os

        Path(self.out, f"{element}.json").write_text(json.dumps([os.getpid(), sys.argv[0]]))
        yield element


def test_multi_processing_workers_start_quietly_from_the_worker_module(tmp_path, capfd, caplog):
    import os

    from apache_beam.options.pipeline_options import DirectOptions

    options = pipeline_options([], workers=2)
    with beam.Pipeline(runner=direct_runner(options), options=options) as p:
        _ = p | beam.Create(range(8)) | beam.Reshuffle() | beam.ParDo(_RecordWorker(str(tmp_path)))
    ran = [json.loads(f.read_text()) for f in tmp_path.glob("*.json")]
    assert len(ran) == 8
    pids = {pid for pid, _ in ran}
    assert os.getpid() not in pids and len(pids) == 2
    assert {Path(argv0).as_posix().endswith("pipelines/beam_worker.py") for _, argv0 in ran} == {
        True
    }
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"
    err = capfd.readouterr().err
    for line in ("apitools", "Logging handler created", "semi_persistent", "unparseable args"):
        assert line not in err
    assert not [r for r in caplog.records if "direct_running_mode" in r.getMessage()]


def test_run_pipeline_never_tries_prism(monkeypatch):
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.runners.portability.prism_runner import PrismRunner

    ran = []

    def prism(self, pipeline, options):
        ran.append("prism")
        raise RuntimeError("no Prism here")

    fn_api = FnApiRunner.run_pipeline

    def record_fn_api(self, pipeline, options):
        ran.append("fn_api")
        return fn_api(self, pipeline, options)

    monkeypatch.setattr(PrismRunner, "run_pipeline", prism)
    monkeypatch.setattr(FnApiRunner, "run_pipeline", record_fn_api)
    pack = PackSettings(("hdf5",), 16000, 1.0, 2, "0" * 64, "run")
    run_pipeline(
        root="unused", storage_options=None, next_index={}, shard_clips=10,
        clip_settings=ClipSettings(16000, 1.0, 0.9, FetchOptions()), pack_settings=pack,
        options=pipeline_options([], workers=1),
    )  # fmt: skip
    assert ran == ["fn_api"]


def test_plan_files_round_trip_in_chunks(store):
    records = [{"clip_id": f"c{i}", "labels": [i % 3]} for i in range(2500)]
    rels = staging.write_plans(store, "clips", records, 1000)
    assert rels == [f"{staging.PLANS}/clips-{n:06d}.jsonl" for n in range(3)]
    assert [len(staging.read_plan(store, rel)) for rel in rels] == [1000, 1000, 500]
    assert [r for rel in rels for r in staging.read_plan(store, rel)] == records
    assert staging.write_plans(store, "shards", [], 1) == []
    with pytest.raises(ValueError, match="per_file"):
        staging.write_plans(store, "clips", records, 0)
    staging.remove_plans(store)
    assert store.listdir(staging.PLANS) == []


def test_run_pipeline_starts_from_plan_file_paths(tmp_path, store, clip_settings, monkeypatch):
    import apache_beam as beam

    created = []
    real_create = beam.Create

    def recording_create(values, **kwargs):
        created.extend(values)
        return real_create(values, **kwargs)

    monkeypatch.setattr(beam, "Create", recording_create)
    direct = [("train", 0, _sources(tmp_path, {"a": (0,), "b": (1,)}))]
    write_media(tmp_path / "src" / "c.wav", 1.0, 16000)
    shard_plans = staging.write_plans(store, "shards", direct, 1)
    clip_plans = staging.write_plans(
        store, "clips", [_item("c_0", str(tmp_path / "src" / "c.wav"))], 10
    )
    run_pipeline(
        shard_plans=shard_plans, clip_plans=clip_plans, root=store.url(), storage_options=None,
        next_index={"train": 1}, shard_clips=10, clip_settings=clip_settings,
        pack_settings=_pack_settings(("hdf5",)), options=pipeline_options([], workers=1),
    )  # fmt: skip
    assert created == shard_plans + clip_plans  # the graph holds paths, workers read the plans
    commits = [staging.read_json(store, staging.commit_record_path("train", i)) for i in (0, 1)]
    assert [c["clip_ids"] for c in commits] == [["a_0", "b_0"], ["c_0"]]


def test_run_pipeline_turns_an_interrupted_dofn_back_into_keyboard_interrupt(
    tmp_path, store, clip_settings, monkeypatch, caplog
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C raises in the thread Beam runs a DoFn in

    monkeypatch.setattr("pipelines.beam_ingest.build_shard", interrupted)
    shard_plans = staging.write_plans(
        store, "shards", [("train", 0, _sources(tmp_path, {"a": (0,)}))], 1
    )
    with pytest.raises(KeyboardInterrupt) as caught:
        run_pipeline(
            shard_plans=shard_plans, root=store.url(), storage_options=None, next_index={},
            shard_clips=10, clip_settings=clip_settings, pack_settings=_pack_settings(("hdf5",)),
            options=pipeline_options([], workers=1),
        )  # fmt: skip
    assert isinstance(caught.value.__cause__, RuntimeError)  # Beam's wrapping, kept as cause
    assert not [r for r in caplog.records if r.name == BEAM_DOFN_LOGGER]  # no traceback dump


def test_dofn_errors_other_than_interrupts_are_still_logged():
    logger, quiet = logging.getLogger("test"), QuietInterrupts()
    records = []
    for exc in (KeyboardInterrupt(), ValueError("bad clip")):
        try:
            try:
                raise exc
            except BaseException as inner:
                raise RuntimeError(f"{inner!r} [while running 'BuildShard']") from inner
        except RuntimeError:
            records.append(logger.makeRecord("x", 40, "f", 1, "msg", (), sys.exc_info()))
    assert [quiet.filter(r) for r in records] == [False, True]
    assert quiet.filter(logger.makeRecord("x", 40, "f", 1, "no exception", (), None))


def test_caused_by_interrupt_follows_causes_and_contexts():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        wrapped = exc
    assert caused_by_interrupt(wrapped)
    assert not caused_by_interrupt(RuntimeError("plain"))
    loop = RuntimeError("loop")
    loop.__context__ = ValueError("back")
    loop.__context__.__context__ = loop
    assert not caused_by_interrupt(loop)


# --------------------------------------------------------------------------- dataset_state


def _empty_manifest() -> DatasetManifest:
    return DatasetManifest(
        class_map_sha256=CLASSES_MAP.sha256,
        num_classes=len(CLASSES_MAP),
        sample_rate=SR,
        clip_seconds=CLIP_S,
        formats=["hdf5"],
    )


def test_load_and_save_manifest(store):
    assert load_manifest(store) is None
    m = _empty_manifest()
    m.split("train").shards.append(
        ShardEntry(0, 2, {"hdf5": ShardFile("waveforms/train/shard-00000.h5", "ab", 9)}, "r", "cd")
    )
    record_run(m, {"stage": "ingest", "run_id": "r"})
    save_manifest(store, m)
    assert load_manifest(store) == m
    assert json.loads(store.read_text(MANIFEST))["kind"] == "audiomill-dataset"
    assert m.stages["ingest"]["run_id"] == "r"
    assert store.listdir() == [MANIFEST]  # no temporaries left


@pytest.mark.parametrize(
    "text", ["{not json", "{}", '{"schema_version": 99}', '{"schema_version": 1}']
)
def test_load_manifest_unreadable(store, text):
    store.write_bytes_atomic(MANIFEST, text.encode())
    with pytest.raises(ValueError, match="unreadable manifest"):
        load_manifest(store)


def test_read_ledger_over_several_parts_and_splits(store):
    assert read_ledger(store).num_rows == 0
    assert read_ledger(store).schema == LEDGER_SCHEMA
    _write_part(store, "ledger/train/shard-00000.parquet", [_failed("a_0", "timeout", 1.0)])
    _write_part(
        store,
        "ledger/train/failures-r2.parquet",
        [_failed("a_0", "not_found", 2.0), _failed("b_0", "private", 2.0)],
    )
    _write_part(store, "ledger/eval/rejected-r2-00000.parquet", [_failed("e_0", "validation", 3)])
    store.write_bytes_atomic("ledger/train/shard-00001.parquet.tmp-deadbeef", b"partial")
    store.write_bytes_atomic("ledger/train/notes.txt", b"not a part")
    assert read_ledger(store, "train").num_rows == 3
    assert read_ledger(store, "eval").num_rows == 1
    assert read_ledger(store).num_rows == 4
    state = ledger_state(store, "train")
    assert {k: v["reason"] for k, v in state.items()} == {"a_0": "not_found", "b_0": "private"}
    assert set(ledger_state(store)) == {"a_0", "b_0", "e_0"}


def test_adopt_commits(tmp_path, store, clip_settings):
    metas = _stage(
        tmp_path,
        store,
        clip_settings,
        {"a": (0,), "b": (1,), "q": (2,)},
        silent=("q",),
    )
    manifest = _empty_manifest()
    assert adopt_commits(store, manifest, "train") == []
    rec0 = pack_shard("train", 0, ["a_0", "b_0"], store, _pack_settings())
    rec1 = pack_shard("train", 1, ["q_0"], store, _pack_settings())  # all rejected
    adopted = adopt_commits(store, manifest, "train")
    assert adopted == [rec0, rec1]
    assert [s.index for s in manifest.split("train").shards] == [0]
    assert manifest.split("train").num_clips == 2
    assert manifest.split("train").next_index == 1
    assert load_manifest(store) == manifest  # saved
    assert staging.staged_names(store, "train", "clips") == []
    assert staging.staged_names(store, "train", "commits") == []
    assert all(not store.exists(staging.staged_clip_path("train", c)) for c in metas)
    # idempotent: nothing left to adopt
    assert adopt_commits(store, manifest, "train") == []
    assert [s.index for s in manifest.split("train").shards] == [0]


def test_adopt_commits_after_a_crash_between_save_and_cleanup(tmp_path, store, clip_settings):
    _stage(tmp_path, store, clip_settings, {"a": (0,)})
    manifest = _empty_manifest()
    rec = pack_shard("train", 0, ["a_0"], store, _pack_settings())
    manifest.split("train").shards.append(ShardEntry.from_dict(rec["entry"]))  # already listed
    adopt_commits(store, manifest, "train")
    assert [s.index for s in manifest.split("train").shards] == [0]  # not listed twice


def test_adopt_commits_saves_manifest_before_deleting_staged_clips(
    tmp_path, store, clip_settings, monkeypatch
):
    _stage(tmp_path, store, clip_settings, {"a": (0,), "b": (1,)})
    pack_shard("train", 0, ["a_0", "b_0"], store, _pack_settings())
    manifest = _empty_manifest()
    seen = []
    original = DatasetStore.remove

    def remove(self, rel):
        on_disk = load_manifest(self)
        seen.append((rel, None if on_disk is None else on_disk.split("train").num_clips))
        original(self, rel)

    monkeypatch.setattr(DatasetStore, "remove", remove)
    adopt_commits(store, manifest, "train")
    assert len(seen) == 3  # two staged clips, one commit record
    assert all(clips == 2 for _, clips in seen), seen
    assert seen[-1][0] == staging.commit_record_path("train", 0)


def test_adopt_commits_crash_before_save_keeps_staged_clips(
    tmp_path, store, clip_settings, monkeypatch
):
    _stage(tmp_path, store, clip_settings, {"a": (0,)})
    pack_shard("train", 0, ["a_0"], store, _pack_settings())

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("pipelines.dataset_state.save_manifest", boom)
    with pytest.raises(OSError):
        adopt_commits(store, _empty_manifest(), "train")
    assert store.exists(staging.staged_clip_path("train", "a_0"))
    assert store.exists(staging.commit_record_path("train", 0))


def test_remove_orphans(store):
    crashed = temporary_name("waveforms/train/shard-00001.parquet")
    manifest = _empty_manifest()
    manifest.split("train").shards.append(
        ShardEntry(
            0,
            1,
            {
                "hdf5": ShardFile("waveforms/train/shard-00000.h5", "x", 1),
                "parquet": ShardFile("waveforms/train/shard-00000.parquet", "y", 1),
            },
            "r",
            "z",
        )
    )
    for rel in (
        "waveforms/train/shard-00000.h5",
        "waveforms/train/shard-00000.parquet",
        "waveforms/train/shard-00001.h5",  # uncommitted
        crashed,  # a crashed write's temporary
        "ledger/train/shard-00000.parquet",
        "ledger/train/shard-00001.parquet",  # its shard never made the manifest
        "ledger/train/shard-00002.parquet",  # committed by pack, adoption pending
        "ledger/train/failures-run1.parquet",
        "ledger/train/rejected-run1-00003.parquet",
        "ledger/eval/shard-00005.parquet",  # other split: untouched
    ):
        store.write_bytes_atomic(rel, b"x")
    store.write_json_atomic(staging.commit_record_path("train", 2), {"index": 2})
    removed = remove_orphans(store, manifest, "train")
    assert sorted(removed) == [
        "ledger/train/shard-00001.parquet",
        "waveforms/train/shard-00001.h5",
        crashed,
    ]
    assert store.listdir("waveforms/train") == ["shard-00000.h5", "shard-00000.parquet"]
    assert store.listdir("ledger/train") == [
        "failures-run1.parquet",
        "rejected-run1-00003.parquet",
        "shard-00000.parquet",
        "shard-00002.parquet",
    ]
    assert store.listdir("ledger/eval") == ["shard-00005.parquet"]
    assert remove_orphans(store, manifest, "train") == []
    assert remove_orphans(store, manifest, "never-seen") == []


def test_remove_orphans_six_digit_shard_indices(store):
    manifest = _empty_manifest()
    manifest.split("train").shards.append(
        ShardEntry(
            100000, 1, {"hdf5": ShardFile("waveforms/train/shard-100000.h5", "x", 1)}, "r", "z"
        )
    )
    store.write_bytes_atomic("waveforms/train/shard-100000.h5", b"x")
    store.write_bytes_atomic("ledger/train/shard-100000.parquet", b"x")
    assert remove_orphans(store, manifest, "train") == []
    assert store.exists("ledger/train/shard-100000.parquet")


# --------------------------------------------------------------------------- dataset_tools


def test_dataset_info(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    info = dataset_info(store.url())
    shard = manifest.split("train").shards[0]
    total = sum(f.bytes for f in shard.files.values())
    assert info["dataset"] == store.url()
    assert (info["sample_rate"], info["clip_seconds"], info["num_classes"]) == (SR, CLIP_S, 3)
    assert info["class_map_sha256"] == CLASSES_MAP.sha256
    assert info["formats"] == ["hdf5", "parquet"]
    assert info["clips"] == 3 and info["bytes"] == total and info["runs"] == 0
    assert info["splits"] == {
        "train": {
            "clips": 3,
            "shards": 1,
            "bytes": total,
            "requested": 5,
            "failed": 2,
            "failures_by_reason": {"not_found": 1, "validation": 1},
        }
    }
    json.dumps(info)


def test_dataset_tools_refuse_a_non_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an audiomill dataset"):
        dataset_info(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="not an audiomill dataset"):
        verify_dataset(str(tmp_path / "empty"))


def test_verify_sound_dataset(tmp_path, store, clip_settings):
    _dataset(tmp_path, store, clip_settings)
    calls = []
    report = verify_dataset(store.url(), progress=lambda done, total: calls.append((done, total)))
    assert report.problems == []
    assert report.ok
    assert report.files_checked == 2
    assert report.clips_checked == 3
    assert calls == [(1, 2), (2, 2)]


def test_verify_finds_size_and_checksum_mismatch(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    f = manifest.split("train").shards[0].files["parquet"]
    with open(store.local_path(f.path), "ab") as fh:
        fh.write(b"\0")
    report = verify_dataset(store.url())
    assert not report.ok
    assert report.problems == [
        f"{f.path}: sha256 mismatch (size {f.bytes + 1} != manifest {f.bytes})",
    ]


def test_verify_finds_a_missing_file(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    f = manifest.split("train").shards[0].files["hdf5"]
    store.remove(f.path)
    assert verify_dataset(store.url()).problems == [f"{f.path}: missing"]


def test_verify_finds_a_foreign_class_map(tmp_path, store, clip_settings):
    _dataset(tmp_path, store, clip_settings)
    store.write_bytes_atomic(CLASSES, ClassMap.from_names(["x", "y", "z"]).to_csv_text().encode())
    assert verify_dataset(store.url()).problems == [
        "classes.csv does not match the manifest's class map digest"
    ]
    store.write_bytes_atomic(CLASSES, b"not,a,class map\n")
    (problem,) = verify_dataset(store.url()).problems
    assert problem.startswith("classes.csv unreadable")
    store.remove(CLASSES)
    (problem,) = verify_dataset(store.url()).problems
    assert problem.startswith("classes.csv unreadable")


def test_verify_finds_a_ledger_row_pointing_elsewhere(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    wrong = {
        "clip_id": "cat_0",
        "split": "train",
        "status": STATUS_OK,
        "run_id": "run9",
        "recorded_at": 1e12,  # newer than the shard's own row
        "shard": 0,
        "row": 7,
    }
    _write_part(store, "ledger/train/shard-00009.parquet", [wrong])
    files = manifest.split("train").shards[0].files
    assert verify_dataset(store.url()).problems == [
        f"{files['hdf5'].path}: clip cat_0: ledger says shard 0 row 7",
        f"{files['parquet'].path}: clip cat_0: ledger says shard 0 row 7",
    ]


def test_verify_finds_clips_without_ledger_rows(tmp_path, store, clip_settings):
    _dataset(tmp_path, store, clip_settings)
    store.remove("ledger/train/shard-00000.parquet")
    assert verify_dataset(store.url()).problems == [  # the part, not each of its clips
        "ledger/train/shard-00000.parquet: missing (the ledger part of committed shard 0, 3 "
        "clips): its clips are not checked against the ledger"
    ]
    store.remove("ledger/train/failures-run1.parquet")
    assert verify_dataset(store.url()).problems[-1] == "ledger is empty but shards exist"


def test_verify_finds_a_row_count_mismatch(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    shard = manifest.split("train").shards[0]
    shard.num_clips = 4
    save_manifest(store, manifest)
    problems = verify_dataset(store.url()).problems
    assert problems == [f"{f.path}: 3 rows, manifest says 4" for f in shard.files.values()]


def _rewrite_parquet(store: DatasetStore, manifest: DatasetManifest, f, change) -> None:
    """Replace the Parquet shard file ``f`` by ``change(table)``, and record the new file in the
    manifest as a commit would (so only its layout is wrong)."""
    path = store.local_path(f.path)
    pq.write_table(change(pq.read_table(path)), path)
    f.sha256, f.bytes = store.sha256_of(f.path), store.size(f.path)
    save_manifest(store, manifest)


def test_verify_checks_waveform_parquet_layout(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)  # 3 classes, clips of SR * CLIP_S
    f = manifest.split("train").shards[0].files["parquet"]
    column = "num_samples"
    _rewrite_parquet(
        store,
        manifest,
        f,
        lambda t: t.set_column(
            t.schema.get_field_index(column), column, t[column].cast(pa.int32())
        ),
    )
    assert verify_dataset(store.url()).problems == [f"{f.path}: num_samples: int32, expected int64"]

    def out_of_range(t: pa.Table) -> pa.Table:
        labels = pa.array([[0, 3], [], [2]], pa.list_(pa.int32()))
        lengths = pa.array([SR * CLIP_S + 1, 1, 1], pa.int64())
        t = t.set_column(t.schema.get_field_index("labels"), "labels", labels)
        return t.set_column(t.schema.get_field_index(column), column, lengths)

    _rewrite_parquet(store, manifest, f, out_of_range)
    assert verify_dataset(store.url()).problems == [
        f"{f.path}: labels: class indices 0..3, the dataset has classes 0..2",
        f"{f.path}: num_samples: up to {int(SR * CLIP_S) + 1}, clips hold {int(SR * CLIP_S)}",
    ]
    _rewrite_parquet(store, manifest, f, lambda t: t.drop_columns(["audio", "start_s"]))
    assert verify_dataset(store.url()).problems == [
        f"{f.path}: missing columns ['start_s', 'audio']"
    ]


def test_verify_same_clip_in_two_splits(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)  # train: both_0, cat_0, dog_0
    src = tmp_path / "src" / "dog.wav"
    out = stage_clip(_item("dog_0", str(src), split="eval"), store, clip_settings, str(tmp_path))
    assert out["status"] == "ok"
    pack_shard("eval", 0, ["dog_0"], store, _pack_settings(run_id="run2"))
    adopt_commits(store, manifest, "eval")
    # not a clip in two shards of one directory: one clip in two splits, which leaks
    assert verify_dataset(store.url()).problems == [
        "1 clip id(s) are in more than one split, e.g. dog_0 (eval, train): a clip id names one "
        "clip of the dataset, and a model trained on one of those splits and evaluated on "
        "another is scored on clips it was trained on"
    ]


def _embed(store: DatasetStore, manifest: DatasetManifest, split: str, index: int, ids: list[str]):
    """Commit embedding shard ``index`` of vggish/``split`` (HDF5 and Parquet) holding ``ids``."""
    n = len(ids)
    rows = EmbeddingRows(
        x=np.random.default_rng(index).integers(0, 256, (n, 1, 128), dtype=np.uint8),
        y=np.zeros((n, len(CLASSES_MAP)), bool),
        video_ids=ids,
        clip_ids=ids,
        num_frames=np.ones(n, np.int32),
    )
    shard = commit_embedding_shard(
        store, "vggish", split, index, rows, {"model": "vggish"}, ("hdf5", "parquet"), "emb"
    )
    manifest.embedding_split("vggish", split).shards.append(shard)
    save_manifest(store, manifest)
    return shard


def test_verify_checks_embedding_shards(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)  # train shard 0: both_0, cat_0, dog_0
    computed = _embed(store, manifest, "train", 0, ["both_0", "cat_0", "dog_0"])
    imported = _embed(store, manifest, "bal", 0, ["x_0", "y_0"])  # a split without waveforms
    report = verify_dataset(store.url())
    assert report.problems == []
    assert (report.files_checked, report.clips_checked) == (6, 5)
    h5 = store.local_path(imported.files["hdf5"].path)
    data = bytearray(h5.read_bytes())
    data[len(data) // 2] ^= 0xFF
    h5.write_bytes(bytes(data))
    with open(store.local_path(computed.files["parquet"].path), "r+b") as fh:
        fh.truncate(100)
    parquet = computed.files["parquet"]
    assert verify_dataset(store.url()).problems == [
        f"{imported.files['hdf5'].path}: sha256 mismatch",
        f"{parquet.path}: sha256 mismatch (size 100 != manifest {parquet.bytes})",
    ]


def test_verify_checks_embedding_layout(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    f = _embed(store, manifest, "bal", 0, ["x_0", "y_0"]).files["hdf5"]
    with h5py.File(store.local_path(f.path), "r+") as hf:
        del hf["num_frames"], hf["x"]
        hf["num_frames"] = np.ones(2, np.int64)
        hf["x"] = np.zeros((2, 128), np.uint8)
    f.sha256, f.bytes = store.sha256_of(f.path), store.size(f.path)
    save_manifest(store, manifest)
    assert verify_dataset(store.url()).problems == [
        f"{f.path}: x: uint8(2, 128), expected uint8(2, F, 128)",
        f"{f.path}: num_frames: int64(2,), expected int32(2,)",
    ]
    with h5py.File(store.local_path(f.path), "r+") as hf:
        del hf["y"]
    f.sha256, f.bytes = store.sha256_of(f.path), store.size(f.path)
    save_manifest(store, manifest)
    assert verify_dataset(store.url()).problems == [f"{f.path}: missing datasets ['y']"]


def test_verify_checks_embedding_parquet_layout(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    f = _embed(store, manifest, "bal", 0, ["x_0", "y_0"]).files["parquet"]
    _rewrite_parquet(
        store,
        manifest,
        f,
        lambda t: t.set_column(
            t.schema.get_field_index("labels"),
            "labels",
            pa.array([[1], [-1]], pa.list_(pa.int32())),
        ),
    )
    assert verify_dataset(store.url()).problems == [
        f"{f.path}: labels: class indices -1..1, the dataset has classes 0..2"
    ]
    _rewrite_parquet(
        store,
        manifest,
        f,
        lambda t: t.set_column(
            t.schema.get_field_index("num_frames"), "num_frames", t["num_frames"].cast(pa.int64())
        ),
    )
    assert verify_dataset(store.url()).problems == [f"{f.path}: num_frames: int64, expected int32"]
    _rewrite_parquet(store, manifest, f, lambda t: t.replace_schema_metadata(None))
    assert verify_dataset(store.url()).problems == [
        f"{f.path}: no audiomill.frames and audiomill.dim in the schema's metadata"
    ]


def test_verify_checks_embedding_row_alignment(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    reordered = _embed(store, manifest, "train", 0, ["cat_0", "both_0", "dog_0"])
    stray = _embed(store, manifest, "train", 3, ["cat_0"])
    problems = verify_dataset(store.url()).problems
    assert [p for p in problems if "clip cat_0 also in" not in p] == [
        f"{reordered.files['hdf5'].path}: clip ids are not those of waveform shard 0 in the same "
        "order",
        f"{reordered.files['parquet'].path}: clip ids are not those of waveform shard 0 in the "
        "same order",
        f"{stray.files['hdf5'].path}: no waveform shard 3 in split train to align with",
        f"{stray.files['parquet'].path}: no waveform shard 3 in split train to align with",
    ]
    assert f"{stray.files['hdf5'].path}: clip cat_0 also in shard 0" in problems


def test_verify_finds_embedding_files_outside_the_manifest(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    f = _embed(store, manifest, "bal", 0, ["x_0"]).files["hdf5"]
    orphan = embedding_shard_path("vggish", "bal", 1, "hdf5")
    store.write_bytes_atomic(orphan, store.read_bytes(f.path))
    temporary = temporary_name(orphan)
    store.write_bytes_atomic(temporary, b"")  # a killed shard write leaves it
    report = verify_dataset(store.url())
    assert report.problems == [f"{p}: not in the manifest" for p in (orphan, temporary)]
    assert report.hints == [
        "an interrupted embed or import leaves this behind: run the same embed or import again, "
        "which replaces or removes these files"
    ]


def test_dataset_info_counts_embeddings(tmp_path, store, clip_settings):
    manifest = _dataset(tmp_path, store, clip_settings)
    computed = _embed(store, manifest, "train", 0, ["both_0", "cat_0", "dog_0"]).files
    imported = _embed(store, manifest, "bal", 0, ["x_0", "y_0"]).files
    info = dataset_info(store.url())
    assert info["clips"] == 3 and list(info["splits"]) == ["train"]
    assert info["embeddings"] == {
        "vggish": {
            "bal": {"clips": 2, "shards": 1, "bytes": sum(f.bytes for f in imported.values())},
            "train": {"clips": 3, "shards": 1, "bytes": sum(f.bytes for f in computed.values())},
        }
    }


def test_dataset_commands_on_imported_embeddings_only(tmp_path):
    store = DatasetStore(tmp_path / "ds")
    manifest = DatasetManifest(CLASSES_MAP.sha256, len(CLASSES_MAP), 16000, 10.0, ["hdf5"])
    store.write_bytes_atomic(CLASSES, CLASSES_MAP.to_csv_text().encode())
    f = _embed(store, manifest, "bal", 0, ["x_0", "y_0"]).files["hdf5"]
    info = audiomill("dataset", "info", store.url()).stdout
    assert info.startswith(  # the importer's 16000 Hz x 10.0 s are placeholders, not facts
        f"{store.url()}: vggish embeddings of 2 clips, 0.0 MB; no waveforms, {len(CLASSES_MAP)} "
        "classes\n"
    )
    assert "│ vggish │ bal   │ 2     │ 1      │" in info
    assert json.loads(audiomill("dataset", "info", store.url(), "--json").stdout)["embeddings"]
    assert audiomill("dataset", "verify", store.url()).stdout.endswith(
        "2 files, 2 clips checked: OK\n"
    )
    with open(store.local_path(f.path), "r+b") as fh:
        fh.truncate(100)
    proc = audiomill("dataset", "verify", store.url(), check=False)
    assert proc.returncode == 1
    assert f"problem: {f.path}: sha256 mismatch" in proc.stdout
