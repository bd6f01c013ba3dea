"""Per-class index (``features.class_index``, layout in ``schemas.class_index``): built with Dask
from HDF5, Parquet and embedding shards, checked against a brute-force computation; staleness,
tampering and bad shards are detected."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from features.class_index import (
    ClassIndex,
    StaleClassIndexError,
    build_class_index,
    check_committed_sizes,
    load_class_index,
    split_shards,
    stale_reasons,
)
from features.report import build_report
from modeling.readers import ShardReader
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.storage import DatasetStore
from schemas.class_index import (
    INDEX_META,
    POSITIONS,
    WEIGHTS,
    ClassIndexMeta,
    class_index_dir,
)
from tests.dataset_builders import Built, make_dataset, record_sizes
from tests.s3_server import S3Server

C = 7


def _random_labels(n: int, seed: int) -> list[list[int]]:
    """Label lists with a skewed class distribution, some clips unlabeled, class C-1 never used."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, C) ** 1.2
    out = []
    for _ in range(n):
        k = rng.choice([0, 1, 1, 2, 3])
        out.append(sorted(set(rng.choice(C - 1, size=k, p=p / p.sum()).tolist())))
    return out


def _check_against_brute_force(index: ClassIndex, built: Built, split: str) -> None:
    clips = built.clips[split]
    targets = built.targets(split)
    counts = targets.sum(axis=0)
    np.testing.assert_array_equal(index.counts, counts)
    assert index.num_clips == len(clips)
    for c in range(C):
        expected = [(clip.shard, clip.row) for clip in clips if c in clip.labels]
        shard, row = index.pairs_of(c)
        assert list(zip(shard.tolist(), row.tolist(), strict=True)) == expected
        np.testing.assert_array_equal(index.rows_of(c), np.flatnonzero(targets[:, c]))
    weights = [sum(1.0 / counts[c] for c in clip.labels) for clip in clips]
    np.testing.assert_allclose(index.weights, weights, rtol=1e-12)
    np.testing.assert_array_equal(index.num_labels, [len(clip.labels) for clip in clips])
    assert index.clip_ids.to_pylist() == [clip.clip_id for clip in clips]
    shard, row = index.locate(np.arange(len(clips)))
    assert list(zip(shard.tolist(), row.tolist(), strict=True)) == [
        (clip.shard, clip.row) for clip in clips
    ]
    per_class = index.per_class()
    assert len(per_class) == C
    assert sum(len(rows) for rows in per_class) == targets.sum()


@pytest.mark.parametrize("seed", [0, 1])
def test_index_matches_brute_force(tmp_path: Path, seed: int):
    labels = _random_labels(23, seed)
    built = make_dataset(tmp_path / "ds", {"train": labels}, num_classes=C, shard_clips=5)
    summary = build_class_index(built.root, "train", client="synchronous")
    assert summary.num_shards == 5
    assert summary.num_clips == 23
    assert summary.num_positions == sum(len(x) for x in labels)
    assert C - 1 in summary.classes_without_clips
    assert summary.unlabeled_clips == sum(1 for x in labels if not x)
    assert summary.path == str(tmp_path / "ds" / "index" / "train" / "waveforms")
    _check_against_brute_force(load_class_index(built.root, "train"), built, "train")

    positions = pq.read_table(tmp_path / "ds" / class_index_dir("train") / POSITIONS)
    classes = positions.column("class").to_numpy()
    assert (np.diff(classes) >= 0).all(), "positions are sorted by class"
    weights = pq.read_table(tmp_path / "ds" / class_index_dir("train") / WEIGHTS)
    unlabeled = np.array([not x for x in labels])
    assert (weights.column("weight").to_numpy()[unlabeled] == 0).all()


def test_parquet_only_shards_give_the_same_index(tmp_path: Path):
    labels = _random_labels(17, 3)
    # Parquet stores label lists: duplicates and order must not matter.
    h5 = make_dataset(tmp_path / "h5", {"train": labels}, num_classes=C, formats=("hdf5",))
    pa_ = make_dataset(tmp_path / "pq", {"train": labels}, num_classes=C, formats=("parquet",))
    build_class_index(h5.root, "train", client="synchronous")
    build_class_index(pa_.root, "train", client="synchronous")
    for name in (POSITIONS, WEIGHTS):
        a = pq.read_table(tmp_path / "h5" / class_index_dir("train") / name)
        b = pq.read_table(tmp_path / "pq" / class_index_dir("train") / name)
        assert a.equals(b), name
    _check_against_brute_force(load_class_index(pa_.root, "train"), pa_, "train")


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_index_of_an_embeddings_only_dataset(tmp_path: Path, fmt: str):
    labels = _random_labels(11, 4)
    built = make_dataset(
        tmp_path / "ds",
        {"eval": labels},
        num_classes=C,
        waveforms=False,
        embedding_formats=(fmt,),
        ledger=False,
        segments=False,
    )
    with pytest.raises(ValueError, match=r"no committed shards of waveforms.*vggish/eval"):
        build_class_index(built.root, "eval", client="synchronous")
    summary = build_class_index(built.root, "eval", source="embeddings", client="synchronous")
    assert summary.model == "vggish"
    assert summary.path.endswith("index/eval/embeddings/vggish")
    index = load_class_index(built.root, "eval")  # source found without being named
    assert index.meta.source == "embeddings"
    _check_against_brute_force(index, built, "eval")


