"""``audiomill segments inspect`` (``pipelines.segment_report.inspect_segments``): counts,
per-class tallies and every bad line with its exact line number and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.segment_report import SegmentInspection, inspect_segments

CLASSES = (
    'index,mid,display_name\n0,/m/a,"Speech"\n1,/m/b,"Male speech, man speaking"\n2,/m/c,"Dog"\n'
)

AUDIOSET = (
    "# Segments csv created Sun Mar  5 10:54:31 2017\n"  # 1
    "# num_ytids=9, num_segs=10, num_unique_labels=3, num_positive_labels=14\n"  # 2
    "# YTID, start_seconds, end_seconds, positive_labels\n"  # 3
    '--PJHxphWEs, 30.000, 40.000, "/m/a,/m/b"\n'  # 4 good
    '-x_Abc123de, 0.000, 10.000, "/m/c"\n'  # 5 good
    "bad_row0000, 1.0, 2.0\n"  # 6 three fields
    '--PJHxphWEs, 30.000, 40.000, "/m/c"\n'  # 7 duplicate of 4
    'abcdefghijk, 20.000, 10.000, "/m/a"\n'  # 8 start > end
    'unknownlab1, 0.000, 10.000, "/m/a,/m/zzz,/m/yyy"\n'  # 9 unknown labels
    "\n"  # 10 blank
    'longsegment, 0.000, 120.000, "/m/c"\n'  # 11 longer than 60 s
    '--exec=rm, 0, 10, "/m/a"\n'  # 12 hostile id
    'negstart111, -5.0, 5.0, "/m/a"\n'  # 13 negative start
    'notnumber11, abc, 10, "/m/a"\n'  # 14 not a number
)

ORDER = "expect_column_pair_values_a_to_be_greater_than_b:end_s,start_s"
AUDIOSET_PROBLEMS = [
    (6, "expected 4 fields (YTID, start, end, labels), found 3"),
    (7, "duplicate clip id (first on line 4)"),
    (8, f"end 10 s is not after start 20 s [{ORDER}]"),
    (
        9,
        "labels not in the class map: '/m/zzz', '/m/yyy' "
        "[expect_column_values_to_be_between:num_unknown_labels]",
    ),
    (
        11,
        "the segment is 120 s long, longer than the 60 s allowed "
        "[expect_column_values_to_be_between:duration_s]",
    ),
    (
        12,
        "clip id '--exec=rm_0' is not 1 to 200 letters, digits, '_', '.' or '-' "
        "[expect_column_values_to_match_regex:clip_id]",
    ),
    (13, "start -5 s is negative [expect_column_values_to_be_between:start_s]"),
    (14, "start/end not numbers: 'abc', '10'"),
]


@pytest.fixture
def classes(tmp_path: Path) -> Path:
    path = tmp_path / "classes.csv"
    path.write_text(CLASSES)
    return path


def _write(tmp_path: Path, name: str, text: str, newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def _touch(root: Path, *names: str) -> None:
    """Make the (empty) files a manifest names: inspect reports the ones that are missing."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_inspect_audioset_csv(tmp_path, classes, newline):
    seg = _write(tmp_path, "seg.csv", AUDIOSET, newline)
    report = inspect_segments(str(seg), str(classes))
    assert isinstance(report, SegmentInspection)
    assert report.path == str(seg)
    assert report.problems == AUDIOSET_PROBLEMS
    assert report.header == {
        "num_ytids": 9,
        "num_segs": 10,
        "num_unique_labels": 3,
        "num_positive_labels": 14,
    }
    # parsed segments (lines 4, 5, 7, 8, 9, 11, 12, 13), the duplicate included
    assert report.segments == 8
    assert report.unique_sources == 7
    assert report.positive_labels == 11  # unknown labels count too
    assert report.num_classes == 3
    assert report.classes_used == 3
    assert report.per_class == {"Speech": 5, "Dog": 3, "Male speech, man speaking": 1}
    assert list(report.per_class) == ["Speech", "Dog", "Male speech, man speaking"]
    assert report.splits == {"train": 8}


