"""Embedding training: throughput of our input path, and time to convergence, in one run.

Writes (or reuses) a synthetic, learnable AudioSet-sized embedding dataset with the project's
own writers (:func:`features.embedding_shards.commit_embedding_shard` and a manifest):
``--train-clips`` and ``--eval-clips`` clips of 10 x 128 uint8 frames, ``--classes`` classes
with AudioSet-like labels (1 + Poisson(1.4) distinct labels a clip from a Zipf-like class
distribution, :func:`benchmarks.index_bench.draw_targets`). Each class has a Gaussian pattern
over the 128 dimensions; a clip's frame is ``128 + noise * N(0, 1)`` plus ``signal`` times the
pattern of each of its labels that is active in that frame (each label is active in a random
``--active`` share of the frames, at least one), rounded and clipped to uint8.

Then measures, with the multi-level attention model (``--hidden`` 600, AudioSet's shape):

``throughput``
    clips/s of the median training step of ``--batch-size`` clips, over ``--timed-steps``
    steps after ``--warmup-steps``, in ``--rounds`` interleaved rounds (medians reported, so a
    busy spell on a shared machine hits both alike). ``audiomill`` is
    :func:`modeling.training.train` (run planned by :func:`modeling.run_setup.plan_run`,
    balanced sampler, HDF5 shards read through :func:`modeling.readers.make_dataset`, Keras
    ``fit`` on chunks); ``in-memory`` is the same model, compiled the same way, trained with
    ``model.fit`` on NumPy arrays already in memory (the input pipeline's upper bound).
    ``pipeline`` is the reader + sampler + ``tf.data`` alone, no model.
``convergence``
    :func:`modeling.training.train` on the whole training split, evaluating mAP on the eval
    split every ``--eval-every`` steps (default: ``--evals-per-epoch`` a epoch), until the mAP
    has converged: ``--patience`` consecutive evaluations all within ``--tolerance`` of the
    best mAP so far (or ``--max-epochs``). The run is stopped at the first step after the
    evaluation that converged (its checkpoint and history are complete); the time reported is
    the wall time from calling ``train`` to the end of that evaluation.

Run::

    python -m benchmarks.train_bench --dir /tmp/train-bench
    python -m benchmarks.train_bench --dir /tmp/train-bench-big --train-clips 200000 \\
        --eval-clips 20000 --max-epochs 60
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.index_bench import draw_targets
from features.embedding_shards import commit_embedding_shard
from modeling.models import build_model, compile_model, strategy_and_policy
from modeling.readers import ShardReader, make_dataset, raw_float
from modeling.run_setup import plan_run
from modeling.runs import RunDir
from modeling.train_data import make_sampler, read_row_labels
from modeling.training import train
from pipelines.dataset_state import save_manifest
from pipelines.storage import DatasetStore
from schemas.classmap import ClassMap
from schemas.dataset import CLASSES, DatasetManifest
from schemas.embeddings import EmbeddingRows

MODEL = "vggish"
FRAMES, DIM = 10, 128
STAMP = "train-bench.json"


# --------------------------------------------------------------------------- the data


def embed_clips(
    rng: np.random.Generator,
    targets: np.ndarray,
    patterns: np.ndarray,
    *,
    signal: float,
    noise: float,
    active: float,
) -> np.ndarray:
    """Synthetic embeddings of clips with the given labels.

    Parameters
    ----------
    rng : np.random.Generator
    targets : np.ndarray [shape=(N, C), dtype=bool]
    patterns : np.ndarray [shape=(C, D)]
        Each class's direction in the embedding space.
    signal, noise : float
        Scale of a label's pattern and standard deviation of the noise, in uint8 steps.
    active : float
        Probability that a label is present in a frame (each label is present in one frame
        at least).

    Returns
    -------
    np.ndarray [shape=(N, 10, D), dtype=uint8]
    """
    n, dim = len(targets), patterns.shape[1]
    x = rng.standard_normal((n, FRAMES, dim), dtype=np.float32)
    x *= np.float32(noise)
    x += np.float32(128)
    clips, classes = np.nonzero(targets)
    on = rng.random((len(clips), FRAMES)) < active
    on[np.arange(len(clips)), rng.integers(0, FRAMES, len(clips))] = True
    contribution = (np.float32(signal) * on[:, :, None]) * patterns[classes][:, None, :]
    np.add.at(x, clips, contribution)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def write_embedding_dataset(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write (or reuse, when its parameters match) the synthetic dataset at ``root``."""
    params = {
        k: getattr(args, k)
        for k in ("train_clips", "eval_clips", "classes", "shard_clips", "zipf", "signal")
    }
    params.update({k: getattr(args, k) for k in ("noise", "active", "seed")})
    stamp = root / STAMP
    if stamp.exists() and json.loads(stamp.read_text())["params"] == params:
        return json.loads(stamp.read_text())
    if root.exists():
        shutil.rmtree(root)
    started = time.perf_counter()
    store = DatasetStore(root)
    classes = ClassMap.from_names([f"class {c:03d}" for c in range(args.classes)])
    store.write_bytes_atomic(CLASSES, classes.to_csv_text().encode())
    manifest = DatasetManifest(classes.sha256, args.classes, 16000, 10.0, [])
    patterns = np.random.default_rng([args.seed, 0]).standard_normal((args.classes, DIM))
    patterns = patterns.astype(np.float32)
    labels = 0
    for split_id, (split, clips) in enumerate(
        (("train", args.train_clips), ("eval", args.eval_clips))
    ):
        for index, start in enumerate(range(0, clips, args.shard_clips)):
            n = min(args.shard_clips, clips - start)
            rng = np.random.default_rng([args.seed, 1 + split_id, index])
            y = draw_targets(rng, n, args.classes, args.zipf)
            labels += int(y.sum())
            x = embed_clips(
                rng, y, patterns, signal=args.signal, noise=args.noise, active=args.active
            )
            ids = [f"{split}{start + i:07d}" for i in range(n)]
            rows = EmbeddingRows(x, y, ids, ids, np.full(n, FRAMES, dtype=np.int32))
            entry = commit_embedding_shard(
                store, MODEL, split, index, rows, {"model": MODEL}, ("hdf5",), "bench"
            )
            manifest.embedding_split(MODEL, split).shards.append(entry)
    save_manifest(store, manifest)
    info = {
        "params": params,
        "labels_per_clip": round(labels / (args.train_clips + args.eval_clips), 2),
        "generate_seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps(info))
    return info


# --------------------------------------------------------------------------- throughput


class _StepTimes(keras.callbacks.Callback):
    """Record ``time.perf_counter()`` at the end of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter())


def _steady_rate(times: list[float], warmup: int, batch_size: int) -> float:
    """Clips per second of the median step after ``warmup`` steps (robust to a busy spell)."""
    return batch_size / float(np.median(np.diff(times[warmup - 1 :])))


def _plan(root: Path, args: argparse.Namespace, steps: int, eval_every: int, eval_split: str):
    return plan_run(
        str(root),
        input="embeddings",
        batch_size=args.batch_size,
        steps=steps,
        eval_every=eval_every,
        eval_split=eval_split,
        learning_rate=args.learning_rate,
        model_args={"hidden": args.hidden},
        seed=args.seed,
    )


def measure_ours(root: Path, work: Path, args: argparse.Namespace) -> float:
    """Steady-state clips/s of :func:`modeling.training.train` (no evaluation in the window)."""
    steps = args.warmup_steps + args.timed_steps
    config, classes = _plan(root, args, steps, steps, "none")
    times: list[float] = []
    run = work / "throughput-run"
    shutil.rmtree(run, ignore_errors=True)
    train(config, run, classes=classes, progress=lambda *_: times.append(time.perf_counter()))
    return _steady_rate(times, args.warmup_steps, args.batch_size)


def measure_in_memory(root: Path, args: argparse.Namespace) -> float:
    """Steady-state clips/s of the same model trained by ``model.fit`` on in-memory arrays."""
    steps = args.warmup_steps + args.timed_steps
    config, _ = _plan(root, args, steps, steps, "none")
    with ShardReader(root, "train", "embeddings", model=MODEL) as reader:
        x, y = reader.read_all()
    order = np.random.default_rng(args.seed).permutation(len(x))
    take = np.resize(order, steps * args.batch_size)  # wraps around for small splits
    x, y = raw_float(x[take]), y[take].astype(np.float32)
    strategy, _ = strategy_and_policy(config.mixed_precision, None)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(
            config.model, config.input_kind, config.num_classes, config.task, **config.model_kwargs
        )
        compile_model(model, config.task, config.learning_rate, None, jit_compile=False)
    timer = _StepTimes()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, callbacks=[timer])
    return _steady_rate(timer.times, args.warmup_steps, args.batch_size)


def measure_pipeline(root: Path, args: argparse.Namespace) -> float:
    """Clips/s of the balanced sampler + reader + ``tf.data`` alone (float32 batches)."""
    reader = ShardReader(root, "train", "embeddings", model=MODEL)
    labels = read_row_labels(reader)
    sampler = make_sampler("balanced", np.arange(reader.num_rows), labels, args.seed)
    it = iter(make_dataset(reader, sampler, args.batch_size, transform=raw_float))
    for _ in range(args.warmup_steps):
        next(it)
    start = time.perf_counter()
    for _ in range(args.timed_steps):
        next(it)
    return args.timed_steps * args.batch_size / (time.perf_counter() - start)


# --------------------------------------------------------------------------- convergence


def converged_at(values: list[float], tolerance: float, patience: int) -> int | None:
    """First evaluation ``k`` whose last ``patience`` values are all within ``tolerance`` of
    the best value up to ``k``; None if there is none."""
    for k in range(patience - 1, len(values)):
        best = max(values[: k + 1])
        if min(values[k - patience + 1 : k + 1]) >= best - tolerance:
            return k
    return None


class _Converged(Exception):
    """Raised from the progress callback to end a run that has converged."""


def measure_convergence(root: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train until the eval mAP converges; return when, how long, and the mAP."""
    per_epoch = args.train_clips / args.batch_size
    eval_every = args.eval_every or max(1, math.ceil(per_epoch / args.evals_per_epoch))
    max_steps = max(eval_every, math.ceil(args.max_epochs * per_epoch))
    config, classes = _plan(root, args, max_steps, eval_every, "eval")
    run = RunDir(work / "convergence-run")
    shutil.rmtree(run.path, ignore_errors=True)

    def check(step: int, total: int, logs: dict) -> None:
        if step > 1 and (step - 1) % eval_every == 0:  # the evaluation before this step is saved
            maps = [entry["mAP"] for entry in run.history()]
            if converged_at(maps, args.tolerance, args.patience) is not None:
                raise _Converged

    started = time.perf_counter()
    with contextlib.suppress(_Converged):
        train(config, run.path, classes=classes, progress=check)
    wall = time.perf_counter() - started
    history = run.history()
    maps = [entry["mAP"] for entry in history]
    k = converged_at(maps, args.tolerance, args.patience)
    at = history[k if k is not None else -1]
    setup = wall - history[-1]["seconds"]  # before train()'s clock started
    return {
        "converged": k is not None,
        "seconds": round(setup + at["seconds"], 1),
        "steps": at["step"],
        "epochs": round(at["step"] * args.batch_size / args.train_clips, 2),
        "mAP": round(at["mAP"], 4),
        "best_mAP": round(max(maps), 4),
        "evaluations": k + 1 if k is not None else len(history),
        "eval_every": eval_every,
        "criterion": f"{args.patience} evaluations within {args.tolerance} of the best so far",
        "mAP_history": [round(m, 4) for m in maps],
        "clips_per_s_with_evals": round(at["step"] * args.batch_size / at["seconds"], 1),
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/train-bench"), help="workspace")
    data = parser.add_argument_group("synthetic data")
    data.add_argument("--train-clips", type=int, default=20_000)
    data.add_argument("--eval-clips", type=int, default=4_000)
    data.add_argument("--classes", type=int, default=527)
    data.add_argument("--shard-clips", type=int, default=1000)
    data.add_argument("--zipf", type=float, default=1.0, help="class frequency ~ 1/(k+1)^zipf")
    data.add_argument("--signal", type=float, default=32.0, help="pattern scale (uint8 steps)")
    data.add_argument("--noise", type=float, default=8.0, help="noise std (uint8 steps)")
    data.add_argument("--active", type=float, default=0.5, help="share of frames with a label")
    model = parser.add_argument_group("model and training")
    model.add_argument("--hidden", type=int, default=600)
    model.add_argument("--batch-size", type=int, default=64)
    model.add_argument("--learning-rate", type=float, default=1e-3)
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--warmup-steps", type=int, default=20)
    model.add_argument("--timed-steps", type=int, default=100)
    model.add_argument("--rounds", type=int, default=2, help="throughput rounds (medians)")
    conv = parser.add_argument_group("convergence")
    conv.add_argument("--eval-every", type=int, help="steps; default: --evals-per-epoch")
    conv.add_argument("--evals-per-epoch", type=float, default=2.0)
    conv.add_argument("--tolerance", type=float, default=0.005)
    conv.add_argument("--patience", type=int, default=3)
    conv.add_argument("--max-epochs", type=float, default=15.0)
    parser.add_argument("--skip", choices=["throughput", "convergence"], action="append")
    args = parser.parse_args(argv)
    if args.warmup_steps < 1 or args.timed_steps < 1:
        parser.error("--warmup-steps and --timed-steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print a table and a JSON report, and return the report."""
    args = parse_args(argv)
    command = "python -m benchmarks.train_bench " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    skip = set(args.skip or [])
    root = args.dir / "dataset"
    info = write_embedding_dataset(root, args)
    report: dict[str, Any] = {
        "command": command.strip(),
        "data": {
            "train_clips": args.train_clips,
            "eval_clips": args.eval_clips,
            "classes": args.classes,
            "clip": f"{FRAMES} x {DIM} uint8",
            "labels_per_clip": info["labels_per_clip"],
        },
        "model": f"multi_level_attention hidden={args.hidden}, batch {args.batch_size}",
    }
    print(
        f"dataset: {args.train_clips:,} + {args.eval_clips:,} clips, {args.classes} classes, "
        f"{info['labels_per_clip']} labels/clip (written in {info['generate_seconds']} s, "
        "reused when present)",
        flush=True,
    )
    if "throughput" not in skip:
        rounds: dict[str, list[float]] = {"ours": [], "memory": []}
        for _ in range(args.rounds):  # interleaved, so a busy spell hits both alike
            rounds["ours"].append(measure_ours(root, args.dir, args))
            keras.backend.clear_session()
            rounds["memory"].append(measure_in_memory(root, args))
            keras.backend.clear_session()
        pipeline = measure_pipeline(root, args)
        ours, memory = (float(np.median(v)) for v in rounds.values())
        report["throughput"] = {
            "audiomill_clips_per_s": round(ours, 1),
            "in_memory_fit_clips_per_s": round(memory, 1),
            "pipeline_only_clips_per_s": round(pipeline, 1),
            "audiomill_vs_in_memory": round(
                float(np.median(np.divide(rounds["ours"], rounds["memory"]))), 3
            ),
            "per_round_clips_per_s": {k: [round(v) for v in r] for k, r in rounds.items()},
            "timed_steps": args.timed_steps,
            "rounds": args.rounds,
        }
        print(f"{'throughput (median step)':28s} {'clips/s':>10s} {'vs in-memory':>13s}")
        for name, value in (
            ("audiomill train()", ours),
            ("in-memory model.fit", memory),
            ("pipeline alone (no model)", pipeline),
        ):
            print(f"{name:28s} {value:10,.0f} {value / memory:12.2f}x")
    if "convergence" not in skip:
        keras.backend.clear_session()
        conv = report["convergence"] = measure_convergence(root, args.dir, args)
        state = "converged" if conv["converged"] else "NOT converged (hit --max-epochs)"
        print(
            f"convergence: {state} in {conv['seconds']:.1f} s, {conv['steps']} steps, "
            f"{conv['epochs']} epochs, mAP {conv['mAP']} (best {conv['best_mAP']}; "
            f"{conv['criterion']}, eval every {conv['eval_every']} steps)"
        )
    print(f"command: {report['command']}")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
