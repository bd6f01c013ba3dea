"""A folder without audio files is named as such, not as a list without labels or segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.segment_loading import class_map_from_list, load_segment_list
from schemas.classmap import ClassMap
from schemas.errors import InputFormatError
from tests.ingest_helpers import audiomill

NO_AUDIO = r"no audio files \(\.wav, \.flac, .*\.webm\) in it or its sub-folders"


@pytest.fixture(params=["empty", "other files"])
def folder(request, tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    (root / "dogs").mkdir(parents=True)
    if request.param == "other files":
        (root / "dogs" / "bark.aac").write_bytes(b"not looked for")
        (root / "notes.txt").write_text("x")
    return root


def test_folder_without_audio_files(folder: Path):
    with pytest.raises(InputFormatError, match=rf"^{folder}: {NO_AUDIO}$"):
        class_map_from_list(str(folder))
    with pytest.raises(InputFormatError, match=rf"^{folder}: {NO_AUDIO}$"):
        load_segment_list(str(folder), ClassMap.from_names(["dogs"]), "train")


def test_ingest_of_an_empty_folder(tmp_path: Path):
    (tmp_path / "in").mkdir()
    proc = audiomill(
        "ingest", "--segments", str(tmp_path / "in"), "--out", str(tmp_path / "ds"), check=False
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {tmp_path / 'in'}: no audio files (.wav, .flac,")
    )
