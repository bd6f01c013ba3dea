"""Dataset layout and manifest (``schemas.dataset``) and the ledger table (``schemas.ledger``)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from schemas.dataset import (
    DATASET_SCHEMA_VERSION,
    DatasetManifest,
    ShardEntry,
    ShardFile,
    SplitEntry,
    ledger_dir,
    shard_name,
    waveform_shard_path,
)
from schemas.ledger import LEDGER_SCHEMA, STATUS_FAILED, STATUS_OK, latest_rows, ledger_table

# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize(
    ("index", "fmt", "name"),
    [
        (0, "hdf5", "shard-00000.h5"),
        (7, "parquet", "shard-00007.parquet"),
        (12345, "hdf5", "shard-12345.h5"),
        (123456, "parquet", "shard-123456.parquet"),
    ],
)
def test_shard_name(index, fmt, name):
    assert shard_name(index, fmt) == name


def test_shard_name_unknown_format():
    with pytest.raises(KeyError):
        shard_name(0, "wav")


def test_waveform_shard_path_and_ledger_dir():
    assert waveform_shard_path("balanced_train", 3, "hdf5") == (
        "waveforms/balanced_train/shard-00003.h5"
    )
    assert waveform_shard_path("eval", 0, "parquet") == "waveforms/eval/shard-00000.parquet"
    assert ledger_dir("eval") == "ledger/eval"


# --------------------------------------------------------------------------- manifest


def _shard(index: int, n: int, formats=("hdf5", "parquet")) -> ShardEntry:
    return ShardEntry(
        index=index,
        num_clips=n,
        files={
            fmt: ShardFile(
                path=waveform_shard_path("train", index, fmt), sha256=f"{index:x}" * 64, bytes=n
            )
            for fmt in formats
        },
        run_id="20250101T000000-abcdef",
        clip_ids_sha256="0" * 64,
    )


def _manifest() -> DatasetManifest:
    m = DatasetManifest(
        class_map_sha256="f" * 64,
        num_classes=527,
        sample_rate=32000,
        clip_seconds=10.0,
        formats=["hdf5", "parquet"],
        created=1700000000.5,
    )
    m.split("train").shards.extend([_shard(0, 10), _shard(1, 4), _shard(3, 2)])
    m.split("eval").shards.append(_shard(0, 1, formats=("hdf5",)))
    m.runs.append({"stage": "ingest", "run_id": "r1", "committed": 17})
    m.stages["ingest"] = {"completed": 1700000001.0, "run_id": "r1"}
    return m


def test_split_counts_and_next_index():
    m = _manifest()
    assert m.split("train").num_clips == 16
    assert m.split("train").next_index == 4  # after the highest index, gaps are not reused
    assert m.split("eval").next_index == 1
    empty = SplitEntry()
    assert (empty.num_clips, empty.next_index) == (0, 0)
    assert "new" not in m.splits
    assert m.split("new").next_index == 0
    assert "new" in m.splits  # split() creates the entry


def test_num_samples():
    assert _manifest().num_samples == 320000
    m = DatasetManifest("x", 2, 2000, 0.3, ["hdf5"])
    assert m.num_samples == 600


def test_manifest_to_dict_is_json_ready():
    d = _manifest().to_dict()
    text = json.dumps(d)  # no dataclass objects left
    d = json.loads(text)
    assert d["kind"] == "audiomill-dataset"
    assert d["schema_version"] == DATASET_SCHEMA_VERSION
    assert list(d["splits"]) == ["eval", "train"]  # sorted
    assert d["splits"]["train"]["num_clips"] == 16
    assert d["splits"]["eval"]["num_clips"] == 1
    shard = d["splits"]["train"]["shards"][1]
    assert shard["index"] == 1
    assert shard["files"]["parquet"] == {
        "path": "waveforms/train/shard-00001.parquet",
        "sha256": "1" * 64,
        "bytes": 4,
    }


def test_manifest_round_trip_through_json():
    m = _manifest()
    back = DatasetManifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    assert back.split("train").next_index == 4
    assert back.split("train").num_clips == 16
    assert back.created == 1700000000.5
    assert back.runs == m.runs and back.stages == m.stages
    assert isinstance(back.split("train").shards[0].files["hdf5"], ShardFile)
    assert back.to_dict() == m.to_dict()


def test_manifest_from_dict_minimal():
    d = {
        "schema_version": DATASET_SCHEMA_VERSION,
        "class_map_sha256": "a" * 64,
        "num_classes": 3,
        "sample_rate": 16000,
        "clip_seconds": 1.0,
        "formats": ["parquet"],
    }
    m = DatasetManifest.from_dict(d)
    assert m.splits == {} and m.runs == [] and m.stages == {}
    assert m.formats == ["parquet"]


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_manifest_unsupported_schema_version_refused(version):
    d = _manifest().to_dict()
    if version is None:
        del d["schema_version"]
    else:
        d["schema_version"] = version
    with pytest.raises(ValueError, match=r"schema version .* is not supported"):
        DatasetManifest.from_dict(d)


# --------------------------------------------------------------------------- ledger


def _row(clip_id: str, status: str, t: float, **kw) -> dict:
    return {
        "clip_id": clip_id,
        "split": "train",
        "status": status,
        "run_id": f"run-{t}",
        "recorded_at": t,
        **kw,
    }


def test_ledger_table_fills_missing_columns_with_null():
    table = ledger_table([_row("a_0", STATUS_OK, 1.0, shard=0, row=3)])
    assert table.schema == LEDGER_SCHEMA
    (row,) = table.to_pylist()
    assert row["shard"] == 0 and row["row"] == 3
    assert row["reason"] is None and row["waveform_sha256"] is None
    assert table.schema.metadata[b"audiomill.table"] == b"ledger"


def test_ledger_table_empty():
    table = ledger_table([])
    assert table.num_rows == 0 and table.schema == LEDGER_SCHEMA


def test_ledger_table_rejects_unknown_columns():
    with pytest.raises(ValueError, match=r"unknown ledger columns \['bogus', 'labels'\]"):
        ledger_table([_row("a_0", STATUS_OK, 1.0), _row("b_0", STATUS_OK, 1.0, bogus=1, labels=[])])


def test_ledger_table_rejects_wrong_types():
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        ledger_table([_row("a_0", STATUS_OK, 1.0, shard="zero")])


def test_latest_rows_ok_beats_later_failures():
    table = ledger_table(
        [
            _row("a_0", STATUS_FAILED, 1.0, reason="timeout", transient=True),
            _row("a_0", STATUS_OK, 2.0, shard=0, row=0),
            _row("a_0", STATUS_FAILED, 3.0, reason="validation"),
            _row("a_0", STATUS_FAILED, 4.0, reason="rate_limited", transient=True),
        ]
    )
    best = latest_rows(table)
    assert best["a_0"]["status"] == STATUS_OK
    assert best["a_0"]["recorded_at"] == 2.0


def test_latest_rows_latest_failure_wins_whatever_the_order_of_parts():
    rows = [
        _row("b_0", STATUS_FAILED, 5.0, reason="not_found"),
        _row("b_0", STATUS_FAILED, 1.0, reason="timeout", transient=True),
        _row("b_0", STATUS_FAILED, 3.0, reason="server_error", transient=True),
    ]
    best = latest_rows(ledger_table(rows))
    assert best["b_0"]["reason"] == "not_found"
    best = latest_rows(pa.concat_tables([ledger_table([r]) for r in reversed(rows)]))
    assert best["b_0"]["reason"] == "not_found"


def test_latest_rows_later_ok_replaces_earlier_ok():
    table = ledger_table(
        [_row("c_0", STATUS_OK, 2.0, shard=1, row=5), _row("c_0", STATUS_OK, 1.0, shard=0, row=0)]
    )
    assert (latest_rows(table)["c_0"]["shard"], latest_rows(table)["c_0"]["row"]) == (1, 5)


def test_latest_rows_one_row_per_clip():
    table = ledger_table(
        [
            _row("a_0", STATUS_OK, 1.0),
            _row("-dash_id_x_0", STATUS_FAILED, 1.0, reason="private"),
            _row("a_0", STATUS_FAILED, 2.0, reason="timeout"),
            _row("z_10", STATUS_FAILED, 0.5, reason="removed"),
        ]
    )
    best = latest_rows(table)
    assert set(best) == {"a_0", "-dash_id_x_0", "z_10"}
    assert {k: v["status"] for k, v in best.items()} == {
        "a_0": STATUS_OK,
        "-dash_id_x_0": STATUS_FAILED,
        "z_10": STATUS_FAILED,
    }
    assert latest_rows(ledger_table([])) == {}
