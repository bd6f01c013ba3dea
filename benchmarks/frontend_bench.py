"""VGGish log-mel front-end throughput against a reference-style baseline, in one run.

Makes N ten-second 16 kHz int16 clips (noise plus tones), then times on the same clips:

``baseline``
    a straightforward per-clip float64 implementation written the way Google's reference
    (``mel_features.py``) is: int16 / 32768, ``as_strided`` framing, periodic Hann,
    ``np.fft.rfft(frames, 512)``, ``abs``, dense mel matrix product, ``log(+0.01)``, 96-frame
    examples. The mel matrix is built once here (the reference rebuilds it on every call, so the
    reference itself is a little slower than this baseline);
``exact`` / ``fast``
    :func:`features.vggish_frontend.batch_waveform_to_examples` on all clips at once, with one
    thread (``-w1``) and with ``--workers`` threads (``-wN``).

Each timing is the best of ``--repeats`` rounds in which the runs take turns (the machine may be
shared); ``paired_speedup_vs_baseline`` gives the median (and range) of the per-round ratios to
the baseline, the figure least moved by load that comes and goes; ``cpu_seconds`` is the process
CPU time (all threads), a check on wall times taken on a busy machine. Throughput is VGGish
examples (0.96 s each) per wall-clock second; ``max_abs_err`` is against the baseline's values.
With ``--keep-freed-memory`` the process keeps freed memory in its heap
(:func:`pipelines.heap.retain_freed_memory`) for all runs. Without it the baseline's
megabyte-sized arrays are fresh pages on every clip, and on a VM whose host reclaims free guest
memory their page faults cost as much as some of the arithmetic and vary from round to round:
the baseline is slower and less steady, and the ratios higher.
The baseline's dense matrix product runs on one BLAS thread unless ``--baseline-blas-threads``
says otherwise: OpenBLAS threads spin after each call and would take CPU from the runs that
follow, and ours is single-threaded at ``-w1``.

Usage::

    python benchmarks/frontend_bench.py --clips 200 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from features.vggish_frontend import batch_waveform_to_examples
from pipelines.heap import retain_freed_memory

SAMPLE_RATE, SECONDS = 16000, 10.0


def make_clips(n: int, seconds: float, seed: int = 0) -> np.ndarray:
    """n int16 clips (n, seconds * 16000): white noise plus two random tones each."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clips = np.empty((n, t.size), np.int16)
    for row in clips:
        freqs = rng.uniform(100.0, 7800.0, size=2)
        tones = np.sin(2 * np.pi * freqs[:, None] * t).sum(axis=0)
        row[:] = np.round(3000.0 * tones + 1000.0 * rng.standard_normal(t.size))
    return clips


def reference_mel_matrix() -> np.ndarray:
    """Dense (257, 64) HTK mel matrix, built band by band as the reference does."""

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    bins_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, 257))
    edges = np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), 66)
    weights = np.empty((257, 64))
    for band in range(64):
        lower, center, upper = edges[band : band + 3]
        rising = (bins_mel - lower) / (center - lower)
        falling = (upper - bins_mel) / (upper - center)
        weights[:, band] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


def baseline_examples(clip: np.ndarray, mel_matrix: np.ndarray) -> np.ndarray:
    """One clip's (n_examples, 96, 64) log-mel examples, computed the reference's way."""
    x = clip / 32768.0
    n_frames = 1 + (len(x) - 400) // 160
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, 400), strides=(x.strides[0] * 160, x.strides[0])
    )
    window = 0.5 - 0.5 * np.cos(2 * np.pi / 400 * np.arange(400))
    magnitude = np.abs(np.fft.rfft(frames * window, 512))
    log_mel = np.log(np.dot(magnitude, mel_matrix) + 0.01)
    n_examples = 1 + (n_frames - 96) // 96
    return np.lib.stride_tricks.as_strided(
        log_mel,
        shape=(n_examples, 96, 64),
        strides=(log_mel.strides[0] * 96, *log_mel.strides),
    )