def test_a_split_that_grew_since_it_was_embedded_is_not_read_as_its_embeddings(tmp_path: Path):
    built = make_dataset(
        tmp_path / "ds",
        {"train": _random_labels(12, 7)},
        num_classes=C,
        shard_clips=4,
        embedding_formats=("hdf5",),
    )
    store = DatasetStore(built.root)
    manifest = load_manifest(store)
    embedded = manifest.embeddings["vggish"]["train"]
    embedded.shards = embedded.shards[:2]  # as before ingest added shard 2 to the split
    save_manifest(store, manifest)
    message = (
        "only 8 of the 12 clips of split 'train' have vggish embeddings (an embed that did not "
        "finish, or clips added since): run `audiomill embed` on the dataset to embed the rest"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        split_shards(manifest, "train", "embeddings")
    with pytest.raises(ValueError, match=re.escape(message)):
        ShardReader(built.root, "train", source="embeddings")
    assert len(split_shards(manifest, "train", "waveforms")) == 3


def test_local_cluster_of_processes_and_scheduler_address(tmp_path: Path):
    splits = {"train": _random_labels(30, 5), "eval": _random_labels(9, 6)}
    built = make_dataset(tmp_path / "ds", splits, num_classes=C, shard_clips=4)
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        build_class_index(built.root, "train", client=client)
        build_class_index(built.root, "eval", client=cluster.scheduler_address)
        assert len(client.who_has()) == 0, "no results left on the cluster"
    _check_against_brute_force(load_class_index(built.root, "train"), built, "train")
    _check_against_brute_force(load_class_index(built.root, "eval"), built, "eval")


@pytest.mark.parametrize("client", [None, "threads"])
def test_threaded_local_cluster_and_scheduler(tmp_path: Path, client: str | None):
    built = make_dataset(tmp_path / "ds", {"train": _random_labels(12, 7)}, num_classes=C)
    build_class_index(built.root, "train", client=client)
    _check_against_brute_force(load_class_index(built.root, "train"), built, "train")


def test_rebuild_is_deterministic(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": _random_labels(14, 8)}, num_classes=C)
    meta_path = tmp_path / "ds" / class_index_dir("train") / INDEX_META
    build_class_index(built.root, "train", client="synchronous")
    first = json.loads(meta_path.read_text())
    build_class_index(built.root, "train", client="synchronous")
    second = json.loads(meta_path.read_text())
    assert first["files"] == second["files"]
    assert first["shards"] == second["shards"]
    assert not list((tmp_path / "ds" / "index").rglob("*.tmp-*"))


def test_stale_index_is_refused_until_rebuilt(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": _random_labels(10, 9)}, num_classes=C)
    build_class_index(built.root, "train", client="synchronous")
    store = DatasetStore(built.root)
    manifest = load_manifest(store)
    shards = manifest.splits["train"].shards
    # A later ingest committed another shard (the same file under a new index is enough).
    shards.append(replace(shards[0], index=7))
    save_manifest(store, manifest)
    with pytest.raises(StaleClassIndexError, match=r"1 shard\(s\) committed since.*: 7"):
        load_class_index(built.root, "train")
    assert load_class_index(built.root, "train", check=False).num_clips == 10
    build_class_index(built.root, "train", client="synchronous")
    assert load_class_index(built.root, "train").num_clips == 10 + shards[0].num_clips

    meta = ClassIndexMeta.from_dict(
        json.loads((tmp_path / "ds" / class_index_dir("train") / INDEX_META).read_text())
    )
    manifest.class_map_sha256 = "0" * 64
    manifest.splits["train"].shards = shards[1:]
    reasons = stale_reasons(meta, manifest)
    assert reasons[0] == "the class map changed"
    assert any("removed since" in r and ": 0" in r for r in reasons)
    assert stale_reasons(meta, None) == ["the dataset has no manifest.json"]


def test_changed_table_is_detected(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": _random_labels(8, 10)}, num_classes=C)
    build_class_index(built.root, "train", client="synchronous")
    positions = tmp_path / "ds" / class_index_dir("train") / POSITIONS
    table = pq.read_table(positions)
    pq.write_table(table.slice(1), positions)
    with pytest.raises(ValueError, match=r"does not match index\.json"):
        load_class_index(built.root, "train")


def test_missing_index_and_split(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": [[0], [1]]}, num_classes=C)
    with pytest.raises(FileNotFoundError, match="build it with build_class_index"):
        load_class_index(built.root, "train")
    with pytest.raises(
        ValueError, match=r"no committed shards of waveforms of split 'test'.*train"
    ):
        build_class_index(built.root, "test", client="synchronous")
    with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
        build_class_index(tmp_path / "nothing", "train", client="synchronous")
    with pytest.raises(TypeError, match="client must be"):
        build_class_index(built.root, "train", client=3)


def test_bad_shards_are_errors(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": [[0], [1], [2]]}, num_classes=C)
    store = DatasetStore(built.root)
    manifest = load_manifest(store)
    manifest.splits["train"].shards[0].num_clips = 4
    save_manifest(store, manifest)
    with pytest.raises(ValueError, match="3 rows, the manifest says 4"):
        build_class_index(built.root, "train", client="synchronous")
    manifest.splits["train"].shards[0].num_clips = 3
    save_manifest(store, manifest)
    shard = tmp_path / "ds" / manifest.splits["train"].shards[0].files["hdf5"].path
    with h5py.File(shard, "r+") as hf:
        del hf["target"]
        hf["target"] = np.zeros((3, C + 1), dtype=bool)
    record_sizes(tmp_path / "ds")
    with pytest.raises(ValueError, match=rf"target has shape \(3, {C + 1}\)"):
        build_class_index(built.root, "train", client="synchronous")
    with h5py.File(shard, "r+") as hf:
        del hf["target"]
    record_sizes(tmp_path / "ds")
    with pytest.raises(ValueError, match=r"missing datasets \['target'\]"):
        build_class_index(built.root, "train", client="synchronous")


def test_task_errors_propagate_from_a_cluster(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": _random_labels(12, 11)}, num_classes=C)
    store = DatasetStore(built.root)
    manifest = load_manifest(store)
    damaged = tmp_path / "ds" / manifest.splits["train"].shards[1].files["hdf5"].path
    damaged.write_bytes(b"x")
    record_sizes(tmp_path / "ds")
    with pytest.raises(ValueError, match=rf"{damaged}: cannot be read \(.*signature"):
        build_class_index(built.root, "train", client=None)


def test_shard_files_not_as_committed_are_refused_before_any_read(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": _random_labels(12, 11)}, num_classes=C)
    store = DatasetStore(built.root)
    files = [
        (f.path, f.bytes)
        for shard in load_manifest(store).splits["train"].shards
        for f in shard.files.values()
    ]
    assert len(files) >= 3
    check_committed_sizes(store, files)
    (first, size), (second, _), (third, _) = files[:3]
    with open(store.local_path(first), "ab") as grown:
        grown.write(b"\0")
    store.local_path(second).unlink()
    with pytest.raises(ValueError) as refused:
        build_class_index(built.root, "train", client="synchronous")
    assert str(refused.value).startswith(
        f"{store.url(first)} is {size + 1:,} bytes, not {size:,}; {store.url(second)} is missing:"
    )
    assert "audiomill dataset verify" in str(refused.value)
    assert not store.exists("index/train/waveforms/index.json")
    many = [(third, 1)] * 4
    with pytest.raises(ValueError, match=r" \(and 3 more\): the manifest recorded"):
        check_committed_sizes(store, [*files[:2], *many])


def test_meta_round_trip_and_version():
    meta = ClassIndexMeta(
        split="train",
        source="waveforms",
        model=None,
        class_map_sha256="a" * 64,
        num_classes=3,
        num_clips=2,
        num_positions=1,
        shards=[],
    )
    assert ClassIndexMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    with pytest.raises(ValueError, match="schema version 99"):
        ClassIndexMeta.from_dict({**meta.to_dict(), "schema_version": 99})
    assert class_index_dir("eval", "embeddings", "vggish") == "index/eval/embeddings/vggish"
    with pytest.raises(ValueError, match="needs the embedding model"):
        class_index_dir("eval", "embeddings")
    with pytest.raises(ValueError, match="unknown index source"):
        class_index_dir("eval", "spectrograms")


@pytest.mark.slow
def test_index_and_report_on_an_object_store(s3_server: S3Server, tmp_path: Path):
    labels = _random_labels(13, 12)
    built = make_dataset(
        tmp_path / "ds",
        {"train": labels},
        num_classes=C,
        formats=("hdf5", "parquet"),
        failures={"train": [("private", [1])]},
    )
    url = f"s3://{s3_server.create_bucket()}/ds"
    s3_server.filesystem().put(str(built.root) + "/", url, recursive=True)
    options = s3_server.storage_options
    summary = build_class_index(url, "train", client="threads", storage_options=options)
    assert summary.path == f"{url}/index/train/waveforms"
    _check_against_brute_force(
        load_class_index(url, "train", storage_options=options), built, "train"
    )
    page = Path(build_report(url, tmp_path / "out", storage_options=options, client="threads"))
    summary_json = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary_json["splits"]["train"]["committed_clips"] == len(labels)
    assert summary_json["splits"]["train"]["failed_clips"] == 1
    assert "data:image/png;base64," in page.read_text()
