"""Balanced sampler + shard reader throughput against PANNs' per-clip HDF5 reads.

Writes a synthetic waveform dataset (``--shards`` HDF5 shards of ``--clips`` clips of 10 s at
32 kHz, int16, 527 classes with a long-tailed label distribution), reads every file once so it
sits in the page cache, then times, in ``--rounds`` rounds (medians reported, so a busy spell
on a shared machine does not decide a ratio), each kind in turn reading the same
balanced-sampler draws (``--batches`` batches a round), in an order that rotates every round:

- ``panns``: PANNs' loop, one ``with h5py.File(path) as hf: hf['waveform'][row]`` per clip;
- ``panns_loader``: what PANNs' data loader does per batch: its ``AudioSetDataset.__getitem__``
  per clip (file opened per clip, name, waveform through ``int16_to_float32``, target as
  float32) and its collate into float32 arrays;
- ``reader``: :meth:`modeling.readers.ShardReader.read` per batch (files kept open, sorted
  runs, one ``preadv`` per run straight into the batch);
- ``tf_data``: :func:`modeling.readers.make_dataset` end to end (float32 batch tensors,
  parallel reads, prefetch; its own balanced sampler);
- ``copy_limit``: a reference for moving these bytes: each batch one ``preadv`` of
  ``--batch-size`` consecutive waveform rows of a shard from the page cache, no sampler, no
  HDF5 library. Not a hard ceiling: balanced draws repeat the clips of rare classes, whose rows
  may still be in the CPU's caches, which rows read in turn from 20 shards never are.

``reader`` returns what ``panns`` reads (int16 clips and targets), ``tf_data`` what
``panns_loader`` returns (float32 batches).

Run::

    python -m benchmarks.sampler_bench --dir /tmp/sampler-bench --shards 20 --clips 200 \\
        --batches 100
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import h5py
import numpy as np

from modeling.readers import ShardReader, make_dataset
from modeling.samplers import BalancedSampler, batches
from pipelines.dataset_state import save_manifest
from pipelines.storage import DatasetStore
from schemas.dataset import DatasetManifest, ShardEntry, ShardFile, SplitEntry, waveform_shard_path

# What a GPU training CNN14 consumes, to compare with: PANNs' README (qiuqiangkong/
# audioset_tagging_cnn) trains its CNNs for 600k iterations of 32 clips in "around 3 - 7 days"
# on one Tesla V100, i.e. ~30-75 clips/s end to end; a current GPU in mixed precision is
# assumed to be several times faster, a few hundred clips/s.
CNN14_GPU = "30-75 on a V100 (PANNs README); a few hundred on a current GPU (assumed)"
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


def int16_to_float32(x: np.ndarray) -> np.ndarray:
    """PANNs' conversion (``utils/utilities.py``): through float64, / 32767."""
    return (x / 32767.0).astype(np.float32)


def panns_read(paths: list[str], shard: np.ndarray, local: np.ndarray) -> None:
    """PANNs' reads of one batch: a file opened per clip, the clip's waveform and target."""
    for s, r in zip(shard.tolist(), local.tolist(), strict=True):
        with h5py.File(paths[s], "r") as hf:
            hf["waveform"][r]
            hf["target"][r]


def panns_loader(paths: list[str], shard: np.ndarray, local: np.ndarray) -> np.ndarray:
    """PANNs' ``AudioSetDataset.__getitem__`` for each clip of a batch, then its collate."""
    clips = []
    for s, r in zip(shard.tolist(), local.tolist(), strict=True):
        with h5py.File(paths[s], "r") as hf:
            audio_name = hf["clip_id"][r]
            waveform = int16_to_float32(hf["waveform"][r])
            target = hf["target"][r].astype(np.float32)
        clips.append({"audio_name": audio_name, "waveform": waveform, "target": target})
    return np.array([c["waveform"] for c in clips]), np.array([c["target"] for c in clips])


