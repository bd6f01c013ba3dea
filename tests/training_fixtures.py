"""Small, learnable datasets for training tests: class-specific embeddings and tones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from modeling.runs import RunConfig
from tests.dataset_builders import SR, Built, Clip, T, make_dataset

PATTERN_RNG = np.random.default_rng(1234)
PATTERNS = PATTERN_RNG.choice([-1.0, 1.0], size=(8, 128))
TONES_HZ = (300.0, 900.0, 1800.0, 2700.0)


def _clip_rng(clip: Clip) -> np.random.Generator:
    """The clip's own generator, the same in every process (``hash`` of a string is not)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(clip.clip_id.encode()).digest()[:8]))


def separable_embedding(clip: Clip) -> np.ndarray:
    """Frames near 128 + 30 x the sign pattern of each of the clip's classes, plus noise."""
    rng = _clip_rng(clip)
    mean = 128 + 30 * PATTERNS[clip.labels].sum(axis=0) if clip.labels else np.full(128, 128.0)
    frames = mean[None, :] + rng.normal(0, 12, size=(10, 128))
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def separable_waveform(clip: Clip) -> np.ndarray:
    """A tone per class of the clip, at a random phase, plus a little noise (int16, T samples)."""
    rng = _clip_rng(clip)
    t = np.arange(T) / SR
    wave = rng.normal(0, 0.02, T)
    for c in clip.labels:
        wave += 0.3 * np.sin(2 * np.pi * TONES_HZ[c] * t + rng.uniform(0, 2 * np.pi))
    return np.clip(wave * 32767, -32768, 32767).astype(np.int16)


def single_label_dataset(
    root: Path, classes: int = 3, train: int = 48, eval_clips: int = 24, **kwargs
) -> Built:
    """Clips with exactly one label each, cycling through the classes; embeddings and waves."""
    splits = {
        "train": [[i % classes] for i in range(train)],
        "eval": [[i % classes] for i in range(eval_clips)],
    }
    return make_dataset(
        root,
        splits,
        num_classes=classes,
        shard_clips=16,
        embedding_formats=("hdf5",),
        waveform_of=separable_waveform,
        embedding_of=separable_embedding,
        **kwargs,
    )


def embedding_config(root: Path, **overrides) -> RunConfig:
    """A small multi-level attention run on ``root``'s embeddings."""
    settings = dict(
        dataset=str(root),
        input="embeddings",
        model="multi_level_attention",
        task="multilabel",
        num_classes=3,
        splits=["train"],
        eval_split="eval",
        sampler="balanced",
        batch_size=12,
        steps=6,
        eval_every=3,
        learning_rate=1e-3,
        model_kwargs={
            "hidden": 24,
            "num_frames": 10,
            "embedding_dim": 128,
            "input_dtype": "float32",
        },
    )
    settings.update(overrides)
    return RunConfig(**settings)
