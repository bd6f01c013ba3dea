"""Audio files given to predict and embed-files are prepared as ingest prepares a clip.

Training, ``evaluate`` and ``predict --dataset`` read the int16 waveforms ingest stored; a file
scored from its float samples instead scores differently wherever the log-mel front end sees
nearly empty bands, whose power the int16 rounding changes by orders of magnitude.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import features.embed_files as embed_files_module
from features.embed import EmbedSettings, embed_waveforms
from features.embed_files import INGEST_SAMPLE_RATE, embed_file
from features.vggish_frontend import waveform_to_examples
from modeling.inference import clip_windows, load_waveform, predict_files
from modeling.readers import to_float
from modeling.runs import load_trained_model
from pipelines.audio import decode, prepare_clip, to_mono
from pipelines.ingest import IngestConfig
from tests.inference_fixtures import Served, served_runs


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


class RecordingEmbedder:
    """Records the examples it is given; every embedding is zero."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def embed(self, examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(np.array(examples))
        return np.zeros((len(examples), 128), np.float32), np.zeros((len(examples), 128), np.uint8)


def _faint_highs(path: Path, seconds: float, rate: int) -> Path:
    """A tone plus noise below one int16 step in the top half of the band, as float samples."""
    rng = np.random.default_rng(0)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    hiss = np.diff(rng.standard_normal(n + 1)) * 2e-5  # high-passed: most power near rate / 2
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t) + hiss, rate, subtype="FLOAT")
    return path


def test_a_predicted_file_is_the_waveform_ingest_stores_as_training_reads_it(
    served: Served, tmp_path: Path
) -> None:
    path = _faint_highs(tmp_path / "clip.wav", 0.1, 16000)
    stored = prepare_clip(path, target_sr=8000, clip_seconds=0.1).waveform
    as_trained = to_float(stored)
    np.testing.assert_array_equal(load_waveform(path, 8000), as_trained)
    (got,) = predict_files(served.wave, [path])
    want = load_trained_model(served.wave).predict(as_trained[np.newaxis], verbose=0)[0]
    np.testing.assert_allclose(got.scores, want, rtol=0, atol=1e-6)


def test_long_files_keep_their_windows_of_the_prepared_waveform(
    served: Served, tmp_path: Path
) -> None:
    path = _faint_highs(tmp_path / "long.wav", 0.3, 16000)
    x = load_waveform(path, 8000)
    assert x.dtype == np.float32 and len(x) == 2400
    assert np.array_equal(x * 32768, np.rint(x * 32768)), "int16 steps, as stored"
    (got,) = predict_files(served.wave, [path])
    assert got.windows == 5
    want = load_trained_model(served.wave).predict(clip_windows(x, 800), verbose=0).max(axis=0)
    np.testing.assert_allclose(got.scores, want, rtol=0, atol=1e-6)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> RecordingEmbedder:
    embedder = RecordingEmbedder()
    monkeypatch.setattr(embed_files_module, "load_embedder", lambda settings: embedder)
    return embedder


@pytest.mark.parametrize("rate", [16000, 32000])
def test_an_embedded_file_gives_the_examples_embed_makes_of_its_ingested_clip(
    tmp_path: Path, recording: RecordingEmbedder, rate: int
) -> None:
    path = _faint_highs(tmp_path / "clip.wav", 2.0, 22050)
    settings = EmbedSettings("ckpt", "pca")
    embed_file(str(path), settings, sample_rate=rate)
    clip = prepare_clip(path, target_sr=rate, clip_seconds=2.0)
    embed_waveforms(
        clip.waveform[np.newaxis], np.array([clip.num_samples]), rate, 2, recording, settings
    )
    by_file, by_dataset = recording.calls
    assert by_file.shape == (2, 96, 64)
    np.testing.assert_array_equal(by_file, by_dataset)


def test_embed_files_embeds_a_file_as_decoded_and_predict_as_ingested(
    tmp_path: Path, recording: RecordingEmbedder
) -> None:
    """``embed-files`` gives the front end the file's own samples, as Google's reference does;
    with a sample rate the file is embedded as ingest would store it."""
    assert IngestConfig.sample_rate == INGEST_SAMPLE_RATE
    path = _faint_highs(tmp_path / "clip.wav", 1.0, 22050)
    settings = EmbedSettings("ckpt", "pca")
    embed_file(str(path), settings)
    embed_file(str(path), settings, sample_rate=INGEST_SAMPLE_RATE)
    as_decoded, as_ingested = recording.calls
    audio = decode(str(path))
    np.testing.assert_array_equal(
        as_decoded,
        waveform_to_examples(
            to_mono(audio.samples),
            audio.sample_rate,
            mode=settings.mode,
            resampler=settings.resampler,
        ),
    )
    assert not np.array_equal(as_decoded, as_ingested)


def test_predict_embeds_files_at_the_rate_of_the_runs_dataset(
    served: Served, tmp_path: Path, recording: RecordingEmbedder, monkeypatch
) -> None:
    import modeling.inference as inference

    monkeypatch.setattr(inference, "_embed_settings", lambda *args: EmbedSettings("c", "p"))
    path = _faint_highs(tmp_path / "clip.wav", 1.0, 22050)
    predict_files(served.emb, [path])
    embed_file(str(path), EmbedSettings("c", "p"), sample_rate=8000)  # the dataset's rate
    np.testing.assert_array_equal(*recording.calls)

    run = tmp_path / "run"
    shutil.copytree(served.emb, run)
    config = json.loads((run / "run.json").read_text())
    config["dataset"] = str(tmp_path / "gone")
    (run / "run.json").write_text(json.dumps(config))
    warnings: list[str] = []
    predict_files(run, [path], warn=warnings.append)
    assert len(warnings) == 1 and f"{tmp_path / 'gone'}" in warnings[0]
    assert f"{INGEST_SAMPLE_RATE} Hz" in warnings[0]
    embed_file(str(path), EmbedSettings("c", "p"), sample_rate=INGEST_SAMPLE_RATE)
    np.testing.assert_array_equal(recording.calls[-2], recording.calls[-1])
