"""Ingest throughput and peak memory against a PANNs-style packing baseline, in one run.

Makes N ten-second 44.1 kHz stereo WAV files, then measures on the same files:

``limit``
    the machine's decode + downmix + resample limit: ingest's own ``decode``, ``to_mono`` and
    ``resample`` (soxr HQ) to 32 kHz of every file and nothing else, in one process per core
    (no writing), clips/s;
``limit_with_write``
    the same, each process also writing its clips as int16 rows to one file as audiomill
    does (``O_DIRECT`` from a writer thread, :mod:`pipelines.direct_io`), hashing them into
    the file's sha256 as they are written, and syncing the file at the end: what any ingest
    that keeps its output, checksummed as the dataset's manifest asks, pays at least;
``panns``
    what PANNs' packing step does: ``librosa.load(path, sr=32000, mono=True)`` per file with
    the resampler PANNs' pinned librosa 0.6.3 used by default (``kaiser_best``), each row
    written into an h5py dataset;
``librosa-soxr``
    the same with today's librosa default resampler (``soxr_hq``), for reference;
``audiomill``
    ``audiomill ingest --source local`` to 32 kHz HDF5 shards (Beam DirectRunner; a process
    decodes on up to four cores), end to end including interpreter start, imports, Beam
    start-up, validation and commits;
``audiomill_start`` and ``audiomill_steady``
    the same command on the first ``--start-clips`` files gives the fixed cost of a run; the
    steady rate is ``(N - start_clips) / (T_N - T_start)``, what each further clip costs.

The limit processes keep freed memory in the heap as ingest does
(:func:`pipelines.heap.retain_freed_memory`): without it every decoded array is fresh pages,
and the limit would be about half of what the machine can do.

Beyond 2,000 clips (``--clips 10000`` shows the rate a long run tends to, past the fixed
cost) the files are hard links to the first 2,000: every clip still has its own name and is
decoded, resampled and written, by the limits and by audiomill alike.

Every file is read once before the timings, so all of them read from the page cache, and each
timing starts after ``sync``, so none pays for writing back what an earlier one wrote (the
baselines write 1.3 GB at 2,000 clips). Peak
memory is the largest sum of RSS over the measured process tree, sampled every 50 ms.

The speed of a shared VM drifts by tens of percent within minutes, so the limits and the
audiomill runs are measured in ``--rounds`` rounds, each one back to back, and every ratio is
reported per round and as the median and range over rounds. Within a round the limit is
measured before and after the audiomill runs, and the ratios use the two together. The
baselines (minutes each) run once; their ratios use the median audiomill rate.

Usage::

    python benchmarks/ingest_bench.py --clips 500 --clips 2000 --rounds 3 --workdir /tmp/ib
    python benchmarks/ingest_bench.py --clips 10000 --no-baselines --rounds 3 --workdir /tmp/ib
"""

from __future__ import annotations

import argparse
import csv
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
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.audio import decode, fix_length, float_to_int16, resample, to_mono
from pipelines.direct_io import UncachedRows
from pipelines.heap import retain_freed_memory

SR_IN, SR_OUT, SECONDS = 44100, 32000, 10.0
DISTINCT_FILES = 2000
"""Files with content of their own; more are hard links to them (1.7 GB of WAV per 1,000)."""


def make_files(root: Path, n: int, distinct: int = DISTINCT_FILES) -> list[Path]:
    """Write (or reuse) n ten-second 44.1 kHz stereo WAVs; past the first ``distinct``, file
    ``i`` is a hard link to file ``i % distinct`` (its own name and clip id, no more disk)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(SR_IN * SECONDS)) / SR_IN
    paths = []
    for i in range(n):
        path = root / f"clip{i:05d}.wav"
        if i >= distinct:
            if not path.exists():
                os.link(paths[i % distinct], path)
        elif not path.exists():
            f = 100 + 10 * (i % 300)
            x = np.stack([np.sin(2 * np.pi * f * t), np.sin(2 * np.pi * 1.5 * f * t)], axis=1)
            x = 0.3 * x + 0.02 * rng.standard_normal(x.shape)
            sf.write(path, x.astype(np.float32), SR_IN, subtype="PCM_16")
        paths.append(path)
    return paths


class PeakRSS:
    """Sample the RSS of a process and its descendants; keep the peak sum."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                total = sum(p.memory_info().rss for p in procs if p.is_running())
            except psutil.Error:
                continue
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _resampled(path: str) -> np.ndarray:
    """Decode, downmix and resample one file with ingest's own functions, and nothing else."""
    decoded = decode(path)
    return resample(to_mono(decoded.samples), decoded.sample_rate, SR_OUT)


