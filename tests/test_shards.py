"""Waveform shard layouts (``schemas.shards``) and their streaming writers
(``pipelines.shard_writers``): round trips, PANNs compatibility, Parquet/FLAC, writer errors."""

from __future__ import annotations

import hashlib
import io
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipelines.row_digest import MAX_WAITING_ROWS
from pipelines.shard_writers import HDF5ShardWriter, ParquetShardWriter, ShardRow
from schemas.shards import (
    AUDIO_NAME_MIN_WIDTH,
    HDF5_REQUIRED,
    PARQUET_ROW_GROUP,
    PARQUET_WAVEFORM_SCHEMA,
    WAVEFORM_SCHEMA_VERSION,
    audio_name_for,
    flac_bytes,
    hdf5_problems,
    read_hdf5_rows,
    read_parquet_rows,
)

SR = 8000
T = 800  # samples per row (0.1 s at 8 kHz): small and fast
C = 5  # classes


def _rows(n: int = 4, seed: int = 0) -> list[dict]:
    """``n`` clips with distinct waveforms, labels, true lengths and starts (None included)."""
    rng = np.random.default_rng(seed)
    label_sets = [[0], [1, 3], [], [0, 2, 4], [4]]
    starts = [30.0, None, 0.0, 12.345, None]
    out = []
    for i in range(n):
        length = T - 100 * (i % 4)  # some rows are padded
        wave = np.zeros(T, dtype=np.int16)
        wave[:length] = rng.integers(-20000, 20000, size=length, dtype=np.int16)
        name = f"Y{'-x_' * (i + 4)}{i:02d}.wav"  # grows past 20 bytes
        out.append(
            {
                "clip_id": f"clip-{i}_{i * 1000}",
                "audio_name": name,
                "waveform": wave,
                "labels": label_sets[i % len(label_sets)],
                "num_samples": length,
                "start_s": starts[i % len(starts)],
            }
        )
    return out


def _hdf5_writer(path: Path, rows: list[dict], **attrs) -> HDF5ShardWriter:
    return HDF5ShardWriter(
        str(path),
        [ShardRow.of(r) for r in rows],
        num_samples=T,
        num_classes=C,
        sample_rate=SR,
        attrs=attrs or None,
    )


def _write_hdf5(path: Path, rows: list[dict], **attrs) -> Path:
    writer = _hdf5_writer(path, rows, **attrs)
    for i, r in enumerate(rows):
        assert writer.add(r["waveform"], r["num_samples"]) == i
    assert writer.close() == hashlib.sha256(path.read_bytes()).hexdigest()
    return path


def _write_parquet(path: Path, rows: list[dict], **metadata) -> Path:
    writer = ParquetShardWriter(str(path), sample_rate=SR, metadata=metadata or None)
    for i, r in enumerate(rows):
        assert writer.add(**r, source=f"src-{i}", source_sample_rate=44100) == i
    writer.close()
    return path


# --------------------------------------------------------------------------- audio_name_for


def test_audio_name_for_youtube_is_panns_name():
    assert audio_name_for("--PJHxphWEs_30000", "youtube", "--PJHxphWEs") == "Y--PJHxphWEs.wav"


@pytest.mark.parametrize("kind", ["url", "path"])
def test_audio_name_for_custom_audio_is_clip_id(kind):
    assert audio_name_for("dogs_bark.wav-1a2b3c4d_0", kind, "dogs/bark.wav") == (
        "dogs_bark.wav-1a2b3c4d_0"
    )


# --------------------------------------------------------------------------- flac_bytes


def test_flac_bytes_is_a_lossless_flac_file():
    wave = np.random.default_rng(1).integers(-32768, 32767, size=1234, dtype=np.int16)
    data = flac_bytes(wave, SR)
    assert data[:4] == b"fLaC"
    decoded, sr = sf.read(io.BytesIO(data), dtype="int16")
    assert sr == SR
    np.testing.assert_array_equal(decoded, wave)


# --------------------------------------------------------------------------- HDF5


