"""What ``audiomill embed`` refuses before doing any work."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

import features.embed as embed_module
import features.embed_files as embed_files_module
from features.embed import EmbedSettings, embed_dataset
from features.embed_files import embed_files
from features.vggish_checkpoint import CheckpointError, check_checkpoint
from features.vggish_frontend import frontend_provenance
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.storage import DatasetStore
from tests.dataset_builders import make_dataset
from tests.test_embed_short_clips import fake_vggish


@pytest.fixture
def vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    return fake_vggish(tmp_path, monkeypatch)


@pytest.mark.parametrize("formats", [("hdf5", "parquet"), ("parquet",)])
def test_other_formats_than_the_embeddings_are_refused(
    tmp_path: Path, vggish: EmbedSettings, formats: tuple[str, ...]
):
    ds = make_dataset(tmp_path / "ds", {"train": [[0], [1]]}, num_classes=2,
                      embedding_formats=("hdf5",)).root  # fmt: skip
    before = (ds / "manifest.json").read_text()
    with pytest.raises(ValueError, match=r"embeddings are in hdf5, not .*\(--format\)"):
        embed_dataset(str(ds), dataclasses.replace(vggish, formats=formats))
    assert (ds / "manifest.json").read_text() == before


def test_the_same_formats_in_another_order_resume(tmp_path: Path, vggish: EmbedSettings):
    both = ("hdf5", "parquet")
    ds = make_dataset(tmp_path / "ds", {"train": [[0], [1]]}, num_classes=2, formats=both,
                      embedding_formats=both).root  # fmt: skip
    settings = dataclasses.replace(vggish, formats=("parquet", "hdf5"))
    summary = embed_dataset(str(ds), settings, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped) == (0, 1)


@pytest.mark.parametrize("embedded", [True, False])
def test_other_weights_are_refused_only_where_embeddings_exist(
    tmp_path: Path, vggish: EmbedSettings, embedded: bool
):
    formats = ("hdf5",) if embedded else ()
    ds = make_dataset(tmp_path / "ds", {"train": [[0]]}, num_classes=2,
                      embedding_formats=formats).root  # fmt: skip
    store = DatasetStore(str(ds))
    manifest = load_manifest(store)
    failed_run = {"model": "vggish", "checkpoint_sha256": "c" * 64, "pca_sha256": "o" * 64}
    manifest.stages["embed:vggish"] = {"run_id": "r", "provenance": failed_run, "completed": None}
    save_manifest(store, manifest)
    if embedded:
        with pytest.raises(ValueError, match="made with another pca"):
            embed_dataset(str(ds), vggish, scheduler="synchronous")
    else:
        assert embed_dataset(str(ds), vggish, scheduler="synchronous").shards_done == 1


def test_a_pca_file_that_is_not_npz_is_refused_before_any_work(
    tmp_path: Path, vggish: EmbedSettings
):
    ds = make_dataset(tmp_path / "ds", {"train": [[0]]}, num_classes=2).root
    before = (ds / "manifest.json").read_text()
    text = tmp_path / "pca.txt"
    text.write_text("not numpy\n")
    with pytest.raises(ValueError, match=rf"{text} is not a VGGish PCA parameters \.npz"):
        embed_dataset(
            str(ds), dataclasses.replace(vggish, pca_params=str(text)), scheduler="synchronous"
        )
    assert (ds / "manifest.json").read_text() == before


@pytest.mark.parametrize(
    ("out", "reason"),
    [
        ("nodir/sub/ef.npz", r"directory .*nodir/sub does not exist"),
        ("", "is a directory"),
        ("afile/ef.npz", r".*afile is a file, not a folder"),
    ],
)
def test_embed_files_checks_out_before_any_work(
    tmp_path: Path, vggish: EmbedSettings, out: str, reason: str
):
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(2 * 16000, np.float32), 16000)
    (tmp_path / "out.npz").mkdir()
    (tmp_path / "afile").write_text("x")
    target = str(tmp_path / (out or "out.npz"))
    with pytest.raises(ValueError, match=rf"--out {re.escape(target)}:? {reason}"):
        embed_files([str(audio)], vggish, target)
    assert not embed_files_module.load_embedder(vggish).calls


@pytest.mark.parametrize(
    ("mode", "resampler", "recorded"),
    [("fast", None, "soxr HQ"), ("exact", None, "resampy kaiser_best"),
     ("exact", "soxr", "soxr HQ")],
)  # fmt: skip
@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_embed_files_records_the_resampler_used(
    tmp_path: Path, vggish: EmbedSettings, monkeypatch: pytest.MonkeyPatch,
    mode: str, resampler: str | None, recorded: str, suffix: str,
):  # fmt: skip
    import features.vggish_checkpoint

    monkeypatch.setattr(features.vggish_checkpoint, "checkpoint_sha256", lambda path: "c" * 64)
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(16000, np.float32), 16000)
    out = tmp_path / f"ef{suffix}"
    settings = dataclasses.replace(vggish, mode=mode, resampler=resampler)
    embed_files([str(audio)], settings, str(out))
    if suffix == ".npz":
        with np.load(out) as npz:
            assert str(npz["resampler"]) == recorded
    else:
        assert pq.read_schema(out).metadata[b"audiomill.resampler"] == recorded.encode()


def _real_front_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the front end each run's settings ask for, as the real ``_provenance`` does."""
    monkeypatch.setattr(
        embed_module,
        "_provenance",
        lambda settings: {"model": "vggish", "checkpoint_sha256": "c" * 64,
                          "pca_sha256": "p" * 64,
                          "frontend": frontend_provenance(settings.mode, settings.resampler)},
    )  # fmt: skip


