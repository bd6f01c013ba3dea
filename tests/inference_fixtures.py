"""Trained runs for the serving tests, built once per test session and shared by its workers.

Under pytest-xdist every worker would otherwise train its own copies; here the first worker to
ask trains them in a directory all workers see (the session's base temp directory), under a
file lock, and the others wait for it and reuse them. Tests must not change these runs: copy
one to ``tmp_path`` to test what writes into a run (the search cache).
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas.classmap import ClassMap

WAVE_KWARGS = {
    "clip_samples": 800,
    "sample_rate": 8000,
    "n_fft": 256,
    "hop_length": 64,
    "n_mels": 32,
    "fmax": 4000.0,
    "filters": [8, 8, 16, 16],
}


@dataclass(frozen=True)
class Served:
    """A 3-class single-label dataset (48 train, 24 eval clips of 0.1 s at 8 kHz) and two runs.

    Attributes
    ----------
    root : Path
        The dataset; eval clip ``i`` has class ``i % 3``.
    emb : Path
        Multi-level attention on its separable embeddings (accuracy 1 on eval).
    wave : Path
        A tiny ``small_cnn`` on its waveforms (barely trained: for plumbing, not accuracy).
    """

    root: Path
    emb: Path
    wave: Path


def shared_dir(factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A directory every xdist worker of this session sees (the session's own base temp)."""
    base = factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def once(path: Path, make: Callable[[Path], None]) -> Path:
    """Run ``make(path)`` unless another worker (or an earlier test) already did; return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = path.with_name(f"{path.name}.done")
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # what a failed attempt left
            make(path)
            done.touch()
    return path


def _train_runs(base: Path) -> None:
    from modeling.run_setup import plan_run
    from modeling.training import train
    from tests.training_fixtures import embedding_config, single_label_dataset

    root = base / "ds"
    single_label_dataset(root)
    classes = ClassMap.load(root / "classes.csv")
    config = embedding_config(root, task="singlelabel", steps=60, eval_every=30, sampler="shuffled")
    train(config, base / "emb", classes=classes)
    wave, _ = plan_run(
        str(root),
        input="waveforms",
        model="small_cnn",
        task="singlelabel",
        steps=4,
        eval_every=4,
        batch_size=12,
        model_args=WAVE_KWARGS,
    )
    train(wave, base / "wave", classes=classes)


def served_runs(factory: pytest.TempPathFactory, worker_id: str) -> Served:
    """The shared dataset and runs (see :class:`Served`), trained on first use."""
    base = once(shared_dir(factory, worker_id) / "served", _train_runs)
    return Served(base / "ds", base / "emb", base / "wave")


def vggish_files(factory: pytest.TempPathFactory, worker_id: str) -> tuple[str, str]:
    """A seeded TF-slim VGGish checkpoint and PCA file (tests.vggish_fixtures), shared."""
    from tests.vggish_fixtures import random_weights, write_pca, write_slim_checkpoint

    def make(path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        write_slim_checkpoint(path / "vggish_model.ckpt", random_weights(0))
        write_pca(path / "vggish_pca_params.npz")

    base = once(shared_dir(factory, worker_id) / "vggish", make)
    return str(base / "vggish_model.ckpt"), str(base / "vggish_pca_params.npz")