def test_hdf5_round_trip(tmp_path):
    rows = _rows(5)
    path = _write_hdf5(tmp_path / "s.h5", rows, class_map_sha256="ab" * 32, clip_seconds=0.1)
    back = list(read_hdf5_rows(str(path)))
    assert [r.clip_id for r in back] == [r["clip_id"] for r in rows]
    for got, want in zip(back, rows, strict=True):
        assert got.audio_name == want["audio_name"]
        assert got.labels == sorted(want["labels"])
        assert got.num_samples == want["num_samples"]
        assert got.start_s == want["start_s"]
        assert got.waveform.dtype == np.int16
        np.testing.assert_array_equal(got.waveform, want["waveform"])
    assert hdf5_problems(str(path), C, T) == []


def test_hdf5_layout_targets_and_nan_start(tmp_path):
    rows = _rows(5)
    path = _write_hdf5(tmp_path / "s.h5", rows, class_map_sha256="ab" * 32)
    with h5py.File(path, "r") as hf:
        assert hf["target"].dtype == np.bool_
        expected = np.zeros((5, C), dtype=bool)
        for i, r in enumerate(rows):
            expected[i, r["labels"]] = True
        np.testing.assert_array_equal(hf["target"][:], expected)
        assert not hf["target"][2].any()  # a row without labels stays all False
        np.testing.assert_array_equal(hf["num_samples"][:], [r["num_samples"] for r in rows])
        starts = hf["start_s"][:]
        assert hf["start_s"].dtype == np.float64
        assert math.isnan(starts[1]) and math.isnan(starts[4])
        assert starts[0] == 30.0 and starts[3] == 12.345
        assert hf["clip_id"].asstr()[:].tolist() == [r["clip_id"] for r in rows]
        assert hf.attrs["schema_version"] == WAVEFORM_SCHEMA_VERSION
        assert hf.attrs["class_map_sha256"] == "ab" * 32


def test_hdf5_audio_name_width_grows_past_20(tmp_path):
    rows = _rows(5)
    longest = max(len(r["audio_name"]) for r in rows)
    assert longest > AUDIO_NAME_MIN_WIDTH
    path = _write_hdf5(tmp_path / "s.h5", rows)
    with h5py.File(path, "r") as hf:
        assert hf["audio_name"].dtype == np.dtype(f"S{longest}")
        assert [n.decode() for n in hf["audio_name"][:]] == [r["audio_name"] for r in rows]


def test_hdf5_audio_name_width_never_below_20(tmp_path):
    rows = _rows(1)
    rows[0]["audio_name"] = "Yabc.wav"
    path = _write_hdf5(tmp_path / "s.h5", rows)
    with h5py.File(path, "r") as hf:
        assert hf["audio_name"].dtype == np.dtype(f"S{AUDIO_NAME_MIN_WIDTH}")


def test_hdf5_non_ascii_audio_name_round_trips(tmp_path):
    rows = _rows(2)
    rows[1]["audio_name"] = "chœur_été_ñandú_äöü_0.flac"
    path = _write_hdf5(tmp_path / "s.h5", rows)
    assert [r.audio_name for r in read_hdf5_rows(str(path))][1] == rows[1]["audio_name"]


def test_hdf5_reads_from_open_file_object(tmp_path):
    rows = _rows(3)
    path = _write_hdf5(tmp_path / "s.h5", rows)
    data = path.read_bytes()
    assert [r.clip_id for r in read_hdf5_rows(io.BytesIO(data))] == [r["clip_id"] for r in rows]
    assert hdf5_problems(io.BytesIO(data), C, T) == []


