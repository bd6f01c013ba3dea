"""Inference: top-k, windows of audio files, dataset clips, keyword search, SavedModel export."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from tensorflow.python.eager.polymorphic_function import polymorphic_function

from features.embed import EmbedSettings
from features.embed_files import embed_file
from modeling import evaluation
from modeling.export import export_run
from modeling.inference import (
    clip_windows,
    load_waveform,
    match_classes,
    predict_clips,
    predict_files,
    search,
    top_k,
    window_scorer,
)
from modeling.models_embedding import multi_level_attention
from modeling.models_logmel import small_cnn
from modeling.readers import ShardReader
from modeling.runs import load_trained_model
from schemas.classmap import ClassInfo, ClassMap
from tests.inference_fixtures import Served, served_runs, vggish_files


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def _tone(path: Path, seconds: float, rate: int, hz: float, channels: int = 1) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * hz * t)
    sf.write(path, np.repeat(wave[:, None], channels, axis=1), rate)
    return path


def test_top_k_orders_scores_and_names_classes() -> None:
    classes = ClassMap([ClassInfo(0, "/m/a", "Car"), ClassInfo(1, "/m/b", "Dog"),
                        ClassInfo(2, "/m/c", "Car alarm")])  # fmt: skip
    scores = np.array([0.2, 0.9, 0.2], dtype=np.float32)
    assert top_k(scores, classes, 2) == [("Dog", "/m/b", pytest.approx(0.9)), ("Car", "/m/a",
                                         pytest.approx(0.2))]  # fmt: skip
    assert [name for name, _, _ in top_k(scores, classes, 10)] == ["Dog", "Car", "Car alarm"]
    with pytest.raises(ValueError, match="shape"):
        top_k(scores[:2], classes, 1)
    assert [c.display_name for c in match_classes(classes, "CAR")] == ["Car", "Car alarm"]
    with pytest.raises(ValueError, match=r"no class name matches 'dgo'; did you mean: 'Dog'"):
        match_classes(classes, "dgo")


def test_clip_windows_cover_the_input_every_half_window() -> None:
    x = np.arange(10)
    np.testing.assert_array_equal(clip_windows(x[:3], 4), [[0, 1, 2, 0]])
    np.testing.assert_array_equal(clip_windows(x[:4], 4), [[0, 1, 2, 3]])
    starts = clip_windows(x, 4)[:, 0]
    assert starts.tolist() == [0, 2, 4, 6], "hop 2, and the last window ends at the end"
    assert clip_windows(x[:9], 4)[:, 0].tolist() == [0, 2, 4, 5]
    frames = clip_windows(np.ones((3, 128), np.uint8), 10)
    assert frames.shape == (1, 10, 128) and frames[0, 3:].max() == 0


def test_search_ranks_clips_of_the_matching_class_first_and_caches(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(served.emb, run)
    result = search(run, served.root, "eval", "Sound 1", top=8)
    assert not result.cached and result.num_clips == 24
    assert [c.display_name for c in result.matched] == ["sound 1"]
    assert len(result.hits) == 8 and [h.rank for h in result.hits] == list(range(1, 9))
    assert all(h.labels == ["sound 1"] for h in result.hits), result.hits
    assert all(h.display_name == "sound 1" for h in result.hits)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert result.cache.parent == run / "scores" and result.cache.name.startswith("eval-")

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached search must not load the model")

    monkeypatch.setattr(evaluation, "load_trained_model", no_model)
    again = search(run, served.root, "eval", "sound", top=3)
    assert again.cached and len(again.matched) == 3 and len(again.hits) == 3
    with pytest.raises(ValueError, match=r"did you mean: 'sound \d'"):
        search(run, served.root, "eval", "sond")
    with pytest.raises(ValueError, match="no committed shards"):
        search(run, served.root, "nope", "sound")


def test_predict_waveform_files_equals_clip_scores_and_max_pools_windows(
    served: Served, tmp_path: Path
) -> None:
    with ShardReader(served.root, "eval", "waveforms") as reader:
        wave = reader.read(np.array([4]))[0][0]
    clip_file = tmp_path / "clip4.wav"
    sf.write(clip_file, wave, 8000, subtype="PCM_16")
    (by_file,) = predict_files(served.wave, [clip_file])
    (by_id,) = predict_clips(served.wave, served.root, ["eval-clip0004_4000"])
    assert by_file.windows == 1 and by_id.labels == [1] and by_id.split == "eval"
    np.testing.assert_allclose(by_file.scores, by_id.scores, atol=1e-5)

    long_file = _tone(tmp_path / "long.flac", 0.3, 16000, 900.0, channels=2)
    short_file = _tone(tmp_path / "short.ogg", 0.05, 22050, 300.0)
    long, short = predict_files(served.wave, [long_file, short_file])
    assert (long.windows, short.windows) == (5, 1)
    x = load_waveform(long_file, 8000)
    assert len(x) == 2400
    windows = np.stack([x[s : s + 800] for s in (0, 400, 800, 1200, 1600)])
    model = load_trained_model(served.wave)
    np.testing.assert_allclose(
        long.scores, model.predict(windows, verbose=0).max(axis=0), atol=1e-5
    )
    with pytest.raises(ValueError, match="not an audio file, nor a clip id"):
        predict_clips(served.wave, served.root, ["eval-clip0004_4000", "nope"], "eval")


def test_predict_embedding_files_with_vggish(
    served: Served,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    worker_id: str,
) -> None:
    checkpoint, pca = vggish_files(tmp_path_factory, worker_id)
    short = _tone(tmp_path / "a.wav", 3.0, 16000, 440.0)
    long = _tone(tmp_path / "b.flac", 12.5, 22050, 880.0)
    got = predict_files(served.emb, [short, long], checkpoint=checkpoint, pca_params=pca)
    assert [p.windows for p in got] == [1, 2]
    settings = EmbedSettings(checkpoint, pca)
    rate = 8000  # the run's dataset's: files are embedded as its clips
    frames = embed_file(str(short), settings, rate).quantized
    assert frames.shape == (3, 128)
    padded = np.zeros((1, 10, 128), np.float32)
    padded[0, :3] = frames
    model = load_trained_model(served.emb)
    np.testing.assert_allclose(got[0].scores, model.predict(padded, verbose=0)[0], atol=1e-5)
    frames = embed_file(str(long), settings, rate).quantized.astype(np.float32)
    assert len(frames) == 13
    want = model.predict(np.stack([frames[:10], frames[3:]]), verbose=0).max(axis=0)
    np.testing.assert_allclose(got[1].scores, want, atol=1e-5)
    with pytest.raises(ValueError, match="--checkpoint"):
        predict_files(served.emb, [short])
    half = _tone(tmp_path / "half.wav", 0.5, 16000, 440.0)
    (got,) = predict_files(served.emb, [half], checkpoint=checkpoint, pca_params=pca)
    frames = embed_file(str(half), settings, rate).quantized
    assert got.windows == 1 and frames.shape == (1, 128)  # zero-padded to one example
    padded[0] = 0
    padded[0, 0] = frames[0]
    np.testing.assert_allclose(got.scores, model.predict(padded, verbose=0)[0], atol=1e-5)


@pytest.fixture
def tf_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Messages TensorFlow's logger emits, with its retracing counts started afresh (so what
    earlier tests traced neither triggers nor uses up its warnings)."""
    fresh = polymorphic_function._FrequentTracingDetectorManager()
    monkeypatch.setattr(polymorphic_function, "_frequent_tracing_detector_manager", fresh)
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    tf.get_logger().addHandler(handler)
    yield messages
    tf.get_logger().removeHandler(handler)


