"""``predict`` embeds audio files with the VGGish front end (mode, resampler) the run's
embeddings were made with, as the ``embed`` run that made them recorded it in the dataset's
manifest: a file then scores as its clip embedded in the dataset does. Another ``--mode`` is
refused; with no record the default is used, with a warning saying so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import features.embed_files
import modeling.inference as inference
from features.embed import EmbedSettings, embed_waveforms, load_embedder
from features.vggish_checkpoint import checkpoint_sha256
from features.vggish_frontend import frontend_provenance
from features.vggish_postprocess import pca_sha256
from modeling.inference import predict_files
from modeling.runs import load_trained_model
from pipelines.audio import prepare_clip
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.storage import DatasetStore
from tests.inference_fixtures import Served, served_runs, vggish_files
from workflows.cli import app

SECONDS = 1.5


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[str, str]:
    return vggish_files(tmp_path_factory, worker_id)


def _run(
    served: Served,
    tmp_path: Path,
    weights: tuple[str, str],
    frontend: dict | None,
    embedded_with: dict[str, str] | None = None,
) -> Path:
    """A copy of the served embedding run on a copy of its dataset, both recording
    ``weights``; the dataset records an embed run with ``frontend`` (none when None) and
    ``embedded_with`` digests (``weights``' by default)."""
    digests = {
        "checkpoint_sha256": checkpoint_sha256(weights[0]),
        "pca_sha256": pca_sha256(weights[1]),
    }
    dataset, run = tmp_path / "ds", tmp_path / "run"
    shutil.copytree(served.root, dataset)
    if frontend is not None:
        store = DatasetStore(str(dataset))
        manifest = load_manifest(store)
        provenance = {"model": "vggish", **(embedded_with or digests), "frontend": frontend}
        manifest.stages["embed:vggish"] = {
            "run_id": "r",
            "provenance": provenance,
            "completed": 1.0,
        }
        save_manifest(store, manifest)
    shutil.copytree(served.emb, run)
    config = json.loads((run / "run.json").read_text())
    config.update(dataset=str(dataset), embedding_provenance={"model": "vggish", **digests})
    (run / "run.json").write_text(json.dumps(config))
    return run


def _files(weights: tuple[str, str]) -> dict[str, str]:
    return {"checkpoint": weights[0], "pca_params": weights[1]}


def _tone(path: Path) -> Path:
    t = np.arange(int(SECONDS * 22050)) / 22050
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.sin(2 * np.pi * 3100 * t), 22050)
    return path


@pytest.fixture
def embedded_with(monkeypatch: pytest.MonkeyPatch) -> list[EmbedSettings]:
    """The settings each file is embedded with."""
    settings: list[EmbedSettings] = []
    embed_file = features.embed_files.embed_file

    def recording(path: str, given: EmbedSettings, sample_rate: int | None = None):
        settings.append(given)
        return embed_file(path, given, sample_rate)

    monkeypatch.setattr(features.embed_files, "embed_file", recording)
    return settings


def test_a_file_is_embedded_with_the_front_end_of_the_runs_dataset(
    served: Served,
    tmp_path: Path,
    weights: tuple[str, str],
    embedded_with: list[EmbedSettings],
) -> None:
    run = _run(served, tmp_path, weights, frontend_provenance("exact"))
    audio = _tone(tmp_path / "a.wav")
    warnings: list[str] = []
    (got,) = predict_files(run, [audio], **_files(weights), warn=warnings.append)
    assert not warnings
    (used,) = embedded_with
    assert (used.mode, used.resampler) == ("exact", "resampy")

    # The score of the file's clip, ingested at the dataset's rate and embedded as embed does.
    exact = EmbedSettings(*weights, mode="exact")
    clip = prepare_clip(audio, target_sr=8000, clip_seconds=SECONDS)
    wave, length = clip.waveform[np.newaxis], np.array([clip.num_samples])
    x, _, _ = embed_waveforms(wave, length, 8000, 10, load_embedder(exact), exact)
    want = load_trained_model(run).predict(x.astype(np.float32), verbose=0)[0]
    np.testing.assert_allclose(got.scores, want, rtol=0, atol=1e-6)


def test_another_mode_than_the_runs_is_refused(
    served: Served, tmp_path: Path, weights: tuple[str, str]
) -> None:
    run = _run(served, tmp_path, weights, frontend_provenance("exact"))
    audio = str(_tone(tmp_path / "a.wav"))
    args = ["predict", str(run), audio, "--checkpoint", weights[0], "--pca-params", weights[1]]
    refused = CliRunner().invoke(app, [*args, "--mode", "fast"])
    assert refused.exit_code == 2, refused.output
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.output, refused.output
    assert (
        f"the embeddings of run {run} were made with --mode exact --resampler resampy"
        in (errors[0])
    )
    assert "but --mode fast was given" in errors[0] and "leave --mode out" in errors[0]
    assert "rank" not in refused.stdout


@pytest.mark.parametrize("mode", [None, "exact"])
def test_without_a_record_the_mode_is_assumed_with_a_warning(
    served: Served,
    tmp_path: Path,
    weights: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str | None,
) -> None:
    used: list[EmbedSettings] = []

    def windows(loaded, path, settings, rate):
        used.append(settings)
        return np.zeros((1, 10, 128), np.uint8)

    monkeypatch.setattr(inference, "_embedding_windows", windows)
    run = _run(served, tmp_path, weights, None)
    audio = [_tone(tmp_path / "a.wav")]
    warnings: list[str] = []
    predict_files(run, audio, **_files(weights), mode=mode, warn=warnings.append)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"cannot tell which VGGish front end the embeddings of run {run} were made with (its "
        f"dataset {tmp_path / 'ds'} records no embed run (imported embeddings?)): audio files "
        f"are embedded with --mode {mode or 'fast'} --resampler "
    )
    assert ("(as given)" if mode else "(the default)") in warnings[0]
    assert used[-1].mode == (mode or "fast")

    config = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**config, "dataset": str(tmp_path / "gone")}))
    warnings.clear()
    predict_files(run, audio, **_files(weights), mode=mode, warn=warnings.append)
    assert len(warnings) == 2 and f"its dataset {tmp_path / 'gone'} cannot be read" in warnings[0]
    assert "cannot read the sample rate" in warnings[1]


def test_a_record_of_other_weights_is_not_the_runs(
    served: Served,
    tmp_path: Path,
    weights: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dataset re-embedded since the run trained (other weights) records the front end of
    its new embeddings, not of the run's: the default is used, with a warning."""
    used: list[EmbedSettings] = []
    monkeypatch.setattr(
        inference,
        "_embedding_windows",
        lambda loaded, path, settings, rate: used.append(settings) or np.zeros((1, 10, 128)),
    )
    other = {"checkpoint_sha256": "b" * 64, "pca_sha256": "c" * 64}
    run = _run(served, tmp_path, weights, frontend_provenance("exact"), other)
    warnings: list[str] = []
    predict_files(run, [_tone(tmp_path / "a.wav")], **_files(weights), warn=warnings.append)
    dataset = tmp_path / "ds"
    assert len(warnings) == 1, warnings
    assert (
        f"the embeddings of its dataset {dataset} are now made with checkpoint sha256 bbbb"
        in warnings[0]
    )
    assert used[0].mode == "fast"
