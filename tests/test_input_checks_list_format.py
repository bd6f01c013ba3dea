"""A segment list in JSON under another name, or tab-separated, is refused naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.custom_manifest import check_list_file, list_format_problem
from schemas.errors import InputFormatError
from tests.ingest_helpers import audiomill

JSON_PROBLEM = (
    "holds JSON: a segment list is comma-separated CSV, or JSON Lines (one object per line) in "
    "a file named .jsonl or .ndjson"
)
TAB_PROBLEM = "is tab-separated: a segment list is comma-separated CSV or JSON Lines (.jsonl)"
CLASSES = "index,mid,display_name\n0,/m/one,one\n"
JSONL = '{"path": "a.wav", "labels": ["one"]}\n{"path": "b.wav", "labels": ["one"]}\n'


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("m.json", JSONL, JSON_PROBLEM),
        ("m.txt", "\n\n  " + JSONL, JSON_PROBLEM),
        ("ontology.json", '[\n  {"id": "/m/one", "name": "one"}\n]\n', JSON_PROBLEM),
        ("m.tsv", "path\tlabels\na.wav\tone\n", "line 1 " + TAB_PROBLEM),
        ("s.csv", "# YTID, start_seconds, end_seconds, positive_labels\n"
                  "abc\t0\t10\t/m/one\n", "line 2 " + TAB_PROBLEM),
        ("m.jsonl", JSONL, None),
        ("m.csv", "path,labels\na.wav,one\n", None),
        ("s.csv", '# x\nabc, 0.000, 10.000, "/m/one"\n', None),
        ("e.csv", "", None),
    ],
)  # fmt: skip
def test_list_format_problem(name: str, text: str, problem: str | None, tmp_path: Path):
    assert list_format_problem(text, name) == problem
    path = tmp_path / name
    path.write_text(text)
    if problem is None:
        check_list_file(str(path))
    else:
        with pytest.raises(InputFormatError, match="^" + str(path).replace(".", r"\.") + ": "):
            check_list_file(str(path))


def test_check_list_file_leaves_folders_and_missing_files_to_their_readers(tmp_path: Path):
    check_list_file(str(tmp_path))
    check_list_file(str(tmp_path / "missing.csv"))


def test_ingest_and_inspect_refuse_json_and_tsv_lists(tmp_path: Path, audioset_dir: Path):
    (tmp_path / "classes.csv").write_text(CLASSES)
    (tmp_path / "m2.json").write_text(JSONL)
    (tmp_path / "m1.tsv").write_text("path\tlabels\na.wav\tone\n")
    lists = {
        tmp_path / "m2.json": JSON_PROBLEM,
        audioset_dir / "ontology.json": JSON_PROBLEM,
        tmp_path / "m1.tsv": "line 1 " + TAB_PROBLEM,
    }
    for path, problem in lists.items():
        for classes in ([], ["--classes", str(tmp_path / "classes.csv")]):
            proc = audiomill("segments", "inspect", str(path), *classes, check=False)
            assert proc.returncode == 2, (path, classes, proc.stderr)
            assert f"error: {path}: {problem}" in proc.stderr, (path, classes, proc.stderr)
        proc = audiomill("ingest", "--segments", str(path), "--out", str(tmp_path / "ds"),
                         check=False)  # fmt: skip
        assert proc.returncode == 2, (path, proc.stderr)
        assert f"error: {path}: {problem}" in proc.stderr, (path, proc.stderr)
        assert not (tmp_path / "ds").exists()
