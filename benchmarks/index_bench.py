"""Per-class index build time and peak memory against PANNs' way of indexing, in one run.

Makes a synthetic split of N clips (default 2 million) over 527 classes with AudioSet-like
label frequencies: a clip has 1 + Poisson(1.4) distinct labels (2.4 on average), drawn from a
Zipf-like class distribution (``p_k ~ 1 / (k + 1)^s``, default s = 1.3), written as HDF5 shards
of 1000 rows holding only what the index reads (``target`` bool (N, C) and ``clip_id``; real
shards also hold the waveforms, which the index never touches) and a manifest. Then measures,
each in a fresh process (so peaks do not mix):

``audiomill[<client>]``
    :func:`features.class_index.build_class_index` with the given Dask client: ``default``
    (a threaded ``LocalCluster``), ``processes`` (a ``LocalCluster`` of one single-threaded
    worker process per core), ``threads`` or ``synchronous`` (Dask's local schedulers);
``panns``
    what PANNs' balanced sampler does: load every target into one dense (N, C) bool matrix and
    ``np.where(targets[:, k])`` for each class (no weights, nothing written).

Peak memory is the largest sum of RSS over the measured process and its children, sampled every
20 ms; ``base`` is the RSS once the imports are done, before any work. Both results are checked
to hold the same per-class rows (a digest of the per-class arrays).

Usage::

    python benchmarks/index_bench.py --clips 2000000 --workdir /tmp/index-bench
    python benchmarks/index_bench.py --clips 200000 --client default --client processes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import psutil
from distributed import Client, LocalCluster

from features.class_index import build_class_index, load_class_index
from pipelines.dataset_state import save_manifest
from pipelines.process_exit import exit_now
from pipelines.storage import DatasetStore
from schemas.dataset import DatasetManifest, ShardEntry, ShardFile, waveform_shard_path

SPLIT = "train"


def class_probabilities(num_classes: int, zipf: float) -> np.ndarray:
    """Zipf-like class distribution, most frequent class first."""
    p = 1.0 / np.arange(1, num_classes + 1) ** zipf
    return p / p.sum()


def draw_targets(rng: np.random.Generator, rows: int, num_classes: int, zipf: float) -> np.ndarray:
    """AudioSet-like multi-hot targets (rows, C) bool: 1 + Poisson(1.4) distinct labels a clip,
    drawn from :func:`class_probabilities`."""
    p = class_probabilities(num_classes, zipf)
    wanted = np.minimum(1 + rng.poisson(1.4, size=rows), num_classes)
    target = np.zeros((rows, num_classes), dtype=bool)
    missing = wanted
    while missing.any():  # draws that repeat a clip's label are drawn again
        target[np.repeat(np.arange(rows), missing), rng.choice(num_classes, missing.sum(), p=p)] = 1
        missing = wanted - target.sum(axis=1)
    return target


def write_shard(args: tuple[str, int, int, int, float, int]) -> dict:
    """Write shard ``index`` (rows of labels drawn from its own seed); return its manifest entry."""
    root, index, rows, num_classes, zipf, seed = args
    target = draw_targets(np.random.default_rng([seed, index]), rows, num_classes, zipf)
    ids = [f"Y{index:06d}x{r:04d}_{r * 10000}" for r in range(rows)]
    rel = waveform_shard_path(SPLIT, index, "hdf5")
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as hf:
        hf.create_dataset("target", data=target)
        hf.create_dataset("clip_id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
    data = path.read_bytes()
    entry = ShardEntry(
        index=index,
        num_clips=rows,
        files={"hdf5": ShardFile(rel, hashlib.sha256(data).hexdigest(), len(data))},
        run_id="bench",
        clip_ids_sha256=hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    )
    return {"entry": entry, "labels": int(target.sum())}


def make_dataset(root: Path, clips: int, shard_clips: int, num_classes: int, zipf: float) -> dict:
    """Write (or reuse) the synthetic dataset; return its parameters and label statistics."""
    params = {"clips": clips, "shard_clips": shard_clips, "classes": num_classes, "zipf": zipf}
    stamp = root / "bench.json"
    if stamp.exists() and json.loads(stamp.read_text())["params"] == params:
        return json.loads(stamp.read_text())
    started = time.perf_counter()
    jobs = [
        (str(root), i, min(shard_clips, clips - start), num_classes, zipf, 0)
        for i, start in enumerate(range(0, clips, shard_clips))
    ]
    with ProcessPoolExecutor() as pool:
        done = list(pool.map(write_shard, jobs, chunksize=16))
    manifest = DatasetManifest(
        class_map_sha256="0" * 64,
        num_classes=num_classes,
        sample_rate=32000,
        clip_seconds=10.0,
        formats=["hdf5"],
    )
    manifest.split(SPLIT).shards = [d["entry"] for d in done]
    save_manifest(DatasetStore(root), manifest)
    info = {
        "params": params,
        "shards": len(done),
        "labels": sum(d["labels"] for d in done),
        "generate_seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps(info))
    return info


def digest(per_class: list[np.ndarray]) -> str:
    """sha256 over the per-class arrays of global rows (as int64)."""
    h = hashlib.sha256()
    for rows in per_class:
        h.update(np.asarray(rows, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def measure(kind: str, root: Path) -> dict:
    """Run one measurement in this process; the parent samples memory."""
    base = psutil.Process().memory_info().rss
    print("READY", flush=True)
    sys.stdin.readline()  # the parent's sampler is running
    started = time.perf_counter()
    if kind == "panns":
        manifest = json.loads((root / "manifest.json").read_text())
        shards = manifest["splits"][SPLIT]["shards"]
        n = sum(s["num_clips"] for s in shards)
        targets = np.zeros((n, manifest["num_classes"]), dtype=bool)
        at = 0
        for s in shards:
            with h5py.File(root / s["files"]["hdf5"]["path"], "r") as hf:
                hf["target"].read_direct(targets, dest_sel=np.s_[at : at + s["num_clips"]])
            at += s["num_clips"]
        per_class = [np.where(targets[:, k])[0] for k in range(targets.shape[1])]
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "base_rss": base, "digest": digest(per_class)}
    client = kind.removeprefix("audiomill[").removesuffix("]")
    if client == "processes":
        cluster = LocalCluster(
            n_workers=os.cpu_count(), threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        active = Client(cluster)
        started = time.perf_counter()  # cluster start-up is not part of the build
    else:
        active = None if client == "default" else client
    summary = build_class_index(root, SPLIT, client=active)
    seconds = time.perf_counter() - started
    if client == "processes":
        active.close()
        cluster.close()
    loaded = time.perf_counter()
    index = load_class_index(root, SPLIT)
    load_seconds = time.perf_counter() - loaded
    return {
        "seconds": seconds,
        "load_seconds": load_seconds,
        "base_rss": base,
        "positions": summary.num_positions,
        "digest": digest(index.per_class()),
        "counts_max": int(index.counts.max()),
        "counts_min": int(index.counts.min()),
    }


def run_measurement(kind: str, root: Path) -> dict:
    """Run ``measure(kind)`` in a fresh process, sampling its tree's RSS every 20 ms."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--measure", kind, "--workdir", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "READY"
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"{kind} failed with exit status {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2_000_000)
    parser.add_argument("--shard-clips", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=527)
    parser.add_argument("--zipf", type=float, default=1.3, help="exponent s of p_k ~ 1/(k+1)^s")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/index-bench"))
    parser.add_argument(
        "--client",
        action="append",
        choices=["default", "processes", "threads", "synchronous"],
        help="Dask clients to measure (repeatable; default: default)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the PANNs baseline")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workdir)))
        exit_now(0)  # without the native teardown where Arrow's pools now and then abort

    info = make_dataset(args.workdir, args.clips, args.shard_clips, args.classes, args.zipf)
    print(
        f"dataset: {args.clips:,} clips in {info['shards']:,} shards, {args.classes} classes, "
        f"{info['labels'] / args.clips:.2f} labels/clip (generated in {info['generate_seconds']}"
        f" s, reused when present)",
        flush=True,
    )
    kinds = [f"audiomill[{c}]" for c in (args.client or ["default"])]
    kinds += [] if args.no_baseline else ["panns"]
    results = {}
    for kind in kinds:
        r = results[kind] = run_measurement(kind, args.workdir)
        extra = f", load {r['load_seconds']:.2f} s" if "load_seconds" in r else ""
        print(
            f"{kind:24s} {r['seconds']:6.2f} s{extra}, {args.clips / r['seconds']:,.0f} clips/s, "
            f"peak RSS {r['peak_rss'] / 2**20:,.0f} MiB "
            f"(+{(r['peak_rss'] - r['base_rss']) / 2**20:,.0f} MiB over the imports)",
            flush=True,
        )
    ours = next(iter(results.values()))
    if "counts_max" in ours:
        print(f"class counts: most frequent {ours['counts_max']:,}, rarest {ours['counts_min']:,}")
    digests = {r["digest"] for r in results.values()}
    print("per-class rows identical across runs:", len(digests) == 1)
    if len(digests) != 1:
        sys.exit(1)


if __name__ == "__main__":
    main()