def _decode_resample(path: str) -> int:
    return len(_resampled(path))


def _decode_resample_write(job: tuple[list[str], str]) -> tuple[int, str]:
    """Decode and resample ``paths``, append each as a fixed-length int16 row to ``out``, sync;
    returns the rows written and the file's sha256, computed as the rows are written.

    Rows go to disk as audiomill writes shards, so that this is the machine's best durable
    write: with ``O_DIRECT`` from a writer thread (``pipelines.direct_io``), or written behind
    (``pipelines.page_cache``) where the file system refuses that. The checksum is the one a
    shard needs in the manifest (DESIGN section 3)."""
    paths, out = job
    clip = int(SR_OUT * SECONDS)
    digest = hashlib.sha256()
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    rows = UncachedRows(out, fd, 0, clip * 2)
    try:
        for i, path in enumerate(paths):
            row = float_to_int16(fix_length(_resampled(path), clip)[0])
            rows.write(row, i * row.nbytes)
            digest.update(row)
        rows.settle(0, len(paths) * clip * 2)
        os.fsync(fd)
    finally:
        rows.close()
        os.close(fd)
    return len(paths), digest.hexdigest()


def warm_page_cache(paths: list[Path]) -> None:
    """Read every file once, so no measurement pays for the first reads from disk."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass


def bench_limit(paths: list[Path], workers: int) -> dict:
    os.sync()
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, initializer=retain_freed_memory) as pool:
        list(pool.map(_decode_resample, map(str, paths), chunksize=16))
    secs = time.perf_counter() - start
    return {"clips_per_s": len(paths) / secs, "seconds": secs}


def bench_limit_with_write(paths: list[Path], workers: int, scratch: Path) -> dict:
    scratch.mkdir(parents=True, exist_ok=True)
    per = -(-len(paths) // workers)
    jobs = [
        ([str(p) for p in paths[i : i + per]], str(scratch / f"rows-{i // per}.bin"))
        for i in range(0, len(paths), per)
    ]
    os.sync()
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, initializer=retain_freed_memory) as pool:
        list(pool.map(_decode_resample_write, jobs))
    secs = time.perf_counter() - start
    for _, out in jobs:
        os.remove(out)
    return {"clips_per_s": len(paths) / secs, "seconds": secs}


def _panns_child(paths_file: str, out: str, res_type: str) -> None:
    import librosa

    paths = Path(paths_file).read_text().split("\n")
    clip = int(SR_OUT * SECONDS)
    with h5py.File(out, "w") as hf:
        hf.create_dataset("audio_name", shape=(len(paths),), dtype="S20")
        hf.create_dataset("waveform", shape=(len(paths), clip), dtype=np.int16)
        for i, p in enumerate(paths):
            audio, _ = librosa.load(p, sr=SR_OUT, mono=True, res_type=res_type)
            audio = np.pad(audio, (0, max(0, clip - len(audio))))[:clip]
            hf["audio_name"][i] = Path(p).name.encode()
            hf["waveform"][i] = (np.clip(audio, -1, 1) * 32767.0).astype(np.int16)


def bench_child(cmd: list[str], env: dict | None = None) -> dict:
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with PeakRSS(proc.pid) as mem:
        _, err = proc.communicate()
    secs = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{err.decode()[-3000:]}")
    return {"seconds": secs, "peak_rss_mb": mem.peak / 2**20}


def bench_audiomill(paths: list[Path], workdir: Path, workers: int) -> dict:
    """``audiomill ingest --source local`` of ``paths`` into a fresh dataset, timed."""
    n = len(paths)
    manifest = workdir / f"manifest-{n}.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "labels"])
        w.writerows([p.name, "tone"] for p in paths)
    dataset = workdir / f"dataset-{n}"
    subprocess.run(["rm", "-rf", str(dataset)], check=True)
    env = dict(os.environ, GX_ANALYTICS_ENABLED="false")
    r = bench_child(
        [sys.executable, "-m", "workflows", "ingest", "--segments", str(manifest), "--out",
         str(dataset), "--audio-root", str(paths[0].parent), "--source", "local",
         "--sample-rate", str(SR_OUT), "--clip-seconds", str(SECONDS), "--format", "hdf5",
         "--workers", str(workers)],
        env=env,
    )  # fmt: skip
    r["clips_per_s"] = n / r["seconds"]
    return r


def steady_rate(n: int, seconds: float, start_clips: int, start_seconds: float) -> float:
    """Clips per second beyond a run's fixed cost: ``(n - start_clips) / (seconds -
    start_seconds)``, from a run of ``n`` clips and one of ``start_clips``."""
    if n <= start_clips or seconds <= start_seconds:
        raise ValueError(f"need a longer run than the start run: {n} clips in {seconds:.2f} s")
    return (n - start_clips) / (seconds - start_seconds)


def bracketed(before: dict, after: dict) -> dict:
    """The limit at the time of the runs measured between ``before`` and ``after`` (two
    :func:`bench_limit` results of the same clips): the rate of their mean time."""
    seconds = (before["seconds"] + after["seconds"]) / 2
    clips = before["clips_per_s"] * before["seconds"]
    return {"clips_per_s": clips / seconds, "seconds": seconds, "before": before, "after": after}


def measure_round(paths: list[Path], workdir: Path, workers: int, start_clips: int) -> dict:
    """One round: the limits, the short and the full audiomill run, and the limit again, back
    to back, and their ratios. The limit the ratios use is the mean of the two around the
    runs (:func:`bracketed`), so a drift of the machine's speed within the round cancels."""
    n = len(paths)
    before = bench_limit(paths, workers)
    r: dict = {
        "limit_with_write": bench_limit_with_write(paths, workers, workdir / "limit-rows"),
        "audiomill_start": bench_audiomill(paths[:start_clips], workdir, workers),
        "audiomill": bench_audiomill(paths, workdir, workers),
    }
    r["limit"] = bracketed(before, bench_limit(paths, workers))
    steady = steady_rate(n, r["audiomill"]["seconds"], start_clips, r["audiomill_start"]["seconds"])
    r["audiomill_steady"] = {"clips_per_s": steady}
    rate = r["audiomill"]["clips_per_s"]
    limit, with_write = r["limit"]["clips_per_s"], r["limit_with_write"]["clips_per_s"]
    r["ratios"] = {
        "audiomill_over_limit": rate / limit,
        "audiomill_over_limit_with_write": rate / with_write,
        "steady_over_limit": steady / limit,
        "steady_over_limit_with_write": steady / with_write,
    }
    return r


