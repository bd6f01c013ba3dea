"""Clips and files with less audio than one VGGish example: one zero-padded example, counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import features.embed as embed_module
import features.embed_files as embed_files_module
from features.embed import EmbedSettings, embed_dataset, embed_waveforms
from features.embed_files import embed_file
from features.vggish_frontend import one_example_samples, waveform_to_examples
from pipelines.dataset_state import load_manifest
from pipelines.storage import DatasetStore
from schemas.embeddings import read_embedding_hdf5
from tests.dataset_builders import one_shard_dataset

SR = 16000


class FakeEmbedder:
    """Quantized embedding of every example: 1 + the example's index in its call."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def embed(self, examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(examples)
        n = len(examples)
        quantized = np.repeat((1 + np.arange(n) % 250).astype(np.uint8)[:, None], 128, axis=1)
        return quantized.astype(np.float32), quantized


def _tones(lengths: list[int], total: int) -> np.ndarray:
    waves = np.zeros((len(lengths), total), np.int16)
    for i, n in enumerate(lengths):
        waves[i, :n] = (8000 * np.sin(np.arange(n) * 0.05)).astype(np.int16)
    return waves


def test_a_clip_under_one_example_keeps_its_zero_padded_first_example():
    lengths = [SR // 2, SR, 0, SR * 2]
    x, num_frames, padded = embed_waveforms(
        _tones(lengths, int(2.5 * SR)),
        np.array(lengths),
        SR,
        2,
        FakeEmbedder(),
        EmbedSettings("c", "p"),
    )
    assert num_frames.tolist() == [1, 1, 0, 2]
    assert padded.tolist() == [True, False, False, False]
    assert x[0, 0].any() and not x[0, 1].any()
    assert not x[2].any() and x[3].all()


def test_stored_clips_without_one_example_stay_empty():
    x, num_frames, padded = embed_waveforms(
        _tones([4000], 8000), np.array([4000]), SR, 0, FakeEmbedder(), EmbedSettings("c", "p")
    )
    assert x.shape == (1, 0, 128) and num_frames.tolist() == [0] and not padded.any()


def _short_clip_dataset(root: Path) -> Path:
    """One split of 1 s clips at 16 kHz: 0.5 s, 1 s and 0.3 s of audio, zero-padded."""
    lengths = [SR // 2, SR, int(0.3 * SR)]
    ids = [f"c{i}_0" for i in range(len(lengths))]
    clips = list(zip(_tones(lengths, SR), lengths, strict=True))
    return one_shard_dataset(root, clips, SR, 1.0, ids)


def fake_vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    """Settings whose files exist, with the model, digests and device faked in this process."""
    checkpoint, pca = tmp_path / "model.ckpt", tmp_path / "pca.npz"
    checkpoint.write_bytes(b"weights")
    np.savez(pca, pca_eigen_vectors=np.eye(128), pca_means=np.zeros(128))
    embedder = FakeEmbedder()
    monkeypatch.setattr(embed_module, "load_embedder", lambda settings: embedder)
    monkeypatch.setattr(embed_files_module, "load_embedder", lambda settings: embedder)
    monkeypatch.setattr(embed_module, "check_checkpoint", lambda path: str(path))
    monkeypatch.setattr(embed_module, "default_device", lambda: "CPU")
    monkeypatch.setattr(
        embed_module,
        "_provenance",
        lambda settings: {"model": "vggish", "checkpoint_sha256": "c" * 64,
                          "pca_sha256": "p" * 64, "frontend": {}},
    )  # fmt: skip
    return EmbedSettings(str(checkpoint), str(pca))


@pytest.fixture
def vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    return fake_vggish(tmp_path, monkeypatch)


def test_embed_counts_clips_under_one_example(tmp_path: Path, vggish: EmbedSettings):
    ds = _short_clip_dataset(tmp_path / "ds")
    summary = embed_dataset(str(ds), vggish, scheduler="synchronous")
    assert (summary.clips, summary.short_clips) == (3, 2)
    (shard,) = load_manifest(DatasetStore(str(ds))).embeddings["vggish"]["train"].shards
    rows, _ = read_embedding_hdf5(ds / shard.files["hdf5"].path)
    assert rows.num_frames.tolist() == [1, 1, 1] and rows.x[:, 0].all()


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_one_example_samples_make_exactly_one_example(rate: int, mode: str):
    if mode == "exact":
        pytest.importorskip("resampy")
    n = one_example_samples(rate)
    assert len(waveform_to_examples(np.zeros(n, np.float32), rate, mode=mode)) == 1


def test_embed_file_pads_a_file_shorter_than_one_example(tmp_path: Path, vggish: EmbedSettings):
    short = tmp_path / "short.wav"
    audio = (0.3 * np.sin(np.arange(11025) * 0.1)).astype(np.float32)
    sf.write(short, audio, 22050, subtype="FLOAT")
    got = embed_file(str(short), vggish)
    assert got.padded and len(got.quantized) == 1
    padded = np.zeros(one_example_samples(22050), np.float32)
    padded[: len(audio)] = audio
    want = waveform_to_examples(padded, 22050, mode="fast")
    np.testing.assert_array_equal(embed_files_module.load_embedder(vggish).calls[-1], want)
    two = tmp_path / "two.wav"
    sf.write(two, np.zeros(2 * 22050, np.float32), 22050, subtype="FLOAT")
    assert not embed_file(str(two), vggish).padded


def test_embed_files_says_which_files_were_padded(
    tmp_path: Path, vggish: EmbedSettings, monkeypatch
):
    import features.vggish_checkpoint
    from workflows.cli import app

    monkeypatch.setattr(features.vggish_checkpoint, "checkpoint_sha256", lambda path: "c" * 64)
    short, full = tmp_path / "short.wav", tmp_path / "full.wav"
    sf.write(short, np.full(8000, 0.1, np.float32), SR, subtype="FLOAT")
    sf.write(full, np.full(2 * SR, 0.1, np.float32), SR, subtype="FLOAT")
    out = tmp_path / "ef.npz"
    result = CliRunner().invoke(app, ["embed-files", str(short), str(full), "--checkpoint",
                                      vggish.checkpoint, "--pca-params",
                                      vggish.pca_params, "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{short}: 1 embedding (shorter than one 0.975 s example: zero-padded to one)" in (
        result.stdout
    )
    assert f"{full}: 2 embeddings\n" in result.stdout