def time_round_robin(
    runs: dict[str, Callable[[], np.ndarray]], repeats: int
) -> tuple[dict[str, tuple[float, float, np.ndarray]], dict[str, list[float]]]:
    """Best wall and process CPU time of each run and its result, and each round's wall times.

    The runs take turns, ``repeats`` rounds, so that all of them see the same changes in load;
    a round's times of two runs were taken seconds apart, so their ratio is robust to load that
    comes and goes between rounds.
    """
    best = {name: (float("inf"), float("inf"), None) for name in runs}
    rounds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            result = fn()
            wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu), result)
            rounds[name].append(wall)
    return best, rounds


def paired_speedups(rounds: dict[str, list[float]], baseline: str) -> dict[str, dict[str, float]]:
    """Per-round ``baseline / run`` wall-time ratios: their median, minimum and maximum.

    Parameters
    ----------
    rounds : dict
        Wall times per run, one per round, as :func:`time_round_robin` returns them.
    baseline : str
        The run the others are divided into.

    Returns
    -------
    dict
        ``{run: {"median": ..., "min": ..., "max": ...}}`` for every run.
    """
    summary = {}
    for name, walls in rounds.items():
        ratios = np.asarray(rounds[baseline]) / np.asarray(walls)
        summary[name] = {
            "median": round(float(np.median(ratios)), 2),
            "min": round(float(ratios.min()), 2),
            "max": round(float(ratios.max()), 2),
        }
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--baseline-blas-threads",
        type=int,
        default=1,
        help="BLAS threads for the baseline's matrix product (idle OpenBLAS threads spin and "
        "steal CPU from the runs that follow; 0 = library default)",
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="keep freed memory in the heap for every run (pipelines.heap.retain_freed_memory) "
        "instead of fresh pages for each new array",
    )
    args = parser.parse_args(argv)
    kept_freed_memory = args.keep_freed_memory and retain_freed_memory()

    clips = make_clips(args.clips, args.seconds)
    mel_matrix = reference_mel_matrix()
    blas_limit = args.baseline_blas_threads or None

    def baseline() -> np.ndarray:
        with threadpool_limits(blas_limit, user_api="blas"):
            return np.stack([baseline_examples(c, mel_matrix) for c in clips])

    runs: dict[str, Callable[[], np.ndarray]] = {"baseline": baseline}
    for mode in ("exact", "fast"):
        for workers in sorted({1, args.workers}):
            runs[f"{mode}-w{workers}"] = lambda mode=mode, workers=workers: (
                batch_waveform_to_examples(clips, SAMPLE_RATE, mode=mode, workers=workers)
            )

    load_before = os.getloadavg()[0]
    timings, rounds = time_round_robin(runs, args.repeats)
    reference = timings["baseline"][2]
    results = {
        name: {
            "seconds": round(wall, 4),
            "cpu_seconds": round(cpu, 4),
            "examples_per_s": round(out.shape[0] * out.shape[1] / wall, 1),
            "max_abs_err": float(np.abs(out - reference).max()),
        }
        for name, (wall, cpu, out) in timings.items()
    }
    base = results["baseline"]
    report = {
        "clips": args.clips,
        "clip_seconds": args.seconds,
        "examples": int(reference.shape[0] * reference.shape[1]),
        "repeats": args.repeats,
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "baseline_blas_threads": blas_limit or "default",
        "kept_freed_memory": kept_freed_memory,
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "results": results,
        "speedup_vs_baseline": {
            name: round(r["examples_per_s"] / base["examples_per_s"], 2)
            for name, r in results.items()
        },
        "paired_speedup_vs_baseline": paired_speedups(rounds, "baseline"),
        "cpu_time_ratio_vs_baseline": {
            name: round(base["cpu_seconds"] / r["cpu_seconds"], 2) for name, r in results.items()
        },
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
