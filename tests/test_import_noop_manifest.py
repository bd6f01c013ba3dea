"""An import that commits nothing to an existing dataset leaves manifest.json byte-identical and
records no run, as with ingest, so ``audiomill run`` does not re-run the stages after it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from features.importers import import_audioset_tfrecords, import_packed_h5
from schemas.classmap import ClassMap
from tests.test_features_fixes_import_nothing import _packed
from tests.test_importers import frames, release_record, write_tfrecord


def _stages(dataset: Path) -> list[str]:
    return [run["stage"] for run in json.loads((dataset / "manifest.json").read_text())["runs"]]


def test_a_packed_h5_import_with_nothing_to_do_leaves_the_manifest_untouched(tmp_path: Path):
    packed, out = _packed(tmp_path / "p.h5", 4, 3), tmp_path / "as2"
    classes = ClassMap.from_names("xyz")
    assert import_packed_h5(packed, classes, out, "train").imported == 4
    before = (out / "manifest.json").read_bytes()
    again = import_packed_h5(packed, classes, out, "train")
    assert (again.imported, again.already_imported, again.shards) == (0, 4, [])
    assert (out / "manifest.json").read_bytes() == before
    assert _stages(out) == ["import-embeddings"]


def test_a_tfrecord_import_with_nothing_to_do_records_no_run(tmp_path: Path, audioset_classes):
    rng = np.random.default_rng(0)
    ids = ("clip0000001", "clip0000002")
    records = [release_record(vid, 0.0, [0, 137], frames(rng, 10)) for vid in ids]
    tfrecord = str(write_tfrecord(tmp_path / "eval.tfrecord", records))
    out = tmp_path / "ds"
    import_audioset_tfrecords(tfrecord, audioset_classes, out, "eval")
    before = (out / "manifest.json").read_bytes()
    again = import_audioset_tfrecords(tfrecord, audioset_classes, out, "eval")
    assert (again.imported, again.already_imported) == (0, 2)
    assert (out / "manifest.json").read_bytes() == before
    assert _stages(out) == ["import-embeddings"]
