"""``dataset info`` and the dataset report of a dataset of imported embeddings only: no waveform
settings (the manifest's sample rate, clip length and formats are placeholders there), and runs
counted by their stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from features.importers import import_audioset_tfrecords
from features.report import build_report
from pipelines.dataset_tools import dataset_info
from tests.dataset_builders import make_dataset
from tests.ingest_helpers import audiomill
from tests.test_importers import frames, release_record, write_tfrecord


@pytest.fixture
def imported(tmp_path: Path, audioset_classes) -> Path:
    """Two imports of AudioSet's released embeddings, into splits train and eval."""
    rng = np.random.default_rng(0)
    out = tmp_path / "asemb"
    for split, ids in (("train", ["trainclip01", "trainclip02"]), ("eval", ["evalclip001"])):
        records = [release_record(vid, 0.0, [0, 137], frames(rng, 10)) for vid in ids]
        tfrecord = write_tfrecord(tmp_path / f"{split}.tfrecord", records)
        import_audioset_tfrecords(str(tfrecord), audioset_classes, out, split)
    return out


def _facts(page: str) -> dict[str, str]:
    """The report's first table (the dataset's facts), label to value."""
    table = page.split("<table", 1)[1].split("</table>", 1)[0]
    return dict(re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", table))


def test_info_of_imported_embeddings_has_no_waveform_settings(imported: Path):
    info = dataset_info(str(imported))
    assert (info["sample_rate"], info["clip_seconds"], info["formats"]) == (None, None, None)
    assert (info["runs"], info["runs_by_stage"]) == (2, {"import-embeddings": 2})
    printed = json.loads(audiomill("dataset", "info", str(imported), "--json").stdout)
    assert printed["sample_rate"] is None and printed["runs_by_stage"] == info["runs_by_stage"]
    size = sum(s["bytes"] for s in info["embeddings"]["vggish"].values())
    first = audiomill("dataset", "info", str(imported)).stdout.splitlines()[0]
    assert first == (
        f"{imported}: vggish embeddings of 3 clips, {size / 1e6:.1f} MB; no waveforms, 527 classes"
    )


def test_report_of_imported_embeddings_has_no_waveform_settings(tmp_path: Path, imported: Path):
    page = Path(build_report(imported, tmp_path / "out", client="synchronous")).read_text()
    facts = _facts(page)
    assert facts["waveforms"] == "none"
    assert facts["runs"] == "import-embeddings: 2"
    for label in ("sample rate (Hz)", "clip seconds", "waveform formats", "ingest runs"):
        assert label not in facts, label


def test_a_dataset_with_waveforms_keeps_its_settings(tmp_path: Path):
    built = make_dataset(tmp_path / "ds", {"train": [[0], [1]]}, num_classes=2)
    info = dataset_info(str(built.root))
    assert (info["sample_rate"], info["formats"], info["runs_by_stage"]) == (8000, ["hdf5"], {})
    page = Path(build_report(built.root, tmp_path / "out", client="synchronous")).read_text()
    facts = _facts(page)
    assert (facts["sample rate (Hz)"], facts["waveform formats"]) == ("8,000", "hdf5")
    assert facts["runs"] == "none" and "waveforms" not in facts
