"""``dataset verify`` reports clip ids that shards of two splits hold (a dataset imported into
two splits before import refused that): a model trained on one and scored on the other is
scored on its training clips."""

from __future__ import annotations

from pathlib import Path

import pytest

from features import importers
from features.importers import import_audioset_tfrecords
from pipelines.dataset_tools import verify_dataset
from tests.test_importers_refusals import _release


def test_verify_names_clips_in_two_splits(
    tmp_path: Path, audioset_classes, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"clip{i:07d}" for i in range(4)]
    records = _release(tmp_path / "in.tfrecord", ids)
    out = tmp_path / "ds"
    import_audioset_tfrecords(records, audioset_classes, out, "eval")
    assert verify_dataset(str(out)).problems == []
    monkeypatch.setattr(importers, "refuse_clips_elsewhere", lambda *args: None)
    import_audioset_tfrecords(records, audioset_classes, out, "train")
    problems = verify_dataset(str(out)).problems
    assert problems == [
        f"4 clip id(s) are in more than one split, e.g. {ids[0]}_0 (eval, train), "
        f"{ids[1]}_0 (eval, train), {ids[2]}_0 (eval, train): a clip id names one clip of the "
        "dataset, and a model trained on one of those splits and evaluated on another is "
        "scored on clips it was trained on"
    ]
