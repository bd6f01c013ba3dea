"""Samplers (determinism, exact resume, balance) and the shard reader and its tf.data pipeline."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from modeling.readers import ShardReader, make_dataset, read_failures_raised
from modeling.samplers import (
    BalancedSampler,
    Sampler,
    SequentialSampler,
    ShuffledSampler,
    WeightedSampler,
    batches,
)
from modeling.scoring import predict_rows
from tests.dataset_builders import damage_parquet_audio, record_sizes
from tests.dataset_builders import make_dataset as build_dataset

C = 6


def _labels(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [sorted(set(rng.integers(0, C, size=rng.integers(1, 3)).tolist())) for _ in range(n)]


def _imbalanced_per_class() -> list[np.ndarray]:
    # Class 0: 200 clips, class 1: 50, class 2: 7, class 3: none, class 4: 1 (shared rows).
    return [
        np.arange(0, 200),
        np.arange(150, 200),
        np.array([3, 17, 40, 77, 150, 201, 202]),
        np.array([], dtype=np.int64),
        np.array([5]),
    ]


SAMPLERS = {
    "sequential": lambda: SequentialSampler(500),
    "shuffled": lambda: ShuffledSampler(37, seed=3),
    "balanced": lambda: BalancedSampler(_imbalanced_per_class(), seed=3),
    "weighted": lambda: WeightedSampler(np.linspace(0.0, 1.0, 50), seed=3, block=16),
}


def _take(sampler: Sampler, n: int, size: int = 9) -> list[list[int]]:
    it = batches(sampler, size)
    return [next(it).tolist() for _ in range(n)]


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_sampler_is_deterministic_and_resumes_exactly(kind: str) -> None:
    first, second = SAMPLERS[kind](), SAMPLERS[kind]()
    assert _take(first, 12) == _take(second, 12)
    run = SAMPLERS[kind]()
    _take(run, 7)
    saved = json.loads(json.dumps(run.state()))
    expected = _take(run, 5)
    resumed = SAMPLERS[kind]()
    resumed.restore(saved)
    assert _take(resumed, 5) == expected


def test_restore_refuses_other_sampler_or_seed() -> None:
    state = ShuffledSampler(10, seed=1).state()
    with pytest.raises(ValueError, match="seed"):
        ShuffledSampler(10, seed=2).restore(state)
    with pytest.raises(ValueError, match="shuffled"):
        SequentialSampler(10).restore(state)


def test_sequential_is_one_pass_and_shuffled_reshuffles_each_epoch() -> None:
    assert np.concatenate(list(batches(SequentialSampler(10), 4))).tolist() == list(range(10))
    assert [len(b) for b in batches(SequentialSampler(10), 4, drop_remainder=True)] == [4, 4]
    sampler = ShuffledSampler(20, seed=0)
    epochs = [sampler.take(20) for _ in range(3)]
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(20))
    assert epochs[0].tolist() != epochs[1].tolist()


def test_balanced_sampler_balances_classes_and_permutes_each_queue() -> None:
    # Disjoint classes of 200, 50, 7, 0 and 1 clips, so each draw's class is known.
    sizes = [200, 50, 7, 0, 1]
    edges = np.r_[0, np.cumsum(sizes)]
    per_class = [np.arange(edges[c], edges[c + 1]) for c in range(len(sizes))]
    classes = [0, 1, 2, 4]
    rounds = 400
    draws = BalancedSampler(per_class, seed=7).take(rounds * len(classes))
    drawn_class = np.searchsorted(edges, draws, side="right") - 1
    # Each round visits every class with clips once, in a shuffled order; class 3 never.
    by_round = drawn_class.reshape(rounds, len(classes))
    assert (np.sort(by_round, axis=1) == classes).all()
    assert len({tuple(r) for r in by_round.tolist()}) > 1
    for c in classes:
        queue = draws[drawn_class == c]
        assert len(queue) == rounds
        size = sizes[c]
        passes = [queue[i : i + size] for i in range(0, rounds - size + 1, size)]
        for p in passes:
            assert sorted(p.tolist()) == per_class[c].tolist()
        if size > 2:
            assert passes[0].tolist() != passes[1].tolist()


def test_weighted_sampler_follows_weights() -> None:
    weights = np.array([0.0, 1.0, 3.0, 0.0])
    draws = WeightedSampler(weights, seed=0, block=1000).take(20000)
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert freq[0] == freq[3] == 0
    assert freq[2] == pytest.approx(0.75, abs=0.02)


def _brute_force(root: Path, shards: list[str], x_key: str, y_key: str, rows: np.ndarray):
    xs, ys = [], []
    for path in shards:
        with h5py.File(root / path) as hf:
            xs.append(hf[x_key][:])
            ys.append(hf[y_key][:])
    x, y = np.concatenate(xs), np.concatenate(ys)
    return x[rows], y[rows]


ROWS = np.array([13, 0, 5, 6, 7, 13, 2, 12, 4, 9, 1, 8])


def test_reader_matches_brute_force_waveforms(tmp_path: Path) -> None:
    built = build_dataset(tmp_path / "ds", {"train": _labels(14)}, num_classes=C, shard_clips=4)
    paths = [f"waveforms/train/shard-{i:05d}.h5" for i in range(4)]
    want_x, want_y = _brute_force(built.root, paths, "waveform", "target", ROWS)
    with ShardReader(built.root, "train") as reader:
        x, y = reader.read(ROWS)
        assert reader.num_rows == 14
        all_x, all_y = reader.read_all()
    assert x.dtype == np.int16 and y.dtype == bool
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(y, built.targets("train")[ROWS])
    np.testing.assert_array_equal(all_x[ROWS], want_x)
    np.testing.assert_array_equal(all_y, built.targets("train"))


def test_reader_reads_parquet_only_waveforms(tmp_path: Path) -> None:
    labels = {"train": _labels(14)}
    h5 = build_dataset(tmp_path / "h5", labels, num_classes=C, shard_clips=4)
    pq_ = build_dataset(tmp_path / "pq", labels, num_classes=C, shard_clips=4, formats=("parquet",))
    want_x, want_y = ShardReader(h5.root, "train").read(ROWS)
    x, y = ShardReader(pq_.root, "train").read(ROWS)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)


@pytest.mark.parametrize("source", ["waveforms", "embeddings"])
def test_parquet_shards_read_from_many_threads_at_once(tmp_path: Path, source: str) -> None:
    built = build_dataset(
        tmp_path / "ds",
        {"train": _labels(64)},
        num_classes=C,
        shard_clips=16,
        formats=("parquet",),
        embedding_formats=("parquet",),
    )
    reader = ShardReader(built.root, "train", source=source)
    want_x, want_y = reader.read_all()
    wrong: list[str] = []

    def read(seed: int) -> None:  # as tf.data's parallel map calls it
        rng = np.random.default_rng(seed)
        try:
            for _ in range(150):
                ids = np.sort(rng.choice(reader.num_rows, 8))
                x, y = reader.read(ids)
                if not (np.array_equal(x, want_x[ids]) and np.array_equal(y, want_y[ids])):
                    wrong.append(f"rows {ids.tolist()}")
        except Exception as exc:
            wrong.append(repr(exc))

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)  # unsafe concurrent reads also hung
    assert not any(t.is_alive() for t in threads) and wrong == []


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_reader_matches_brute_force_embeddings(tmp_path: Path, fmt: str) -> None:
    built = build_dataset(
        tmp_path / "ds",
        {"train": _labels(14)},
        num_classes=C,
        shard_clips=4,
        waveforms=False,
        embedding_formats=(fmt,),
    )
    with ShardReader(built.root, "train", source="embeddings") as reader:
        x, y = reader.read(ROWS)
    assert x.dtype == np.uint8 and x.shape == (len(ROWS), 10, 128)
    # The builder fills each shard's embeddings with the shard index.
    np.testing.assert_array_equal(x[:, 0, 0], ROWS // 4)
    np.testing.assert_array_equal(y, built.targets("train")[ROWS])
    if fmt == "hdf5":
        paths = [f"embeddings/vggish/train/shard-{i:05d}.h5" for i in range(4)]
        for i, path in enumerate(paths):  # distinct values per row, so row order shows
            with h5py.File(built.root / path, "r+") as hf:
                hf["x"][...] = np.arange(hf["x"].size).reshape(hf["x"].shape) % 251 + i
        fresh = ShardReader(built.root, "train", source="embeddings")
        want_x, want_y = _brute_force(built.root, paths, "x", "y", ROWS)
        x, y = fresh.read(ROWS)
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)


@pytest.mark.parametrize("cache", [False, True])
def test_tf_dataset_yields_float_batches(tmp_path: Path, cache: bool) -> None:
    built = build_dataset(
        tmp_path / "ds",
        {"train": _labels(10)},
        num_classes=C,
        shard_clips=4,
        embedding_formats=("hdf5",),
    )
    reader = ShardReader(built.root, "train")
    got = list(make_dataset(reader, SequentialSampler(10), 4, cache=cache).as_numpy_iterator())
    assert [x.shape for x, _ in got] == [(4, reader.num_samples)] * 2 + [(2, reader.num_samples)]
    x = np.concatenate([b[0] for b in got])
    y = np.concatenate([b[1] for b in got])
    assert x.dtype == y.dtype == np.float32
    raw_x, raw_y = reader.read(np.arange(10))
    np.testing.assert_array_equal(x, raw_x / 32768.0)
    np.testing.assert_array_equal(y, raw_y.astype(np.float32))

    emb = ShardReader(built.root, "train", source="embeddings")
    ds = make_dataset(emb, ShuffledSampler(10, seed=1), 3, parallel_reads=2, cache=cache)
    ex, ey = next(ds.take(1).as_numpy_iterator())
    assert ex.shape == (3, 10, 128) and ey.shape == (3, C) and ex.dtype == np.float32
    rows = ShuffledSampler(10, seed=1).take(3)
    raw, _ = emb.read(rows)
    np.testing.assert_allclose(ex, (raw.astype(np.float32) - 128) / 128)


def test_a_row_that_cannot_be_read_is_named_with_its_shard_not_wrapped_by_tensorflow(
    tmp_path: Path,
) -> None:
    built = build_dataset(
        tmp_path / "ds", {"train": _labels(8)}, num_classes=C, shard_clips=4, formats=("parquet",)
    )
    shard = built.root / "waveforms/train/shard-00001.parquet"
    damage_parquet_audio(shard, 2)
    record_sizes(built.root)
    message = (
        f"{shard}: cannot be read (the audio of row 2 cannot be decoded "
        "(File contains data in an unimplemented format.))"
    )
    reader = ShardReader(built.root, "train")
    assert reader.read(np.arange(6))[0].shape == (6, reader.num_samples)
    with pytest.raises(ValueError) as failed:
        reader.read(np.array([0, 6]))
    assert str(failed.value) == message
    read = list(make_dataset(reader, SequentialSampler(8), 4).as_numpy_iterator())
    assert len(read) == 1 and str(reader.failure) == message  # the dataset ends at the failure
    fresh = ShardReader(built.root, "train")
    with pytest.raises(ValueError) as failed, read_failures_raised(fresh):
        list(make_dataset(fresh, SequentialSampler(8), 4).as_numpy_iterator())
    assert str(failed.value) == message
    assert fresh.failure is failed.value
    with pytest.raises(tf.errors.OpError), read_failures_raised(ShardReader(built.root, "train")):
        raise tf.errors.UnknownError(None, None, "not a read")
    model = keras.Sequential([keras.Input((reader.num_samples,)), keras.layers.Dense(C)])
    with pytest.raises(ValueError) as failed:  # its one batch fails: Keras's own error, replaced
        predict_rows(model, ShardReader(built.root, "train"), np.arange(4, 8), batch_size=4)
    assert str(failed.value) == message


def _rewrite_chunked(path: Path, key: str) -> None:
    """Store ``key`` of an HDF5 file chunked and gzip-compressed (read through h5py)."""
    with h5py.File(path, "r+") as hf:
        data = hf[key][:]
        del hf[key]
        hf.create_dataset(key, data=data, chunks=(1, *data.shape[1:]), compression="gzip")


def test_reader_reads_contiguous_shards_raw_and_others_through_h5py(tmp_path: Path) -> None:
    built = build_dataset(tmp_path / "ds", {"train": _labels(14)}, num_classes=C, shard_clips=4)
    paths = [f"waveforms/train/shard-{i:05d}.h5" for i in range(4)]
    for path in paths[1::2]:
        _rewrite_chunked(built.root / path, "waveform")
    record_sizes(built.root)
    want_x, want_y = _brute_force(built.root, paths, "waveform", "target", ROWS)
    rows = np.r_[ROWS, ROWS[::-1], [3, 3, 3]]  # repeats within and across runs
    more_x, more_y = _brute_force(built.root, paths, "waveform", "target", rows)
    with ShardReader(built.root, "train") as reader:
        assert [reader._raw_rows(p) is not None for p in range(4)] == [True, False, True, False]
        x, y = reader.read(ROWS)
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)
        x, y = reader.read(rows)
        np.testing.assert_array_equal(x, more_x)
        np.testing.assert_array_equal(y, more_y)
        all_x, all_y = reader.read_all()
        np.testing.assert_array_equal(all_x[rows], more_x)
        np.testing.assert_array_equal(all_y, built.targets("train"))
        assert reader.read(np.array([], dtype=np.int64))[0].shape == (0, reader.num_samples)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8])
def test_graph_transforms_equal_their_numpy_functions_bit_for_bit(dtype: type) -> None:
    import tensorflow as tf

    from modeling.readers import GRAPH_TRANSFORMS

    info = np.iinfo(dtype)
    x = np.arange(info.min, info.max + 1, dtype=dtype).reshape(-1, 2)
    for numpy_fn, graph_fn in GRAPH_TRANSFORMS.items():
        want = np.asarray(numpy_fn(x), dtype=np.float32)
        got = graph_fn(tf.constant(x)).numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_raw_reads_split_at_the_scatter_list_limit(tmp_path: Path, monkeypatch) -> None:
    import modeling.readers as readers

    built = build_dataset(tmp_path / "ds", {"train": _labels(14)}, num_classes=C, shard_clips=7)
    paths = [f"waveforms/train/shard-{i:05d}.h5" for i in range(2)]
    # Runs of consecutive rows whose places in the batch are not consecutive (reversed), so
    # each row is its own buffer and a run holds more buffers than the limit of 2.
    rows = np.r_[np.arange(6)[::-1], np.arange(7, 14)[::-1], [2, 2], np.arange(14)]
    want_x, want_y = _brute_force(built.root, paths, "waveform", "target", rows)
    monkeypatch.setattr(readers, "_IOV_MAX", 2)
    with ShardReader(built.root, "train") as reader:
        assert all(reader._raw_rows(p) is not None for p in range(2))
        x, y = reader.read(rows)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
