"""The quickstart's own material: demo audio, the loopback server, seeded VGGish files."""

from __future__ import annotations

import csv
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from features.vggish_checkpoint import load_vggish_checkpoint
from features.vggish_model import build_vggish
from features.vggish_postprocess import pca_sha256
from features.vggish_seeded import SEEDED_NOTE, write_seeded_vggish
from workflows.demo import BROKEN_FILES, DEMO_CLASSES, make_demo
from workflows.demo_server import serve_directory, url_manifest


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_demo_has_mixtures_broken_files_and_is_deterministic(tmp_path: Path) -> None:
    manifest = make_demo(tmp_path / "a", clips_per_class=3, seconds=1.0, mixtures=4, broken=True)
    rows = _rows(manifest)
    assert len(rows) == 5 * 3 + 4 + len(BROKEN_FILES)
    mixes = [r for r in rows if ";" in r["labels"]]
    assert len(mixes) == 4 and all(len(r["labels"].split(";")) == 2 for r in mixes)
    names = {name for _, name in DEMO_CLASSES}
    assert all(set(r["labels"].split(";")) <= names for r in rows)
    assert {r["split"] for r in rows} == {"train", "eval"}
    for rel, _ in BROKEN_FILES:
        assert any(r["path"] == rel for r in rows)
    assert (tmp_path / "a" / "broken" / "empty.flac").stat().st_size == 0
    assert not (tmp_path / "a" / "broken" / "missing.ogg").exists()
    with pytest.raises(sf.LibsndfileError):
        sf.read(tmp_path / "a" / "broken" / "not_audio.mp3")
    good = next(r for r in rows if r["path"].endswith(".flac") and ";" not in r["labels"])
    info = sf.info(tmp_path / "a" / good["path"])
    assert info.duration == pytest.approx(1.0, abs=0.01)
    again = make_demo(tmp_path / "b", clips_per_class=3, seconds=1.0, mixtures=4, broken=True)
    for r in rows:
        if not r["path"].startswith("broken/"):  # same samples (Ogg stream serials differ)
            a, _ = sf.read(tmp_path / "a" / r["path"])
            b, _ = sf.read(tmp_path / "b" / r["path"])
            np.testing.assert_array_equal(a, b)
    assert again.read_text() == manifest.read_text()


def test_a_clip_has_its_split_and_audio_whatever_the_clips_per_class(tmp_path: Path) -> None:
    few = _rows(make_demo(tmp_path / "few", clips_per_class=2, seconds=0.5, mixtures=4))
    many = {r["path"]: r for r in _rows(make_demo(tmp_path / "many", clips_per_class=5,
                                                   seconds=0.5, mixtures=6))}  # fmt: skip
    assert {r["split"] for r in few} == {"train", "eval"}
    for row in few:
        assert many[row["path"]] == row
        a, _ = sf.read(tmp_path / "few" / row["path"])
        b, _ = sf.read(tmp_path / "many" / row["path"])
        np.testing.assert_array_equal(a, b)


def test_loopback_server_and_url_manifest(tmp_path: Path) -> None:
    manifest = make_demo(tmp_path, clips_per_class=1, seconds=0.5)
    with serve_directory(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        out = url_manifest(manifest, base, tmp_path / "urls.csv")
        rows = _rows(out)
        first = rows[0]
        with urllib.request.urlopen(first["url"]) as response:
            body = response.read()
        assert body == (tmp_path / _rows(manifest)[0]["path"]).read_bytes()
    with serve_directory(tmp_path) as other:
        moved = _rows(url_manifest(manifest, other, tmp_path / "urls2.csv"))
    assert [r["clip_id"] for r in moved] == [r["clip_id"] for r in rows]
    assert [r["labels"] for r in rows] == [r["labels"] for r in _rows(manifest)]


def test_seeded_vggish_files_load_like_googles(tmp_path: Path) -> None:
    files = write_seeded_vggish(tmp_path, seed=3)
    assert files["note"] == SEEDED_NOTE and "SEEDED RANDOM" in SEEDED_NOTE
    model = build_vggish()
    report = load_vggish_checkpoint(model, files["checkpoint"])
    assert report["parameters"] == 72_141_184
    kernel = model.get_layer("conv1").get_weights()[0]
    assert kernel.shape == (3, 3, 1, 64) and np.std(kernel) == pytest.approx(
        np.sqrt(2 / 9), rel=0.2
    )
    with np.load(files["pca_params"]) as pca:
        assert pca["pca_eigen_vectors"].shape == (128, 128)
        assert pca["pca_means"].shape == (128, 1)
    digest = pca_sha256(files["pca_params"])
    assert write_seeded_vggish(tmp_path, seed=3) == files, "written once, then reused"
    assert pca_sha256(files["pca_params"]) == digest
