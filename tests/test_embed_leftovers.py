"""What a killed ``audiomill embed`` leaves in the embedding folders: a re-run removes it before
writing (only shard files and their temporaries, never a user's file), and ``dataset verify``
reports it until then."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from features.embed import EmbedSettings, embed_dataset
from pipelines.dataset_state import load_manifest, save_manifest
from pipelines.dataset_tools import verify_dataset
from pipelines.storage import DatasetStore, temporary_name
from tests.dataset_builders import make_dataset
from tests.test_embed_short_clips import fake_vggish

SPLITS = {"train": [[0], [1], [0], [1]], "test": [[0], [1]]}  # train: shards 0, 1; test: 0
TRAIN = Path("embeddings/vggish/train")
RERUN = (
    "an interrupted embed or import leaves this behind: run the same embed or import again, "
    "which replaces or removes these files"
)
MINE = ("notes.txt", "notes.txt.tmp-0a1b2c", "shard-00001.h5.bak", "shard-00001.h5.tmp-backup")
"""The user's files in an embedding folder, some named like temporaries, none of them ours."""


@pytest.fixture
def vggish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbedSettings:
    return fake_vggish(tmp_path, monkeypatch)


@pytest.fixture
def killed(tmp_path: Path) -> Path:
    """A dataset whose embed was killed while it wrote train's shard 1: the shard's temporary
    (as :func:`pipelines.storage.temporary_name` names it) is in its folder, the manifest lists
    only shard 0; the user keeps files of theirs in the folders too."""
    root = make_dataset(
        tmp_path / "ds", SPLITS, num_classes=2, shard_clips=2, embedding_formats=("hdf5",)
    ).root
    store = DatasetStore(str(root))
    manifest = load_manifest(store)
    manifest.embeddings["vggish"]["train"].shards.pop()
    prov = {"model": "vggish", "checkpoint_sha256": "c" * 64, "pca_sha256": "p" * 64}
    manifest.stages["embed:vggish"] = {"run_id": "r", "provenance": prov, "completed": None}
    save_manifest(store, manifest)
    (root / TRAIN / "shard-00001.h5").rename(root / TRAIN / temporary_name("shard-00001.h5"))
    for name in MINE:
        (root / TRAIN / name).write_text("mine")
    return root


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_verify_reports_an_embedding_shard_temporary(killed: Path):
    (temporary,) = (
        n for n in _names(killed / TRAIN) if n.startswith("shard-00001.h5.tmp-") and n not in MINE
    )
    report = verify_dataset(str(killed))
    assert report.problems == [f"{TRAIN / temporary}: not in the manifest"]
    assert report.hints == [RERUN]
    assert len(report.notes) == len(MINE)  # the user's files


def test_a_rerun_removes_the_temporary_and_keeps_the_users_files(
    killed: Path, vggish: EmbedSettings, caplog: pytest.LogCaptureFixture
):
    test_temporary = killed / "embeddings/vggish/test" / temporary_name("shard-00003.h5")
    test_temporary.write_bytes(b"half a shard")
    with caplog.at_level(logging.WARNING, logger="features.embed"):
        summary = embed_dataset(str(killed), vggish, splits=["train"], scheduler="synchronous")
    assert (summary.shards_done, summary.shards_skipped) == (1, 1)
    assert _names(killed / TRAIN) == [
        "notes.txt",
        "notes.txt.tmp-0a1b2c",
        "shard-00000.h5",
        "shard-00001.h5",
        "shard-00001.h5.bak",
        "shard-00001.h5.tmp-backup",
    ]
    assert "left uncommitted by an interrupted run" in caplog.text
    assert test_temporary.exists()  # a split this run does not embed is not touched
    test_temporary.unlink()
    report = verify_dataset(str(killed))
    assert report.problems == [] and len(report.notes) == len(MINE)


def test_a_rerun_removes_an_uncommitted_shard_it_would_not_rewrite(
    killed: Path, vggish: EmbedSettings
):
    (killed / TRAIN / "shard-00007.h5").write_bytes(b"an earlier run's shard")
    embed_dataset(str(killed), vggish, scheduler="synchronous")
    assert not (killed / TRAIN / "shard-00007.h5").exists()
    assert verify_dataset(str(killed)).problems == []