def test_hdf5_is_readable_by_a_panns_style_loader(tmp_path):
    """PANNs' data generator knows only audio_name, waveform, target and attr sample_rate."""
    rows = _rows(4)
    path = _write_hdf5(tmp_path / "s.h5", rows)
    with h5py.File(path, "r") as hf:
        # utils/create_indexes.py and data_generator.py of PANNs, reduced to what they touch
        audio_names = [name.decode() for name in hf["audio_name"][:]]
        targets = hf["target"][:].astype(np.float32)
        sample_rate = hf.attrs["sample_rate"]
        for i in range(len(audio_names)):
            waveform = hf["waveform"][i].astype(np.float32) / 32767.0
            assert waveform.shape == (T,)
            target = hf["target"][i].astype(np.float32)
            assert target.shape == (C,)
        assert hf["waveform"].dtype == np.int16
        assert hf["waveform"].shape == (4, T)
        assert hf["audio_name"].dtype.kind == "S"
        assert hf["audio_name"].dtype.itemsize >= 20
    assert audio_names == [r["audio_name"] for r in rows]
    assert isinstance(sample_rate, np.int32) and sample_rate == SR
    assert targets.shape == (4, C) and targets.sum() == sum(len(r["labels"]) for r in rows)


def test_hdf5_writer_threads_in_any_order_give_the_same_file_and_its_digest(tmp_path):
    rows = _rows(12)
    want = _write_hdf5(tmp_path / "ordered.h5", rows).read_bytes()
    path = tmp_path / "threads.h5"
    writer = _hdf5_writer(path, rows)
    with ThreadPoolExecutor(3) as pool:
        list(
            pool.map(
                lambda i: writer.write_waveform(i, rows[i]["waveform"], rows[i]["num_samples"]),
                range(12),
            )
        )
    assert writer.close() == hashlib.sha256(want).hexdigest()
    assert path.read_bytes() == want


def test_hdf5_writer_rows_far_out_of_order_give_the_file_but_no_digest(tmp_path):
    rows = _rows(MAX_WAITING_ROWS + 3)
    want = _write_hdf5(tmp_path / "ordered.h5", rows).read_bytes()
    path = tmp_path / "reversed.h5"
    writer = _hdf5_writer(path, rows)
    for i in reversed(range(len(rows))):
        writer.write_waveform(i, rows[i]["waveform"], rows[i]["num_samples"])
    assert writer.close() is None
    assert path.read_bytes() == want


def test_hdf5_writer_of_no_rows(tmp_path):
    path = tmp_path / "empty.h5"
    assert _hdf5_writer(path, []).close() is None
    assert list(read_hdf5_rows(str(path))) == []
    assert hdf5_problems(str(path), C, T) == []


def test_hdf5_writer_refuses_rows_past_num_rows(tmp_path):
    rows = _rows(3)
    writer = _hdf5_writer(tmp_path / "s.h5", rows[:2])
    writer.add(rows[0]["waveform"], T)
    writer.add(rows[1]["waveform"], T)
    with pytest.raises(IndexError, match="full"):
        writer.add(rows[2]["waveform"], T)
    writer.close()


def test_hdf5_writer_close_with_rows_missing_raises_and_releases_file(tmp_path):
    path = tmp_path / "s.h5"
    rows = _rows(3)
    writer = _hdf5_writer(path, rows)
    writer.add(rows[0]["waveform"], T)
    with pytest.raises(ValueError, match="1 rows written, 3 allocated"):
        writer.close()
    # the file handle was closed: the file can be opened for writing again
    with h5py.File(path, "w"):
        pass


# --------------------------------------------------------------------------- hdf5_problems


def _conforming(path: Path, skip: str | None = None, **overrides) -> Path:
    """An HDF5 shard of 2 rows built by hand, with one dataset left out or replaced."""
    n = 2
    data = {
        "audio_name": np.array([b"Yaaaaaaaaaaa.wav", b"Ybbbbbbbbbbb.wav"], dtype="S20"),
        "waveform": np.zeros((n, T), dtype=np.int16),
        "target": np.zeros((n, C), dtype=np.bool_),
        "clip_id": np.array(["a", "b"], dtype=object),
        "num_samples": np.full(n, T, dtype=np.int64),
        "start_s": np.zeros(n, dtype=np.float64),
    }
    data.update(overrides)
    with h5py.File(path, "w") as hf:
        for key, value in data.items():
            if key == skip:
                continue
            if key == "clip_id" and value.dtype == object:
                hf.create_dataset(key, data=value, dtype=h5py.string_dtype("utf-8"))
            else:
                hf.create_dataset(key, data=value)
        hf.attrs["sample_rate"] = np.int32(SR)
    return path


