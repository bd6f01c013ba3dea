"""A CSV whose header names columns but no ``path``/``url`` is a manifest with a wrong header,
not an AudioSet segment list."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.segment_loading import class_map_from_list, load_segment_list
from schemas.classmap import ClassMap
from schemas.errors import InputFormatError
from tests.ingest_helpers import audiomill

NEEDS = (
    r"a manifest needs a 'path' or 'url' column "
    r"\(its other columns: start_seconds, end_seconds, labels, split, clip_id\)$"
)


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ("file,labels\na.wav,dog\n", 1, "'file', 'labels'"),
        ('"File Name", Labels\n"a.wav", dog\n', 1, "'File Name', 'Labels'"),
        ("\n# my clips\nfilename,start_seconds,end_seconds,\na.wav,0,1,\n", 3, "'filename', .*"),
        ("index,mid,display_name\n0,/m/09x0r,Speech\n", 1, "'index', 'mid', 'display_name'"),
    ],
)
def test_wrong_manifest_header_names_its_columns(tmp_path: Path, text: str, line: int, found):
    m = tmp_path / "m.csv"
    m.write_text(text)
    message = rf"^{m}:{line}: the header names {found}; {NEEDS}"
    with pytest.raises(InputFormatError, match=message):
        class_map_from_list(str(m))
    with pytest.raises(InputFormatError, match=message):
        load_segment_list(str(m), ClassMap.from_names(["dog"]), "train")


@pytest.mark.parametrize(
    "first",
    [
        '--PJHxphWEs, 30.000, 40.000, "/m/a"',
        "YTID, start_seconds, end_seconds, positive_labels",  # AudioSet's column line, uncommented
        "-x_Abc123de, 0.000",  # a truncated line: malformed, but no header
    ],
)
def test_audioset_lists_are_still_audioset_lists(tmp_path: Path, first: str):
    seg = tmp_path / "seg.csv"
    seg.write_text(f"# YTID, start_seconds, end_seconds, positive_labels\n{first}\n")
    result = load_segment_list(str(seg), ClassMap([]), "train")
    assert len(result.segments) + len(result.malformed) == 1


def test_ingest_with_a_wrong_manifest_header(tmp_path: Path):
    m = tmp_path / "m.csv"
    m.write_text("file,labels\na.wav,dog\n")
    (tmp_path / "classes.csv").write_text("index,mid,display_name\n0,dog,dog\n")
    for classes in ([], ["--classes", str(tmp_path / "classes.csv")]):
        proc = audiomill("ingest", "--segments", str(m), *classes, "--out", str(tmp_path / "ds"),
                         check=False)  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: {m}:1: the header names 'file', 'labels'; a manifest needs a 'path' or 'url' "
            "column (its other columns: start_seconds, end_seconds, labels, split, clip_id)"
        )
