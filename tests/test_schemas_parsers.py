"""Parsers for AudioSet metadata and custom manifests, on the real files and on hostile input."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.audioset import ancestors, load_ontology, load_segments, parse_segments_text
from schemas.classmap import ClassMap
from schemas.custom_manifest import load_manifest, manifest_labels, parse_manifest_text
from schemas.errors import InputFormatError
from schemas.segments import (
    CLIP_ID_PATTERN,
    audioset_clip_id,
    sanitize_clip_id,
    segments_to_table,
    split_name_problem,
    table_to_segments,
)


def test_real_audioset_files_parse_exactly(audioset_dir, audioset_classes):
    result = load_segments(audioset_dir / "balanced_train_segments.csv", audioset_classes)
    assert len(audioset_classes) == 527
    assert len(result.segments) == 22160
    assert result.malformed == []
    assert sum(len(s.labels) for s in result.segments) == 52882
    assert all(not s.unknown_labels for s in result.segments)
    assert result.header == {
        "num_ytids": 22160,
        "num_segs": 22160,
        "num_unique_labels": 527,
        "num_positive_labels": 52882,
    }
    assert len({s.clip_id for s in result.segments}) == 22160
    first = result.segments[0]
    assert (first.clip_id, first.start_s, first.end_s, first.line) == (
        "--PJHxphWEs_30000",
        30.0,
        40.0,
        4,
    )
    assert first.label_mids == ("/m/09x0r", "/t/dd00088")
    assert {i for s in result.segments for i in s.labels} == set(range(527))


def test_real_ontology(audioset_dir, audioset_classes):
    nodes = load_ontology(audioset_dir / "ontology.json")
    assert len(nodes) == 632
    assert nodes["/m/09x0r"].name == "Speech"
    assert "/m/0dgw9r" in ancestors(nodes, "/m/09x0r")
    assert all(m in nodes for m in audioset_classes.mids)


def test_classmap_roundtrip_and_lookup(audioset_classes):
    again = ClassMap.from_csv_text(audioset_classes.to_csv_text())
    assert again.sha256 == audioset_classes.sha256
    assert audioset_classes.resolve("male SPEECH, man speaking").index == 1
    assert audioset_classes.resolve("/m/09x0r").index == 0
    known, unknown = audioset_classes.split_labels("Male speech, man speaking,Music;nope")
    assert [c.index for c in known] == [1, 137]
    assert unknown == ["nope"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("idx,mid,name\n0,/m/x,X\n", "header"),
        ("index,mid,display_name\n1,/m/x,X\n", "out of order"),
        ("index,mid,display_name\n0,/m/x\n", "3 fields"),
        ("index,mid,display_name\n", "no classes"),
        ("index,mid,display_name\n0,/m/x,X\n1,/m/x,Y\n", "duplicate"),
    ],
)
def test_classmap_rejects_bad_files(text, reason):
    with pytest.raises(InputFormatError, match=reason):
        ClassMap.from_csv_text(text, "c.csv")


def test_segments_malformed_lines_have_numbers_and_reasons(audioset_classes):
    text = (
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'good_id_001, 0.000, 10.000, "/m/09x0r"\n'
        "only, two\n"
        'bad_time, abc, 10, "/m/09x0r"\n'
        'inf_time, inf, 10, "/m/09x0r"\n'
        ', 1, 2, "/m/09x0r"\n'
        "no_labels, 1, 2, \n"
        '--exec=touch x, 5, 1, "/m/nope,/m/09x0r"\n'
    )
    r = parse_segments_text(text, audioset_classes, path="s.csv")
    assert [s.source for s in r.segments] == ["good_id_001", "--exec=touch x"]
    assert [(m.line, m.reason.split()[0]) for m in r.malformed] == [
        (3, "expected"), (4, "start/end"), (5, "start/end"), (6, "empty"), (7, "no"),
    ]  # fmt: skip
    hostile = r.segments[1]
    assert hostile.unknown_labels == ("/m/nope",)
    assert hostile.labels == (0,)
    assert not CLIP_ID_PATTERN.match(hostile.clip_id)
    assert "s.csv:3" in str(r.malformed[0])


def test_audioset_clip_id_keeps_dashes_and_underscores():
    assert audioset_clip_id("-_a_b-", 30.0) == "-_a_b-_30000"
    assert audioset_clip_id("x", 1.2345) == "x_1234"


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "$(reboot)", "a b/ç.wav", "x" * 500, ".hidden", "--exec=1"]
)
def test_sanitized_clip_ids_are_safe_and_distinct(name):
    cid = sanitize_clip_id(name, 1.5)
    assert CLIP_ID_PATTERN.match(cid), cid
    assert cid.endswith("_1500")
    assert sanitize_clip_id(name + "x") != cid


def test_custom_manifest_csv(audioset_classes):
    text = (
        "path,start_seconds,end_seconds,labels,split\n"
        'a/b c.wav,1,3,"Speech;Dog",eval\n'
        'x.flac,,,"Male speech, man speaking,Music",\n'
        "y.wav,1,,Dog,\n"
        ",,,Dog,\n"
        "z.wav,1,2,Unknown thing,\n"
        "w.wav,a,2,Dog,\n"
        "too,many,fields,here,x,y\n"
    )
    r = parse_manifest_text(text, audioset_classes, path="m.csv", split="train")
    assert [s.source for s in r.segments] == ["a/b c.wav", "x.flac", "z.wav"]
    a, x, z = r.segments
    assert (a.split, a.start_s, a.end_s, a.labels) == ("eval", 1.0, 3.0, (0, 74))
    assert (x.split, x.start_s, x.labels) == ("train", None, (1, 137))
    assert z.unknown_labels == ("Unknown thing",)
    assert [m.line for m in r.malformed] == [4, 5, 7, 8]
    assert "both" in r.malformed[0].reason
    assert "exactly one" in r.malformed[1].reason


def test_custom_manifest_jsonl(tmp_path, audioset_classes):
    path = tmp_path / "m.jsonl"
    rows = [
        {"url": "http://h/a.wav", "labels": ["Dog", "/m/09x0r"], "clip_id": "my_clip"},
        {"path": "/abs/b.ogg", "start_seconds": 2, "end_seconds": 4},
        "not an object",
        {"path": "c.wav", "color": "red"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    r = load_manifest(path, audioset_classes)
    assert [(s.clip_id, s.source_kind) for s in r.segments] == [
        ("my_clip", "url"), ("abs_b.ogg-" + r.segments[1].clip_id.split("-")[1], "path"),
    ]  # fmt: skip
    assert r.segments[0].labels == (74, 0)
    assert [(m.line, m.reason.split()[0]) for m in r.malformed] == [
        (3, "expected"), (4, "unknown"), (5, "invalid"),
    ]  # fmt: skip
    assert manifest_labels(path) == ["/m/09x0r", "Dog"]


def test_comments_and_blank_lines_before_a_manifest_header_are_skipped(tmp_path, audioset_classes):
    text = "# my clips\n\n# made by hand\npath,labels\na.wav,Dog\nb.wav,Dog,x\n"
    r = parse_manifest_text(text, audioset_classes, path="m.csv")
    assert [(s.source, s.line) for s in r.segments] == [("a.wav", 5)]
    assert [m.line for m in r.malformed] == [6]
    (tmp_path / "m.csv").write_text(text)
    assert manifest_labels(tmp_path / "m.csv") == ["Dog"]
    with pytest.raises(InputFormatError, match=r"m\.csv:3: the header names 'file'"):
        parse_manifest_text("# x\n\nfile,labels\na.wav,Dog\n", audioset_classes, path="m.csv")


def test_manifest_needs_path_or_url(audioset_classes):
    with pytest.raises(InputFormatError, match="'path' or 'url'"):
        parse_manifest_text("file,labels\na.wav,Dog\n", audioset_classes, path="m.csv")


@pytest.mark.parametrize("name", ["train", "fold1", "eval_2024", "a.b-c", "X" * 64])
def test_split_names_that_name_directories(name):
    assert split_name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", "../evil", "a/b", ".staging", "-x", "x\n", "x y", "é", "X" * 65, "a\\b"]
)
def test_split_names_refused(name):
    assert "is not a valid split name" in split_name_problem(name)


def test_manifest_rows_with_unsafe_splits_are_malformed_lines(audioset_classes):
    text = "path,labels,split\na.wav,Dog,train\nb.wav,Dog,../../evil\nc.wav,Dog,.staging\n"
    parsed = parse_manifest_text(text, audioset_classes, path="m.csv")
    assert [s.split for s in parsed.segments] == ["train"]
    assert [(m.line, m.reason[:25]) for m in parsed.malformed] == [
        (3, "split '../../evil' is not"),
        (4, "split '.staging' is not a"),
    ]


def test_segments_table_roundtrip(audioset_dir, audioset_classes):
    segs = load_segments(audioset_dir / "balanced_train_segments.csv", audioset_classes).segments
    table = segments_to_table(segs[:500])
    assert table.schema.field("labels").type == pa.list_(pa.int32())
    assert table_to_segments(table) == segs[:500]


_ytid = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N"], include_characters="-_"),
    min_size=1,
    max_size=15,
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            _ytid,
            st.floats(0, 1e5, allow_nan=False),
            st.floats(0, 1e5, allow_nan=False),
            st.lists(st.integers(0, 526), min_size=1, max_size=5, unique=True),
        ),
        max_size=20,
    ),
    spaces=st.sampled_from(["", " ", "  "]),
)
def test_segment_csv_roundtrip_property(rows, spaces, audioset_classes):
    lines = ["# YTID, start_seconds, end_seconds, positive_labels"]
    for ytid, start, end, labels in rows:
        mids = ",".join(audioset_classes[i].mid for i in labels)
        lines.append(f'{ytid},{spaces}{start:.3f},{spaces}{end:.3f},{spaces}"{mids}"')
    r = parse_segments_text("\n".join(lines), audioset_classes)
    assert r.malformed == []
    assert len(r.segments) == len(rows)
    for seg, (ytid, start, end, labels) in zip(r.segments, rows, strict=True):
        assert seg.source == ytid
        assert seg.start_s == pytest.approx(round(start, 3))
        assert seg.end_s == pytest.approx(round(end, 3))
        assert seg.labels == tuple(labels)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=60))
def test_segment_parser_never_crashes(text, audioset_classes):
    r = parse_segments_text(text, audioset_classes)
    assert len(r.segments) + len(r.malformed) <= text.count("\n") + 1
