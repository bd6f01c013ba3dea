"""A waveform run's export quantizes float audio as ingest does, so it scores as predict does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from modeling.export import export_run, quantize_waveform
from modeling.inference import clip_windows, predict_files
from modeling.readers import to_float
from modeling.runs import load_trained_model
from pipelines.audio import decode, float_to_int16, int16_to_float, resample, to_mono
from tests.inference_fixtures import WAVE_KWARGS, Served, served_runs
from tests.shared_data import FSDD_RECORDINGS

RATE = WAVE_KWARGS["sample_rate"]
CLIP = WAVE_KWARGS["clip_samples"]
DIGITS = ("0_george_0", "3_jackson_7", "7_theo_12")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Served, Path]:
    served = served_runs(tmp_path_factory, worker_id)
    out = tmp_path_factory.mktemp("export")
    export_run(served.wave, out)
    return served, out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """FSDD digits as quiet float stereo at 11025 Hz: off the int16 grid until prepared."""
    folder = tmp_path_factory.mktemp("quiet")
    paths = []
    for name in DIGITS:
        digit, rate = sf.read(FSDD_RECORDINGS / f"{name}.wav", dtype="float32")
        upsampled = resample(digit, rate, 11025)
        stereo = np.stack([0.004 * upsampled, 0.002 * upsampled], axis=1)
        paths.append(folder / f"{name}.wav")
        sf.write(paths[-1], stereo, 11025, subtype="FLOAT")
    return paths


def _serve(out: Path, x: np.ndarray) -> np.ndarray:
    loaded = tf.saved_model.load(str(out / "saved_model"))
    return loaded.serve(tf.constant(x, tf.float32))["scores"].numpy()


def _float_audio(path: Path) -> np.ndarray:
    audio = decode(path)
    return resample(to_mono(audio.samples), audio.sample_rate, RATE)


def _file_scores(out: Path, wave: np.ndarray) -> np.ndarray:
    return _serve(out, clip_windows(wave, CLIP)).max(axis=0)


def test_float_audio_scores_as_predict_scores_the_file(
    exported: tuple[Served, Path], files: list[Path]
) -> None:
    served, out = exported
    predicted = predict_files(served.wave, files)
    for path, prediction in zip(files, predicted, strict=True):
        got = _file_scores(out, _float_audio(path))
        np.testing.assert_allclose(got, prediction.scores, atol=1e-6, err_msg=path.name)


def test_already_quantized_audio_scores_the_same(
    exported: tuple[Served, Path], files: list[Path]
) -> None:
    _, out = exported
    for path in files:
        wave = _float_audio(path)
        on_int16_grid = int16_to_float(float_to_int16(wave))
        np.testing.assert_array_equal(float_to_int16(on_int16_grid), float_to_int16(wave))
        np.testing.assert_allclose(
            _file_scores(out, on_int16_grid), _file_scores(out, wave), atol=1e-6
        )


def test_quantization_clips_rounds_half_to_even_and_zeroes_nan(
    exported: tuple[Served, Path],
) -> None:
    served, out = exported
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (4, CLIP)).astype(np.float32)
    x[0, :4] = np.array([0.5, 1.5, 2.5, -0.5], np.float32) / np.float32(32767)  # ties
    x[1, :3] = [np.nan, np.inf, -np.inf]
    want = load_trained_model(served.wave).predict(to_float(float_to_int16(x)), verbose=0)
    np.testing.assert_allclose(_serve(out, x), want, atol=1e-6)


def test_quantize_waveform_is_float_to_int16_then_to_float_exactly() -> None:
    x = np.random.default_rng(1).uniform(-1.2, 1.2, 100_000).astype(np.float32)
    ties = (np.arange(-40, 40, dtype=np.float32) + np.float32(0.5)) / np.float32(32767)
    x = np.concatenate([x, ties, [np.nan, np.inf, -np.inf, -0.0, 1.0, -1.0]]).astype(np.float32)
    np.testing.assert_array_equal(quantize_waveform(tf.constant(x)), to_float(float_to_int16(x)))
    every_int16 = np.arange(-32767, 32768).astype(np.int16)
    np.testing.assert_array_equal(
        quantize_waveform(tf.constant(int16_to_float(every_int16))), to_float(every_int16)
    )


def test_export_json_says_how_to_prepare_the_input(exported: tuple[Served, Path]) -> None:
    _, out = exported
    spec: dict[str, Any] = json.loads((out / "export.json").read_text())["input"]
    assert spec["name"] == "waveform" and spec["range"] == [-1.0, 1.0]
    assert spec["sample_rate"] == RATE and spec["shape"] == [None, CLIP]
    assert spec["preparation"] == {
        "sample_rate": RATE,
        "channels": "mono: mean of the channels",
        "resampler": "soxr",
        "resample_quality": "HQ",
        "quantization": {
            "in_graph": True,
            "clip": [-1.0, 1.0],
            "nan": 0.0,
            "scale": 32767,
            "rounding": "half_to_even",
            "divisor": 32768,
            "int16_input_divisor": 32767,
        },
    }