def copy_limit_reader(paths: list[str], batch_size: int) -> Callable[[object], np.ndarray]:
    """A reader of ``batch_size`` consecutive waveform rows per call (its argument ignored),
    from shard to shard in turn, with one ``os.preadv`` into a reused buffer, which it returns:
    the page cache's copy rate for large sequential reads."""
    files = []
    for path in paths:
        with h5py.File(path, "r") as hf:
            wave = hf["waveform"]
            offset = wave.id.get_offset()
            if offset is None:
                raise ValueError(f"{path}: waveform is not stored contiguously")
            files.append((os.open(path, os.O_RDONLY), offset, wave.shape))
    buffer = np.empty((batch_size, files[0][2][1]), np.int16)
    calls = itertools.count()

    def read(_rows: object) -> np.ndarray:
        i = next(calls)
        fd, offset, (rows, samples) = files[i % len(files)]
        start = (i // len(files) * batch_size) % max(1, rows - batch_size + 1)
        os.preadv(fd, [buffer], offset + start * samples * buffer.itemsize)
        return buffer

    return read


def main() -> None:
    """Parse the arguments, run the timings in interleaved rounds and print a report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sampler-bench"))
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=100, help="batches timed per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--parallel-reads", type=int, default=2)
    args = parser.parse_args()

    per_class = write_dataset(args.dir, args.shards, args.clips)
    warm_page_cache(args.dir)
    reader = ShardReader(args.dir, "train")
    paths = [str(args.dir / s.path) for s in reader.shards]
    draws = batches(BalancedSampler(per_class, seed=0), args.batch_size)
    clips = args.batches * args.batch_size
    ds = make_dataset(
        reader,
        BalancedSampler(per_class, seed=1),
        args.batch_size,
        parallel_reads=args.parallel_reads,
    )
    it = iter(ds)
    next(it)
    reader.read(next(draws))  # open the files

    kinds = {
        "panns": lambda rows: panns_read(paths, *reader.locate(rows)),
        "panns_loader": lambda rows: panns_loader(paths, *reader.locate(rows)),
        "reader": reader.read,
        "tf_data": lambda rows: next(it),  # a pipeline, with its own sampler
        "copy_limit": copy_limit_reader(paths, args.batch_size),
    }
    rounds: dict[str, list[float]] = {k: [] for k in kinds}
    for number in range(args.rounds):
        plan = list(islice(draws, args.batches))
        order = list(kinds)[number % len(kinds) :] + list(kinds)[: number % len(kinds)]
        for kind in order:  # each kind in turn first, so none always follows the same one
            start = time.perf_counter()
            for rows in plan:
                kinds[kind](rows)
            rounds[kind].append(clips / (time.perf_counter() - start))
    rate = {k: float(np.median(v)) for k, v in rounds.items()}

    def ratio(ours: str, base: str) -> float:
        return float(np.median(np.divide(rounds[ours], rounds[base])))

    report = {
        "command": "python -m benchmarks.sampler_bench " + shlex.join(sys.argv[1:]),
        "clips_in_split": reader.num_rows,
        "clip": f"{SECONDS} s at {SR} Hz int16",
        "clips_timed_per_round": clips,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        **{f"{k}_clips_per_s": round(v, 1) for k, v in rate.items()},
        "reader_vs_panns": round(ratio("reader", "panns"), 2),
        "tf_data_vs_panns": round(ratio("tf_data", "panns"), 2),
        "tf_data_vs_panns_loader": round(ratio("tf_data", "panns_loader"), 2),
        "reader_vs_copy_limit": round(ratio("reader", "copy_limit"), 2),
        "copy_limit_vs_panns": round(ratio("copy_limit", "panns"), 2),
        "per_round_clips_per_s": {k: [round(x) for x in v] for k, v in rounds.items()},
        "cnn14_gpu_clips_per_s": CNN14_GPU,
    }
    print(f"{'':14s} {'clips/s':>9s}  what")
    for kind, what in (
        ("panns", "int16 clip + target, one h5py.File per clip"),
        ("panns_loader", "PANNs __getitem__ + collate: float32 batch"),
        ("reader", "ShardReader.read: int16 batch + bool targets"),
        ("tf_data", "make_dataset: float32 batch tensors"),
        ("copy_limit", "consecutive rows, one preadv per batch: a reference"),
    ):
        print(f"{kind:14s} {rate[kind]:9,.0f}  {what}")
    print(
        f"reader / panns {report['reader_vs_panns']}x, tf.data / panns "
        f"{report['tf_data_vs_panns']}x, tf.data / panns_loader "
        f"{report['tf_data_vs_panns_loader']}x (medians of {args.rounds} rounds); reader at "
        f"{report['reader_vs_copy_limit']} of the copy limit, which is "
        f"{report['copy_limit_vs_panns']}x panns"
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