def test_another_front_end_than_the_embeddings_is_refused(
    tmp_path: Path, vggish: EmbedSettings, monkeypatch: pytest.MonkeyPatch
):
    _real_front_end(monkeypatch)
    ds = make_dataset(tmp_path / "ds", {"train": [[0], [1]], "test": [[0]]}, num_classes=2).root
    embed_dataset(str(ds), vggish, splits=["test"], scheduler="synchronous")
    before = (ds / "manifest.json").read_text()
    for other in ({"mode": "exact"}, {"resampler": "resampy"}):
        with pytest.raises(
            ValueError,
            match=r"made with --mode fast --resampler soxr \(soxr HQ\), not --mode "
            rf"{other.get('mode', 'fast')} --resampler resampy .*give --mode fast --resampler "
            r"soxr to keep them, .*delete embeddings/vggish",
        ):
            embed_dataset(str(ds), dataclasses.replace(vggish, **other), scheduler="synchronous")
        assert (ds / "manifest.json").read_text() == before
    same = dataclasses.replace(vggish, resampler="soxr")  # fast's default, named
    summary = embed_dataset(str(ds), same, scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped) == (1, 1)


def test_a_front_end_unrecorded_or_bound_by_no_embedded_split_is_not_checked(
    tmp_path: Path, vggish: EmbedSettings, monkeypatch: pytest.MonkeyPatch
):
    _real_front_end(monkeypatch)
    ds = make_dataset(tmp_path / "ds", {"train": [[0]]}, num_classes=2,
                      embedding_formats=("hdf5",)).root  # fmt: skip
    store = DatasetStore(str(ds))
    manifest = load_manifest(store)
    older = {"model": "vggish", "checkpoint_sha256": "c" * 64, "pca_sha256": "p" * 64}
    manifest.stages["embed:vggish"] = {"run_id": "r", "provenance": older, "completed": 1.0}
    save_manifest(store, manifest)
    exact = dataclasses.replace(vggish, mode="exact")
    assert embed_dataset(str(ds), exact, scheduler="synchronous").shards_skipped == 1

    # Embeddings imported into a split without waveforms were made by no embed run.
    imported = make_dataset(tmp_path / "imp", {"train": [[0]], "bal": [[1]]}, num_classes=2,
                            embedding_formats=("hdf5",)).root  # fmt: skip
    store = DatasetStore(str(imported))
    manifest = load_manifest(store)
    del manifest.splits["bal"]
    failed = {**older, "frontend": frontend_provenance("fast")}
    manifest.stages["embed:vggish"] = {"run_id": "r", "provenance": failed, "completed": None}
    manifest.embeddings["vggish"]["train"].shards.clear()
    save_manifest(store, manifest)
    assert embed_dataset(str(imported), exact, scheduler="synchronous").shards_done == 1


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--workers", "0", "--workers must be positive"),
     ("--workers", "-2", "--workers must be positive"),
     ("--batch-size", "0", "--batch-size must be at least 1")],
)  # fmt: skip
def test_embed_refuses_non_positive_counts_before_any_work(
    tmp_path: Path, vggish: EmbedSettings, monkeypatch: pytest.MonkeyPatch,
    option: str, value: str, message: str,
):  # fmt: skip
    from workflows.cli import app

    monkeypatch.setattr(embed_module, "dask_client", None)  # no cluster may start
    ds = make_dataset(tmp_path / "ds", {"train": [[0]]}, num_classes=2).root
    before = (ds / "manifest.json").read_text()
    args = ["embed", str(ds), "--checkpoint", vggish.checkpoint, "--pca-params",
            vggish.pca_params, option, value]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"error: {message}" in " ".join(result.output.split())
    assert (ds / "manifest.json").read_text() == before


def test_import_refuses_non_positive_shard_clips(tmp_path: Path):
    from workflows.cli import app

    result = CliRunner().invoke(app, ["import", "packed-h5", str(tmp_path / "p.h5"), "--classes",
                                      str(tmp_path / "c.csv"), "--out", str(tmp_path / "ds"),
                                      "--split", "bal", "--shard-clips", "0"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "error: --shard-clips must be at least 1" in " ".join(result.output.split())


def test_a_checkpoint_that_is_no_tensorflow_checkpoint_is_refused_before_any_cluster(
    tmp_path: Path, vggish: EmbedSettings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(embed_module, "check_checkpoint", check_checkpoint)
    monkeypatch.setattr(embed_module, "dask_client", None)  # no cluster may start
    ds = make_dataset(tmp_path / "ds", {"train": [[0]]}, num_classes=2).root
    before = (ds / "manifest.json").read_text()
    settings = dataclasses.replace(vggish, checkpoint=vggish.pca_params)  # an .npz
    with pytest.raises(CheckpointError, match=rf"{re.escape(vggish.pca_params)} is not a "):
        embed_dataset(str(ds), settings)
    assert (ds / "manifest.json").read_text() == before


@pytest.mark.parametrize("v1", [False, True])
def test_tensorflow_checkpoints_pass_the_check(tmp_path: Path, v1: bool):
    from tests.vggish_fixtures import random_weights, write_slim_checkpoint

    prefix = write_slim_checkpoint(tmp_path / "vggish_model.ckpt", random_weights(0), v1=v1)
    assert check_checkpoint(prefix) == prefix
