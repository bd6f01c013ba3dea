"""Balanced sampler + shard reader throughput against PANNs' per-clip HDF5 reads.

Writes a synthetic waveform dataset (``--shards`` HDF5 shards of ``--clips`` clips of 10 s at
32 kHz, int16, 527 classes with a long-tailed label distribution), reads every file once so it
sits in the page cache, then times, on the same balanced-sampler draws:

- ``panns``: PANNs' loop, one ``with h5py.File(path) as hf: hf['waveform'][row]`` per clip;
- ``reader``: :meth:`modeling.readers.ShardReader.read` per batch (files kept open, sorted
  runs, one ``read_direct`` per run);
- ``tf.data``: :func:`modeling.readers.make_dataset` end to end (float32 batches, prefetch).

Run::

    python -m benchmarks.sampler_bench --dir /tmp/sampler-bench --shards 20 --clips 200
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import islice
from pathlib import Path

import h5py
import numpy as np

from modeling.readers import ShardReader, make_dataset
from modeling.samplers import BalancedSampler, batches
from pipelines.dataset_state import save_manifest
from pipelines.storage import DatasetStore
from schemas.dataset import DatasetManifest, ShardEntry, ShardFile, SplitEntry, waveform_shard_path

SR = 32000
SECONDS = 10.0
CLASSES = 527


def write_dataset(root: Path, shards: int, clips: int, seed: int = 0) -> list[np.ndarray]:
    """Write the synthetic dataset (unless there) and return the rows of each class."""
    rng = np.random.default_rng(seed)
    n = shards * clips
    # Long tail: class c drawn with probability ~ 1 / (c + 1).
    p = 1.0 / np.arange(1, CLASSES + 1)
    p /= p.sum()
    targets = np.zeros((n, CLASSES), dtype=bool)
    for i in range(n):
        targets[i, rng.choice(CLASSES, size=rng.integers(1, 4), p=p)] = True
    store = DatasetStore(root)
    t = round(SR * SECONDS)
    entries = []
    for s in range(shards):
        rel = waveform_shard_path("train", s, "hdf5")
        path = store.local_path(rel)
        rows = slice(s * clips, (s + 1) * clips)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            wave = rng.integers(-3000, 3000, size=(clips, t), dtype=np.int16)
            with h5py.File(path, "w") as hf:
                hf["waveform"] = wave
                hf["target"] = targets[rows]
                hf["clip_id"] = [f"clip{i:06d}" for i in range(rows.start, rows.stop)]
                hf["num_samples"] = np.full(clips, t, dtype=np.int64)
        entries.append(
            ShardEntry(s, clips, {"hdf5": ShardFile(rel, "", path.stat().st_size)}, "bench", "")
        )
    manifest = DatasetManifest("", CLASSES, SR, SECONDS, ["hdf5"], {"train": SplitEntry(entries)})
    save_manifest(store, manifest)
    return [np.flatnonzero(targets[:, c]) for c in range(CLASSES)]


def warm_page_cache(root: Path) -> None:
    """Read every shard once."""
    for path in sorted(root.glob("waveforms/train/*.h5")):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def main() -> None:
    """Parse the arguments, run the three timings and print a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sampler-bench"))
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--parallel-reads", type=int, default=2)
    args = parser.parse_args()

    per_class = write_dataset(args.dir, args.shards, args.clips)
    warm_page_cache(args.dir)
    reader = ShardReader(args.dir, "train")
    paths = [str(args.dir / s.path) for s in reader.shards]
    plan = list(islice(batches(BalancedSampler(per_class, seed=0), args.batch_size), args.batches))
    clips = args.batches * args.batch_size

    start = time.perf_counter()
    for rows in plan:
        shard, local = reader.locate(rows)
        for s, r in zip(shard.tolist(), local.tolist(), strict=True):
            with h5py.File(paths[s], "r") as hf:
                hf["waveform"][r]
                hf["target"][r]
    panns = clips / (time.perf_counter() - start)

    reader.read(plan[0])  # open the files
    start = time.perf_counter()
    for rows in plan:
        reader.read(rows)
    ours = clips / (time.perf_counter() - start)

    ds = make_dataset(
        reader,
        BalancedSampler(per_class, seed=1),
        args.batch_size,
        parallel_reads=args.parallel_reads,
    )
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    pipeline = clips / (time.perf_counter() - start)

    print(
        json.dumps(
            {
                "clips_in_split": reader.num_rows,
                "clip": f"{SECONDS} s at {SR} Hz int16",
                "clips_timed": clips,
                "batch_size": args.batch_size,
                "panns_clips_per_s": round(panns, 1),
                "reader_clips_per_s": round(ours, 1),
                "tf_data_clips_per_s": round(pipeline, 1),
                "reader_vs_panns": round(ours / panns, 2),
                "tf_data_vs_panns": round(pipeline / panns, 2),
                "cnn14_gpu_clips_per_s_assumed": "300-600",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
