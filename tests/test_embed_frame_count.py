"""Embedding slots per clip follow the VGGish front end's own count of 0.975 s examples: every
slot below ``num_frames`` holds an example computed from the clip, every slot after it is zero."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import features.embed as embed_module
from features.embed import EmbedSettings, embed_dataset
from features.vggish_frontend import one_example_samples, waveform_to_examples
from features.vggish_seeded import write_seeded_vggish
from pipelines.audio import prepare_clip
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.embeddings import read_embedding_hdf5
from tests.dataset_builders import one_shard_dataset
from tests.shared_data import FSDD_RECORDINGS, SHARED

LIBRI = SHARED / "librosa_data" / "audio" / "libri1.hq.ogg"
TRUMPET = SHARED / "librosa_data" / "audio" / "trumpet.hq.ogg"
DIGIT = FSDD_RECORDINGS / "0_george_0.wav"  # 0.298 s: less than one example


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> EmbedSettings:
    files = write_seeded_vggish(tmp_path_factory.mktemp("vggish"))
    return EmbedSettings(files["checkpoint"], files["pca_params"])


@pytest.fixture(scope="module")
def model(seeded: EmbedSettings):
    """The stand-in VGGish, built once: TensorFlow in this process is already initialised, so
    embed's per-worker thread settings cannot apply here."""
    from features.vggish_model import VGGishEmbedder

    return VGGishEmbedder(seeded.checkpoint, seeded.pca_params)


def waveform_dataset(root: Path, files: list[Path], sample_rate: int, clip_seconds: float) -> Path:
    """One train shard of ``files`` cut or zero-padded to ``clip_seconds``, as ingest does."""
    clips = [
        prepare_clip(f, target_sr=sample_rate, clip_seconds=clip_seconds, min_coverage=0.0)
        for f in files
    ]
    ids = [f"clip{i}_0" for i in range(len(files))]
    return one_shard_dataset(
        root, [(c.waveform, c.num_samples) for c in clips], sample_rate, clip_seconds, ids
    )


def expected_embeddings(waveform: np.ndarray, sample_rate: int, embedder) -> np.ndarray:
    """Quantized embeddings of a clip's own samples: its whole examples, or its one example
    zero-padded when it holds less audio than one."""
    examples = waveform_to_examples(waveform, sample_rate, mode="fast")
    if not len(examples):
        padded = np.zeros(one_example_samples(sample_rate), waveform.dtype)
        padded[: len(waveform)] = waveform
        examples = waveform_to_examples(padded, sample_rate, mode="fast")
    return embedder.embed(examples)[1]


@pytest.mark.parametrize(
    ("clip_seconds", "sample_rate", "files", "frames", "num_frames", "short"),
    [
        (0.96, 16000, [LIBRI, TRUMPET, DIGIT], 1, [1, 1, 1], 3),
        (1.92, 16000, [LIBRI, DIGIT], 1, [1, 1], 1),
        (4.8, 22050, [LIBRI, TRUMPET, DIGIT], 4, [4, 4, 1], 1),
        (10.0, 32000, [LIBRI, TRUMPET, DIGIT], 10, [10, 5, 1], 1),
    ],
)
def test_every_kept_frame_is_an_example_of_the_clip(
    tmp_path: Path,
    seeded: EmbedSettings,
    model,
    monkeypatch: pytest.MonkeyPatch,
    clip_seconds: float,
    sample_rate: int,
    files: list[Path],
    frames: int,
    num_frames: list[int],
    short: int,
):
    monkeypatch.setattr(embed_module, "load_embedder", lambda settings: model)
    ds = waveform_dataset(tmp_path / "ds", files, sample_rate, clip_seconds)
    summary = embed_dataset(str(ds), seeded, scheduler="synchronous")
    assert (summary.clips, summary.short_clips) == (len(files), short)
    manifest = load_manifest(DatasetStore(str(ds)))
    (shard,) = manifest.embeddings["vggish"]["train"].shards
    rows, _ = read_embedding_hdf5(ds / shard.files["hdf5"].path)
    assert rows.x.shape == (len(files), frames, 128)
    assert rows.num_frames.tolist() == num_frames
    with h5py.File(ds / manifest.splits["train"].shards[0].files["hdf5"].path) as hf:
        waves, lengths = hf["waveform"][:], hf["num_samples"][:]
    for x, n, wave, length in zip(rows.x, rows.num_frames, waves, lengths, strict=True):
        want = expected_embeddings(wave[:length], sample_rate, model)
        assert x[:n].any(axis=1).all()
        np.testing.assert_array_equal(x[:n], want[:n])
        assert not x[n:].any()