def test_hdf5_problems_accepts_hand_built_conforming_file(tmp_path):
    assert hdf5_problems(str(_conforming(tmp_path / "ok.h5")), C, T) == []


@pytest.mark.parametrize("missing", HDF5_REQUIRED)
def test_hdf5_problems_missing_dataset(tmp_path, missing):
    problems = hdf5_problems(str(_conforming(tmp_path / "m.h5", skip=missing)), C, T)
    assert problems == [f"missing datasets {[missing]}"]


def test_hdf5_problems_wrong_dtypes(tmp_path):
    path = _conforming(
        tmp_path / "d.h5",
        waveform=np.zeros((2, T), dtype=np.float32),
        target=np.zeros((2, C), dtype=np.uint8),
        num_samples=np.zeros(2, dtype=np.int32),
        start_s=np.zeros(2, dtype=np.float32),
    )
    problems = hdf5_problems(str(path), C, T)
    assert len(problems) == 4
    assert problems[0] == f"waveform: float32(2, {T}), expected int16(2, {T})"
    assert problems[1] == f"target: uint8(2, {C}), expected bool(2, {C})"
    assert any(p.startswith("num_samples: int32") for p in problems)
    assert any(p.startswith("start_s: float32") for p in problems)


def test_hdf5_problems_wrong_shapes(tmp_path):
    path = _conforming(
        tmp_path / "s.h5",
        target=np.zeros((2, C + 1), dtype=np.bool_),
        num_samples=np.zeros(3, dtype=np.int64),
        clip_id=np.array(["a", "b", "c"], dtype=object),
    )
    problems = hdf5_problems(str(path), C, T)
    assert f"target: bool(2, {C + 1}), expected bool(2, {C})" in problems
    assert "num_samples: int64(3,), expected int64(2,)" in problems
    assert "clip_id: shape (3,), expected (2,)" in problems
    # wrong T in the caller's expectation is reported against waveform
    assert hdf5_problems(str(_conforming(tmp_path / "t.h5")), C, T + 1) == [
        f"waveform: int16(2, {T}), expected int16(2, {T + 1})"
    ]


def test_hdf5_problems_audio_name_not_fixed_bytes_and_missing_rate(tmp_path):
    path = _conforming(tmp_path / "n.h5", audio_name=np.array(["a", "b"], dtype=object))
    with h5py.File(path, "a") as hf:
        del hf["audio_name"]
        hf.create_dataset("audio_name", data=["a", "b"], dtype=h5py.string_dtype("utf-8"))
        del hf.attrs["sample_rate"]
    problems = hdf5_problems(str(path), C, T)
    assert problems == ["audio_name is not fixed-length bytes", "missing attribute sample_rate"]


# --------------------------------------------------------------------------- Parquet


def test_parquet_round_trip(tmp_path):
    rows = _rows(5)
    path = _write_parquet(tmp_path / "s.parquet", rows, class_map_sha256="cd" * 32, split="train")
    back = list(read_parquet_rows(str(path), T))
    assert [r.clip_id for r in back] == [r["clip_id"] for r in rows]
    for got, want in zip(back, rows, strict=True):
        assert got.audio_name == want["audio_name"]
        assert got.labels == want["labels"]  # list of indices, in the order given
        assert got.num_samples == want["num_samples"]
        assert got.start_s == want["start_s"]  # None stays None (null)
        assert got.waveform.shape == (T,) and got.waveform.dtype == np.int16
        np.testing.assert_array_equal(got.waveform, want["waveform"])