def test_inspect_audioset_max_duration(tmp_path, classes):
    seg = _write(
        tmp_path,
        "seg.csv",
        '--PJHxphWEs, 30.000, 40.000, "/m/a"\n-x_Abc123de, 0.000, 4.000, "/m/c"\n',
    )
    assert inspect_segments(str(seg), str(classes)).problems == []
    report = inspect_segments(str(seg), str(classes), max_duration_s=5.0)
    assert report.problems == [
        (
            1,
            "the segment is 10 s long, longer than the 5 s allowed "
            "[expect_column_values_to_be_between:duration_s]",
        )
    ]
    assert report.header == {}


def test_inspect_audioset_without_classes_is_refused(tmp_path):
    seg = _write(tmp_path, "seg.csv", AUDIOSET)
    with pytest.raises(ValueError, match="needs --classes"):
        inspect_segments(str(seg))


def test_inspect_clean_list_has_no_problems(tmp_path, classes):
    seg = _write(tmp_path, "seg.csv", "".join(AUDIOSET.splitlines(keepends=True)[:5]))
    report = inspect_segments(str(seg), str(classes))
    assert report.problems == []
    assert (report.segments, report.positive_labels, report.classes_used) == (2, 3, 3)


def test_inspect_real_audioset_head(tmp_path, audioset_dir):
    lines = (audioset_dir / "balanced_train_segments.csv").read_text().splitlines(True)[:43]
    seg = _write(tmp_path, "head.csv", "".join(lines))
    report = inspect_segments(str(seg), str(audioset_dir / "class_labels_indices.csv"))
    assert report.problems == []
    assert report.segments == 40
    assert report.num_classes == 527
    assert report.header["num_segs"] == 22160  # the header describes the whole file
    assert sum(report.per_class.values()) == report.positive_labels
    assert report.notes == [
        "the header says 22160 segments, the list has 40 rows: cut short or edited?"
    ]


MANIFEST = (
    "path,start_seconds,end_seconds,labels,split\n"  # 1
    "dogs/a.wav,,,Dog,\n"  # 2 whole file
    'b.wav,0,5,"Speech; Male speech, man speaking",valid\n'  # 3
    "c.wav,1,,Dog,\n"  # 4 only a start
    "\n"  # 5 blank
    "d.wav,0,5,Cat;dog,\n"  # 6 Cat is no class; dog matches Dog
    "b.wav,0,5,Dog,\n"  # 7 same clip id as line 3
    "e.wav,0,5,Dog,valid,extra\n"  # 8 too many fields
    "f.wav,10,0,Dog,\n"  # 9 end before start
)


def test_inspect_csv_manifest(tmp_path, classes):
    _touch(tmp_path, "dogs/a.wav", "b.wav", "c.wav", "d.wav", "e.wav", "f.wav")
    man = _write(tmp_path, "m.csv", MANIFEST)
    report = inspect_segments(str(man), str(classes))
    assert report.problems == [
        (4, "give both start_seconds and end_seconds, or neither"),
        (
            6,
            "labels not in the class map: 'Cat' "
            "[expect_column_values_to_be_between:num_unknown_labels]",
        ),
        (7, "duplicate clip id (first on line 3)"),
        (8, "6 fields, header has 5"),
        (9, f"end 0 s is not after start 10 s [{ORDER}]"),
    ]
    assert report.segments == 5  # lines 2, 3, 6, 7, 9
    assert report.unique_sources == 4
    assert report.positive_labels == 7
    assert report.per_class == {"Dog": 4, "Speech": 1, "Male speech, man speaking": 1}
    assert report.splits == {"train": 4, "valid": 1}
    assert report.header == {}


