"""Manifest lines of the wrong shape or JSON types are malformed lines that show their text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.classmap import ClassMap
from schemas.custom_manifest import ACCEPTED_COLUMNS, manifest_labels, parse_manifest_text
from schemas.errors import InputFormatError
from tests.ingest_helpers import audiomill

CLASSES = ClassMap.from_names(["one", "two"])


def _malformed(text: str, name: str) -> list[tuple[int, str, str]]:
    parsed = parse_manifest_text(text, CLASSES, path=name)
    return [(m.line, m.reason, m.text) for m in parsed.malformed]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"path": "a.wav", "labels": [["one"]]},
         "'labels' must be a string or a list of strings, not a list holding a list"),
        ({"path": "a.wav", "labels": ["one", 2]},
         "'labels' must be a string or a list of strings, not a list holding a number"),
        ({"path": "a.wav", "labels": 5},
         "'labels' must be a string or a list of strings, not a number"),
        ({"path": "a.wav", "labels": {"x": 1}},
         "'labels' must be a string or a list of strings, not an object"),
        ({"path": "a.wav", "labels": True},
         "'labels' must be a string or a list of strings, not true"),
        ({"path": 7, "labels": "one"}, "'path' must be a string, not a number"),
        ({"url": ["http://h/a.wav"]}, "'url' must be a string, not a list"),
        ({"path": "a.wav", "split": 3}, "'split' must be a string, not a number"),
        ({"path": "a.wav", "clip_id": 3}, "'clip_id' must be a string, not a number"),
        ({"path": "a.wav", "start_seconds": "2", "end_seconds": 3},
         "'start_seconds' must be a number of seconds, not a string"),
        ({"path": "a.wav", "start_seconds": 0, "end_seconds": False},
         "'end_seconds' must be a number of seconds, not false"),
        ({"Path": "a.wav", "LABELS": 5},
         "'labels' must be a string or a list of strings, not a number"),
    ],
)  # fmt: skip
def test_jsonl_fields_of_the_wrong_type_are_malformed_lines(row: dict, reason: str):
    good = json.dumps({"path": "b.wav", "labels": ["one"], "start_seconds": 1, "end_seconds": 2})
    line = json.dumps(row)
    assert _malformed(f"{good}\n\n{line}\n", "m.jsonl") == [(3, reason, line)]


def test_jsonl_fields_of_the_right_types_still_parse():
    rows = [
        {"path": "a.wav", "labels": "one;two", "split": "eval", "clip_id": "c1"},
        {"url": "http://h/b.wav", "labels": ["two"], "start_seconds": 1, "end_seconds": 2.5},
        {"path": "c.wav", "labels": None, "start_seconds": None, "end_seconds": None},
    ]
    parsed = parse_manifest_text("\n".join(map(json.dumps, rows)), CLASSES, path="m.jsonl")
    assert parsed.malformed == []
    assert [s.labels for s in parsed.segments] == [(0, 1), (1,), ()]
    assert parsed.segments[1].end_s == 2.5


def test_malformed_lines_carry_their_text():
    text = (
        "# made by hand\n"
        "path,start_seconds,end_seconds,labels,split\n"
        "a.wav,,,one,train\n"
        "b.wav,,,one,train,extra\n"
        '"c\n.wav",abc,,one,train\n'
        "d.wav,,,one,train\n"
    )
    assert _malformed(text, "m.csv") == [
        (4, "6 fields, header has 5", "b.wav,,,one,train,extra"),
        (6, "start/end seconds not numbers (could not convert string to float: 'abc')",
         '"c\n.wav",abc,,one,train'),
    ]  # fmt: skip
    broken = '{"path": "a.wav", "labels": ["one"]'
    long = json.dumps({"path": "a.wav", "color": "x" * 300})
    assert _malformed(f"{broken}\r\n[1, 2]\n{long}\n", "m.jsonl") == [
        (1, "invalid JSON (Expecting ',' delimiter)", broken),
        (2, "expected a JSON object", "[1, 2]"),
        (3, f"unknown key 'color'; a manifest's keys are {ACCEPTED_COLUMNS}", long[:200]),
    ]


def test_a_list_with_no_usable_row_says_so_instead_of_asking_for_classes(tmp_path: Path):
    (tmp_path / "h.csv").write_text("path,labels\n")
    with pytest.raises(InputFormatError, match=r"h\.csv: the list holds no segments \(no rows\)"):
        manifest_labels(tmp_path / "h.csv")
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"path": "a.wav", "labels": [["one"]]}\n{"path": "b.wav", "labels": 5}\n')
    with pytest.raises(InputFormatError) as err:
        manifest_labels(nested)
    assert str(err.value) == (
        f"{nested}:1: every row is malformed (2), so no labels found to make a class map; the "
        "first: 'labels' must be a string or a list of strings, not a list holding a list: "
        """'{"path": "a.wav", "labels": [["one"]]}'"""
    )
    (tmp_path / "ok.jsonl").write_text(nested.read_text() + '{"path": "c.wav", "labels": "x"}\n')
    assert manifest_labels(tmp_path / "ok.jsonl") == ["x"]


def test_inspect_lists_jsonl_labels_that_are_not_strings(tmp_path: Path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "classes.csv").write_text("index,mid,display_name\n0,/m/one,one\n")
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"path": "a.wav", "labels": [["one"]]}\n{"path": "a.wav", "labels": 5}\n')
    proc = audiomill("segments", "inspect", str(nested), "--classes",
                     str(tmp_path / "classes.csv"), check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert f"{nested}:1: 'labels' must be a string or a list of strings" in proc.stdout
    assert f"{nested}:2: 'labels' must be a string or a list of strings, not a number" in (
        proc.stdout
    )
    assert "2 problem line(s)" in proc.stdout
    assert "['one']" not in proc.stdout
    proc = audiomill("segments", "inspect", str(nested), check=False)
    assert proc.returncode == 2
    assert f"{nested}:1: every row is malformed (2)" in proc.stderr