def test_parquet_schema_metadata_and_columns(tmp_path):
    rows = _rows(3)
    path = _write_parquet(tmp_path / "s.parquet", rows, class_map_sha256="cd" * 32, shard_index=7)
    table = pq.read_table(path)
    assert table.schema.names == PARQUET_WAVEFORM_SCHEMA.names
    meta = table.schema.metadata
    assert meta[b"audiomill.table"] == b"waveforms"
    assert meta[b"audiomill.schema_version"] == b"1"
    assert meta[b"class_map_sha256"] == b"cd" * 32
    assert meta[b"shard_index"] == b"7"
    d = table.to_pylist()
    assert [r["sample_rate"] for r in d] == [SR] * 3
    assert [r["source"] for r in d] == ["src-0", "src-1", "src-2"]
    assert [r["source_sample_rate"] for r in d] == [44100] * 3
    assert d[1]["start_s"] is None
    assert [r["labels"] for r in d] == [r["labels"] for r in rows]


def test_parquet_audio_struct_is_flac_of_the_real_samples(tmp_path):
    rows = _rows(4)
    path = _write_parquet(tmp_path / "s.parquet", rows)
    for got, want in zip(pq.read_table(path).to_pylist(), rows, strict=True):
        audio = got["audio"]
        assert set(audio) == {"bytes", "path"}
        assert audio["path"] == f"{want['clip_id']}.flac"
        assert audio["bytes"][:4] == b"fLaC"
        samples, sr = sf.read(io.BytesIO(audio["bytes"]), dtype="int16")
        assert sr == SR
        assert len(samples) == want["num_samples"]  # padding is not encoded
        np.testing.assert_array_equal(samples, want["waveform"][: want["num_samples"]])


def test_parquet_row_groups_of_100(tmp_path):
    n = 2 * PARQUET_ROW_GROUP + 37
    rng = np.random.default_rng(3)
    path = tmp_path / "s.parquet"
    writer = ParquetShardWriter(str(path), sample_rate=SR)
    for i in range(n):
        wave = rng.integers(-1000, 1000, size=T, dtype=np.int16)
        assert (
            writer.add(
                clip_id=f"c{i:04d}",
                audio_name=f"c{i:04d}",
                waveform=wave,
                labels=[i % C],
                num_samples=T,
                start_s=float(i),
            )
            == i
        )
    writer.close()
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [100, 100, 37]
    back = list(read_parquet_rows(str(path), T))
    assert [r.clip_id for r in back] == [f"c{i:04d}" for i in range(n)]
    assert [r.start_s for r in back] == [float(i) for i in range(n)]


def test_parquet_reader_pads_and_trims_to_num_samples(tmp_path):
    rows = _rows(2)
    path = _write_parquet(tmp_path / "s.parquet", rows)
    longer = list(read_parquet_rows(str(path), T + 50))
    assert longer[1].waveform.shape == (T + 50,)
    np.testing.assert_array_equal(
        longer[1].waveform[: rows[1]["num_samples"]], rows[1]["waveform"][: rows[1]["num_samples"]]
    )
    assert not longer[1].waveform[rows[1]["num_samples"] :].any()
    shorter = list(read_parquet_rows(str(path), 100))
    np.testing.assert_array_equal(shorter[0].waveform, rows[0]["waveform"][:100])


def test_parquet_reads_from_open_file_object(tmp_path):
    rows = _rows(2)
    data = _write_parquet(tmp_path / "s.parquet", rows).read_bytes()
    assert [r.clip_id for r in read_parquet_rows(io.BytesIO(data), T)] == [
        r["clip_id"] for r in rows
    ]


def test_hdf5_and_parquet_agree(tmp_path):
    rows = _rows(5, seed=9)
    h5 = list(read_hdf5_rows(str(_write_hdf5(tmp_path / "s.h5", rows))))
    pa_rows = list(read_parquet_rows(str(_write_parquet(tmp_path / "s.parquet", rows)), T))
    for a, b in zip(h5, pa_rows, strict=True):
        assert (a.clip_id, a.audio_name, sorted(a.labels), a.num_samples, a.start_s) == (
            b.clip_id,
            b.audio_name,
            sorted(b.labels),
            b.num_samples,
            b.start_s,
        )
        np.testing.assert_array_equal(a.waveform, b.waveform)
