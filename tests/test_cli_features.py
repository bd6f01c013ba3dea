"""End-to-end runs of the feature commands on small real files: import, index, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill
from tests.test_importers import CLIPS, frames, release_record, write_packed, write_tfrecord


@pytest.mark.slow
def test_import_tfrecord_then_index_and_report(tmp_path: Path, audioset_dir: Path):
    import numpy as np

    rng = np.random.default_rng(1)
    records = [release_record(v, s, labels, frames(rng, n)) for v, s, labels, n in CLIPS]
    write_tfrecord(tmp_path / "bal00.tfrecord", records[:2])
    write_tfrecord(tmp_path / "bal01.tfrecord", records[2:])
    out = tmp_path / "as-emb"
    classes = str(audioset_dir / "class_labels_indices.csv")
    pattern = str(tmp_path / "bal*.tfrecord")
    proc = audiomill("import", "audioset-tfrecord", pattern, "--classes", classes, "--out",
                     str(out), "--split", "bal_train", "--shard-clips", "2")  # fmt: skip
    assert "imported" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    shards = manifest["embeddings"]["vggish"]["bal_train"]["shards"]
    assert [s["num_clips"] for s in shards] == [2, 2, 1]

    again = audiomill("import", "audioset-tfrecord", pattern, "--classes", classes, "--out",
                      str(out), "--split", "bal_train")  # fmt: skip
    assert "already imported" in again.stderr
    assert json.loads((out / "manifest.json").read_text())["embeddings"] == manifest["embeddings"]

    bad = audiomill("index", str(out), check=False)
    assert bad.returncode == 2 and "splits bal_train: add --source embeddings" in bad.stderr
    idx = json.loads(audiomill("index", str(out), "--source", "embeddings", "--json").stdout)
    assert idx[0]["num_clips"] == 5
    assert idx[0]["num_positions"] == sum(len(labels) for _, _, labels, _ in CLIPS)

    report_dir = tmp_path / "report"
    audiomill("report", str(out), "--out", str(report_dir))
    html = (report_dir / "index.html").read_text()
    assert "data:image/png;base64," in html and "bal_train" in html

    bad = audiomill("import", "audioset-tfrecord", str(tmp_path / "none*.tfrecord"), "--classes",
                    classes, "--out", str(out), "--split", "x", check=False)  # fmt: skip
    assert bad.returncode == 2 and "none*" in bad.stderr


def test_import_packed_h5_cli(tmp_path: Path, audioset_dir: Path):
    write_packed(tmp_path / "packed.h5", 7)
    out = tmp_path / "ds"
    audiomill("import", "packed-h5", str(tmp_path / "packed.h5"), "--classes",
              str(audioset_dir / "class_labels_indices.csv"), "--out", str(out), "--split",
              "train", "--format", "hdf5,parquet")  # fmt: skip
    info = json.loads((out / "manifest.json").read_text())
    (shard,) = info["embeddings"]["vggish"]["train"]["shards"]
    assert shard["num_clips"] == 7 and set(shard["files"]) == {"hdf5", "parquet"}
    wrong = tmp_path / "classes3.csv"
    wrong.write_text("index,mid,display_name\n0,a,A\n1,b,B\n2,c,C\n")
    bad = audiomill("import", "packed-h5", str(tmp_path / "packed.h5"), "--classes", str(wrong),
                    "--out", str(tmp_path / "ds2"), "--split", "train", check=False)  # fmt: skip
    assert bad.returncode == 2 and "527" in bad.stderr
    assert not (tmp_path / "ds2").exists()
    text = tmp_path / "text.h5"
    text.write_text("not hdf5\n")
    bad = audiomill("import", "packed-h5", str(text), "--classes",
                    str(audioset_dir / "class_labels_indices.csv"), "--out",
                    str(tmp_path / "ds3"), "--split", "train", check=False)  # fmt: skip
    assert bad.returncode == 2 and f"error: {text}: not an HDF5 file" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "ds3").exists()


def test_index_and_report_on_waveform_dataset(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": [[0], [1, 2], [2], []], "eval": [[0, 1]]},
                         num_classes=3, failures={"train": [("unavailable", [1])]})  # fmt: skip
    res = json.loads(audiomill("index", str(built.root), "--json").stdout)
    by_split = {r["split"]: r for r in res}
    assert by_split["train"]["num_clips"] == 4 and by_split["train"]["unlabeled_clips"] == 1
    assert by_split["eval"]["num_positions"] == 2
    assert (built.root / "index" / "train").is_dir()
    proc = audiomill("report", str(built.root))
    assert "report written to" in proc.stdout
    html = next((built.root / "reports").rglob("index.html")).read_text()
    assert "unavailable" in html
    (tmp_path / "afile").write_text("x")
    bad = audiomill("report", str(built.root), "--out", str(tmp_path / "afile"), check=False)
    assert bad.returncode == 2 and "afile is a file, not a directory" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = audiomill("index", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 2 and "not an audiomill dataset" in missing.stderr
