"""A manifest row without a ``clip_id`` gets its id from its URL's path (or its file's path), so
two rows naming different sources with the same path (``a.wav?v=1`` and ``a.wav?v=2``) share an
id. Ids are not derived differently (datasets made before would get new ids for their clips);
instead the second row's duplicate error says where the id comes from and that such rows need a
``clip_id`` column. A row that repeats the same source keeps the plain duplicate error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.classmap import ClassMap
from schemas.custom_manifest import parse_manifest_text
from workflows.cli import app

CLASSES = ClassMap.from_names(["dog"])
ADVICE = "give rows naming different files with the same path a clip_id column"


@pytest.mark.parametrize(
    ("first", "second", "how"),
    [
        ("url", "url", "differ only in the query, but a row without a clip_id gets its id from "
                       "its URL's path"),
        ("url", "url2", "differ, but a row without a clip_id gets its id from its URL's path"),
        ("url", "path", "differ, but a row without a clip_id gets its id from its file's path"),
    ],
)  # fmt: skip
def test_same_path_different_source_names_where_the_id_comes_from(first, second, how):
    sources = {
        "url": ("url", "http://h/a.wav?v=1"),
        "url2": ("url", "http://other/a.wav?v=2"),
        "path": ("path", "a.wav"),
    }
    rows = [sources[first], ("url", "http://h/a.wav?v=2") if first == second else sources[second]]
    text = "path,url,labels\n" + "".join(
        f"{v if k == 'path' else ''},{v if k == 'url' else ''},dog\n" for k, v in rows
    )
    parsed = parse_manifest_text(text, CLASSES, path="m.csv")
    assert [s.line for s in parsed.segments] == [2]
    [bad] = parsed.malformed
    assert bad.line == 3
    assert bad.reason.startswith("duplicate clip id 'a.wav_0' (first on line 2): ")
    assert f"{rows[1][1]!r} and line 2's {rows[0][1]!r} {how}" in bad.reason, bad.reason
    assert bad.reason.endswith(ADVICE)


def test_a_clip_id_column_tells_them_apart():
    text = "url,labels,clip_id\nhttp://h/a.wav?v=1,dog,v1\nhttp://h/a.wav?v=2,dog,v2\n"
    parsed = parse_manifest_text(text, CLASSES, path="m.csv")
    assert [s.clip_id for s in parsed.segments] == ["v1", "v2"] and not parsed.malformed


def test_the_same_source_twice_is_left_to_the_plain_duplicate_check():
    text = "url,labels\nhttp://h/a.wav?v=1,dog\nhttp://h/a.wav?v=1,dog\n"
    parsed = parse_manifest_text(text, CLASSES, path="m.csv")
    assert [s.line for s in parsed.segments] == [2, 3] and not parsed.malformed


def test_jsonl_and_segments_inspect_show_it(tmp_path: Path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"url": "http://h/a.wav?v=1", "labels": "dog"}\n'
        '{"url": "http://h/a.wav?v=2", "labels": "dog"}\n'
    )
    (tmp_path / "classes.csv").write_text(CLASSES.to_csv_text())
    result = CliRunner().invoke(
        app, ["segments", "inspect", str(manifest), "--classes", str(tmp_path / "classes.csv")]
    )
    output = " ".join(result.output.split())
    assert "duplicate clip id 'a.wav_0' (first on line 1)" in output, output
    assert "differ only in the query" in output and ADVICE in output
