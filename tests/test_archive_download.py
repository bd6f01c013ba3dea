"""Resumable archive downloads and safe unpacking (``audiomill download urbansound8k``)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pipelines.recipes.archive_download import download_archive, fetch_resumable, unpack_tar
from pipelines.recipes.urbansound8k import download_urbansound8k, prepare_urbansound8k
from tests.http_media_server import MediaServer, Script
from tests.ingest_helpers import audiomill
from tests.recipe_layouts import make_urbansound8k


def _urbansound_archive(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """``www/UrbanSound8K.tar.gz`` holding a small UrbanSound8K in its published layout."""
    counts = make_urbansound8k(tmp_path / "src" / "UrbanSound8K", folds=2, per_fold=2)
    (tmp_path / "www").mkdir()
    archive = tmp_path / "www" / "UrbanSound8K.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "UrbanSound8K", arcname="UrbanSound8K")
    return archive, counts


def test_download_urbansound8k_unpacks_what_prepare_reads(tmp_path: Path):
    archive, counts = _urbansound_archive(tmp_path)
    with MediaServer(tmp_path / "www") as server:
        got = download_urbansound8k(tmp_path / "data", server.url("UrbanSound8K.tar.gz"))
        assert got.unpacked and got.fetched_bytes == archive.stat().st_size
        assert got.root == tmp_path / "data" / "UrbanSound8K"
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["UrbanSound8K"]
        again = download_urbansound8k(tmp_path / "data", server.url("UrbanSound8K.tar.gz"))
        assert not again.unpacked and again.fetched_bytes == 0 and len(server.requests) == 1
    prepared = prepare_urbansound8k(got.root, tmp_path / "prepared")
    assert prepared.clips_per_split == counts


def test_interrupted_download_resumes_with_a_range_request(tmp_path: Path):
    archive, _ = _urbansound_archive(tmp_path)
    data = archive.read_bytes()
    dest = tmp_path / "dl" / "UrbanSound8K.tar.gz"
    dest.parent.mkdir()
    dest.with_name(dest.name + ".part").write_bytes(data[:1000])
    seen = []
    with MediaServer(tmp_path / "www") as server:
        fetched, resumed = fetch_resumable(
            server.url("UrbanSound8K.tar.gz"), dest, progress=lambda n, total: seen.append(total)
        )
        assert [status for _, status in server.requests] == [206]
    assert (fetched, resumed) == (len(data) - 1000, 1000) and dest.read_bytes() == data
    assert set(seen) == {len(data)} and not dest.with_name(dest.name + ".part").exists()


def test_failed_download_keeps_the_partial_file_and_names_the_url(tmp_path: Path):
    _urbansound_archive(tmp_path)
    with MediaServer(tmp_path / "www") as server:
        server.script("/UrbanSound8K.tar.gz", Script(status=503))
        with pytest.raises(OSError, match=r"UrbanSound8K\.tar\.gz: HTTP 503"):
            download_urbansound8k(tmp_path / "data", server.url("UrbanSound8K.tar.gz"))
    assert not (tmp_path / "data" / "UrbanSound8K").exists()
    with pytest.raises(ValueError, match="http"):
        download_urbansound8k(tmp_path / "data", "file:///etc/UrbanSound8K.tar.gz")


def test_bad_archives_are_refused_and_leave_nothing(tmp_path: Path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "page.tar.gz").write_text("<html>quota exceeded</html>")
    evil = www / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with tarfile.open(www / "other.tar", "w") as tar:
        info = tarfile.TarInfo("UrbanSound8K/readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    out = tmp_path / "data"
    with MediaServer(www) as server:
        for name, message in (("page.tar.gz", "not a readable tar"), ("evil.tar", "refused"),
                              ("other.tar", "missing UrbanSound8K/metadata")):  # fmt: skip
            with pytest.raises(ValueError, match=message):
                download_archive(server.url(name), out, top="UrbanSound8K",
                                 required=("metadata/UrbanSound8K.csv",))  # fmt: skip
            assert list(out.iterdir()) == []  # archive removed, nothing unpacked
    assert not (tmp_path / "outside.txt").exists()
    with pytest.raises(ValueError, match="not a readable tar"):
        unpack_tar(www / "page.tar.gz", out, "UrbanSound8K", ())


def test_download_urbansound8k_command(tmp_path: Path):
    _urbansound_archive(tmp_path)
    with MediaServer(tmp_path / "www") as server:
        proc = audiomill("download", "urbansound8k", "--out", str(tmp_path / "data"), "--url",
                         server.url("UrbanSound8K.tar.gz"), cwd=tmp_path)  # fmt: skip
    text = " ".join(proc.stdout.split())
    assert "unpacked" in text and "recipes/urbansound8k" in text
    assert (tmp_path / "data" / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv").is_file()
    bad = audiomill("download", "urbansound8k", "--out", str(tmp_path / "d2"), "--url",
                    "ftp://host/UrbanSound8K.tar.gz", cwd=tmp_path, check=False)  # fmt: skip
    assert bad.returncode == 2 and "http" in bad.stderr


def test_download_audioset_embeddings_puts_the_class_map_beside_the_records(
    tmp_path: Path, audioset_dir: Path
):
    src = tmp_path / "src" / "audioset_v1_embeddings"
    for split in ("bal_train", "eval"):
        (src / split).mkdir(parents=True)
        (src / split / "Zz.tfrecord").write_bytes(b"records of " + split.encode())
    www = tmp_path / "www"
    (www / "csv").mkdir(parents=True)
    (www / "csv" / "class_labels_indices.csv").write_bytes(
        (audioset_dir / "class_labels_indices.csv").read_bytes()
    )
    with tarfile.open(www / "features.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="audioset_v1_embeddings")
    with MediaServer(www) as server:
        proc = audiomill("download", "audioset-embeddings", "--out", str(tmp_path / "data"),
                         "--url", server.url("features.tar.gz"), "--url-base",
                         server.url("csv"), cwd=tmp_path)  # fmt: skip
    root = tmp_path / "data" / "audioset_v1_embeddings"
    assert (root / "eval" / "Zz.tfrecord").read_bytes() == b"records of eval"
    assert (root / "class_labels_indices.csv").read_bytes() == (
        audioset_dir / "class_labels_indices.csv"
    ).read_bytes()
    assert "recipes/audioset_embeddings" in " ".join(proc.stdout.split())
    assert not (tmp_path / "data" / "features.tar.gz").exists()