def summarize(rounds: list[dict]) -> dict:
    """Median and range over rounds of every ratio, and the largest peak memory."""
    summary = {
        name: {
            "median": float(np.median([r["ratios"][name] for r in rounds])),
            "min": min(r["ratios"][name] for r in rounds),
            "max": max(r["ratios"][name] for r in rounds),
        }
        for name in rounds[0]["ratios"]
    }
    summary["peak_rss_mb"] = max(r["audiomill"]["peak_rss_mb"] for r in rounds)
    summary["audiomill_clips_per_s"] = float(
        np.median([r["audiomill"]["clips_per_s"] for r in rounds])
    )
    return summary


def run(
    n: int, workdir: Path, workers: int, baselines: bool, start_clips: int, rounds: int
) -> dict:
    """Measure ``n`` clips: the baselines once, then ``rounds`` rounds of
    :func:`measure_round`, summarized by :func:`summarize`."""
    paths = make_files(workdir / "wav44k", n)
    result: dict = {"clips": n, "workers": workers}
    warm_page_cache(paths)
    listing = workdir / f"paths-{n}.txt"
    listing.write_text("\n".join(map(str, paths)))
    if baselines:
        for name, res_type in (("panns", "kaiser_best"), ("librosa-soxr", "soxr_hq")):
            out = workdir / f"{name}-{n}.h5"
            r = bench_child([sys.executable, __file__, "--child", str(listing), str(out), res_type])
            r["clips_per_s"] = n / r["seconds"]
            result[name] = r
    result["rounds"] = [measure_round(paths, workdir, workers, start_clips) for _ in range(rounds)]
    result["summary"] = summarize(result["rounds"])
    if baselines:
        rate = result["summary"]["audiomill_clips_per_s"]
        result["summary"]["audiomill_over_panns"] = rate / result["panns"]["clips_per_s"]
        result["summary"]["audiomill_over_librosa_soxr"] = (
            rate / result["librosa-soxr"]["clips_per_s"]
        )
    return result


def main() -> None:
    """Command-line entry point."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # every measured process runs one thread per core
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _panns_child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, action="append", help="clip counts (repeatable)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/audiomill-ingest-bench"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    parser.add_argument(
        "--start-clips",
        type=int,
        default=20,
        help="clips of the short run that measures a run's fixed cost",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of limit and audiomill runs, whose ratios are summarized by their median",
    )
    args = parser.parse_args()
    results = [
        run(n, args.workdir, args.workers, not args.no_baselines, args.start_clips, args.rounds)
        for n in (args.clips or [500])
    ]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