def test_inspect_manifest_builds_its_class_map(tmp_path):
    lines = [
        json.dumps({"path": "a.wav", "labels": ["dog", "cat"]}),
        json.dumps(
            {"url": "http://h/x/b.wav", "start_seconds": 0, "end_seconds": 90, "labels": "dog"}
        ),
        "not json",
        json.dumps({"path": "c.wav", "labels": ["bird"], "split": "eval"}),
        "[1, 2]",
        json.dumps({"path": "d.wav", "url": "http://h/d.wav"}),
    ]
    man = _write(tmp_path, "m.jsonl", "\n".join(lines) + "\n")
    _touch(tmp_path, "a.wav", "c.wav", "d.wav")
    report = inspect_segments(str(man))
    assert report.problems == [
        (
            2,
            "the segment is 90 s long, longer than the 60 s allowed "
            "[expect_column_values_to_be_between:duration_s]",
        ),
        (3, "invalid JSON (Expecting value)"),
        (5, "expected a JSON object"),
        (6, "exactly one of 'path' or 'url' must be set"),
    ]
    assert report.num_classes == 3  # bird, cat, dog: the labels the manifest uses
    assert report.per_class == {"dog": 2, "cat": 1, "bird": 1}
    assert report.splits == {"train": 2, "eval": 1}
    assert (report.segments, report.unique_sources, report.positive_labels) == (3, 3, 4)


def test_inspect_to_dict(tmp_path, classes):
    seg = _write(tmp_path, "seg.csv", AUDIOSET)
    out = inspect_segments(str(seg), str(classes)).to_dict()
    assert out["problems"][0] == {
        "line": 6,
        "reason": "expected 4 fields (YTID, start, end, labels), found 3",
    }
    assert [p["line"] for p in out["problems"]] == [n for n, _ in AUDIOSET_PROBLEMS]
    assert out["segments"] == 8 and out["path"] == str(seg)
    assert json.loads(json.dumps(out)) == out


def test_inspect_a_list_without_segments_is_a_problem(tmp_path, classes):
    for name, text in (("empty.csv", ""), ("header.csv", "path,labels\n"), ("e.jsonl", "\n")):
        report = inspect_segments(str(_write(tmp_path, name, text)), str(classes))
        assert report.problems == [(1, "the list holds no segments")], name
        assert report.segments == 0


def test_manifest_columns_in_any_case(tmp_path, classes):
    _touch(tmp_path, "a.wav")
    man = _write(tmp_path, "m.csv", "Path,START_SECONDS,End_Seconds,Labels\na.wav,0,5,Dog\n")
    report = inspect_segments(str(man), str(classes))
    assert (report.problems, report.segments, report.per_class) == ([], 1, {"Dog": 1})
    man = _write(tmp_path, "m.jsonl", '{"URL": "http://h/a.wav", "Labels": ["Dog"]}\n')
    assert inspect_segments(str(man), str(classes)).per_class == {"Dog": 1}


def test_inspect_names_the_local_files_ingest_would_not_find(tmp_path, classes):
    _touch(tmp_path, "lists/here.wav", "audio/there.wav", "audio/sub/deep.wav")
    rows = "path,labels\nhere.wav,Dog\nmissing.wav,Dog\n../audio/there.wav,Dog\n"
    man = _write(tmp_path, "lists/m.csv", rows + f"{tmp_path / 'audio' / 'there.wav'},Dog\n")
    report = inspect_segments(str(man), str(classes))
    assert report.problems == [
        (3, f"no such file: {tmp_path / 'lists' / 'missing.wav'}"),
        (
            4,
            f"path '../audio/there.wav' is outside the manifest's folder {tmp_path / 'lists'}: "
            "relative paths must stay inside it (give an absolute path, or an --audio-root that "
            "holds the file)",
        ),
    ]
    man = _write(tmp_path, "lists/r.csv", "path,labels\nsub/deep.wav,Dog\nsub/gone.wav,Dog\n")
    report = inspect_segments(str(man), str(classes), audio_root=str(tmp_path / "audio"))
    assert report.problems == [(3, f"no such file: {tmp_path / 'audio' / 'sub' / 'gone.wav'}")]