def test_predicting_files_of_many_lengths_neither_retraces_nor_warns(
    served: Served, tmp_path: Path, tf_warnings: list[str]
) -> None:
    seconds = (0.05, 0.3, 0.2, 0.75, 0.1, 0.45)
    files = [_tone(tmp_path / f"t{i}.wav", s, 8000, 500.0) for i, s in enumerate(seconds)]
    for _ in range(3):  # as the quickstart's summary does: runs loaded afresh, three files each
        got = predict_files(served.wave, files[:3])
        assert [p.windows for p in got] == [1, 5, 3]
    assert not [m for m in tf_warnings if "retracing" in m], tf_warnings
    got = predict_files(served.wave, files, batch_size=4)  # batches span files
    assert [p.windows for p in got] == [1, 5, 3, 14, 1, 8]
    model = load_trained_model(served.wave)
    for path, prediction in zip(files, got, strict=True):
        windows = clip_windows(load_waveform(path, 8000), 800)
        want = model.predict(windows, verbose=0).max(axis=0)
        np.testing.assert_allclose(prediction.scores, want, atol=1e-6)


@pytest.mark.parametrize("kind", ["attention", "variable-length cnn"])
def test_window_scorer_traces_once_for_any_batch_size_and_length(
    kind: str, tf_warnings: list[str]
) -> None:
    rng = np.random.default_rng(0)
    if kind == "attention":
        model = multi_level_attention(3, hidden=16, input_dtype="float32")
        batches = [rng.integers(0, 256, (n, 10, 128)).astype(np.float32) for n in (1, 4, 2, 7)]
    else:
        model = small_cnn(
            3, filters=(4, 4, 8, 8), sample_rate=8000, n_fft=256, hop_length=80, fmax=4000.0
        )
        sizes = ((1, 800), (3, 800), (1, 1234), (2, 4000), (5, 2345), (1, 801))
        batches = [rng.uniform(-1, 1, size).astype(np.float32) for size in sizes]
    score = window_scorer(model)
    got = [score(x) for x in batches * 2]
    assert not [m for m in tf_warnings if "retracing" in m], tf_warnings
    for x, scores in zip(batches * 2, got, strict=True):
        np.testing.assert_allclose(scores, model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("kind", ["wave", "emb"])
def test_export_reloads_with_the_same_scores(served: Served, tmp_path: Path, kind: str) -> None:
    run = getattr(served, kind)
    description = export_run(run, tmp_path / "export")
    saved = json.loads((tmp_path / "export" / "export.json").read_text())
    assert saved == json.loads(json.dumps(description))
    assert (tmp_path / "export" / "classes.csv").read_text() == (run / "classes.csv").read_text()
    rng = np.random.default_rng(0)
    if kind == "wave":
        assert saved["input"]["name"] == "waveform" and saved["input"]["shape"] == [None, 800]
        assert saved["sample_rate"] == 8000
        x = rng.uniform(-1, 1, (5, 800)).astype(np.float32)
    else:
        assert saved["input"]["shape"] == [None, 10, 128] and saved["input"]["range"] == [0, 255]
        x = rng.integers(0, 256, (5, 10, 128)).astype(np.float32)
    assert saved["num_classes"] == 3
    assert saved["run_config"]["model"] in ("small_cnn", "multi_level_attention")
    want = load_trained_model(run).predict(x, verbose=0)
    loaded = tf.saved_model.load(str(tmp_path / "export" / "saved_model"))
    np.testing.assert_allclose(loaded.serve(tf.constant(x))["scores"].numpy(), want, atol=1e-5)
    signature = loaded.signatures["serving_default"]
    by_name = signature(**{saved["input"]["name"]: tf.constant(x)})["scores"].numpy()
    np.testing.assert_allclose(by_name, want, atol=1e-5)
