"""Where segments' media come from (``pipelines.sources``) and loading segment lists of any
kind (``pipelines.segment_loading``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.segment_loading import (
    class_map_from_list,
    folder_labels,
    is_directory,
    load_segment_list,
    looks_like_manifest,
    scan_folder,
)
from pipelines.sources import (
    ResolvedSource,
    SourceConfig,
    index_audio_root,
    list_folder,
    resolve,
)
from schemas.classmap import ClassInfo, ClassMap
from schemas.errors import InputFormatError
from schemas.failures import ClipFailure, FailureReason
from schemas.segments import Segment, sanitize_clip_id
from tests.media import write_media

YTID = "-x_Abc123de"  # 11 chars, starts with '-', contains '_'


def _yt(ytid: str = YTID, start: float = 30.0, end: float = 40.0) -> Segment:
    return Segment(
        clip_id=f"{ytid}_{round(start * 1000)}",
        source=ytid,
        source_kind="youtube",
        start_s=start,
        end_s=end,
        labels=(0,),
    )


def _path(src: str, kind: str = "path") -> Segment:
    return Segment(
        clip_id=sanitize_clip_id(src), source=src, source_kind=kind, start_s=None, end_s=None
    )


def _failure(segment: Segment, cfg: SourceConfig, index=None) -> ClipFailure:
    with pytest.raises(ClipFailure) as info:
        resolve(segment, cfg, index)
    return info.value


# --------------------------------------------------------------------------- youtube


@pytest.mark.parametrize("source", ["youtube", "auto"])
def test_resolve_youtube(source):
    got = resolve(_yt(), SourceConfig(source=source), None)
    assert got == ResolvedSource(f"https://www.youtube.com/watch?v={YTID}", False)


def test_resolve_youtube_ignores_precut():
    assert resolve(_yt(), SourceConfig(source="youtube", precut=True), None).precut is False


@pytest.mark.parametrize(
    "ytid", ["--exec=rm -rf", "../../etc/pw", "abc", "abcdefghijkl", "abc def ghi", "a;b&c|d$e`f"]
)
def test_resolve_youtube_rejects_hostile_ids(ytid):
    exc = _failure(_yt(ytid), SourceConfig(source="youtube"))
    assert exc.reason is FailureReason.VALIDATION
    assert "not a YouTube id" in exc.detail
    assert not exc.transient


# --------------------------------------------------------------------------- http templates


def test_resolve_http_template_fields():
    cfg = SourceConfig(
        source="http", url_template="http://mirror/{ytid}/{start}-{end}/{clip_id}.flac"
    )
    got = resolve(_yt(start=30.0, end=40.5), cfg, None)
    assert got == ResolvedSource(f"http://mirror/{YTID}/30-40.5/{YTID}_30000.flac", False)


def test_resolve_auto_prefers_template_over_audio_root():
    cfg = SourceConfig(url_template="https://m/{source}.wav", audio_root="/data", precut=True)
    assert resolve(_yt(), cfg, {}) == ResolvedSource(f"https://m/{YTID}.wav", True)


@pytest.mark.parametrize(
    ("ytid", "quoted"),
    [
        ("../../x", "..%2F..%2Fx"),
        ("..", "%2E%2E"),
        ("--exec=rm -rf /", "--exec%3Drm%20-rf%20%2F"),
        ("a?b#c&d", "a%3Fb%23c%26d"),
        ("x@evil.com:80", "x%40evil.com%3A80"),
    ],
)
def test_resolve_http_quotes_hostile_ids(ytid, quoted):
    cfg = SourceConfig(source="http", url_template="http://mirror/{ytid}.wav?x=1")
    got = resolve(_yt(ytid), cfg, None)
    assert got.location == f"http://mirror/{quoted}.wav?x=1"
    assert got.location.startswith("http://mirror/")
    assert got.location.count("/") == 3 and got.location.count("?") == 1


def test_resolve_http_without_template_is_an_error():
    with pytest.raises(ValueError, match="--url-template"):
        resolve(_yt(), SourceConfig(source="http"), None)


def test_resolve_http_unknown_placeholder_is_an_error():
    with pytest.raises(ValueError, match="unknown placeholder"):
        resolve(_yt(), SourceConfig(source="http", url_template="http://m/{video}.wav"), None)


# --------------------------------------------------------------------------- local index


def test_resolve_local_lookup_order():
    seg = _yt()
    full = {
        seg.clip_id: "/r/clip.wav",
        f"Y{YTID}": "/r/Ypanns.wav",
        YTID: "/r/video.webm",
    }
    cfg = SourceConfig(source="local", audio_root="/r")
    assert resolve(seg, cfg, full) == ResolvedSource("/r/clip.wav", True)
    del full[seg.clip_id]
    assert resolve(seg, cfg, full) == ResolvedSource("/r/Ypanns.wav", True)
    del full[f"Y{YTID}"]
    assert resolve(seg, cfg, full) == ResolvedSource("/r/video.webm", False)
    assert resolve(seg, SourceConfig(source="local", audio_root="/r", precut=True), full) == (
        ResolvedSource("/r/video.webm", True)
    )


def test_resolve_auto_with_audio_root_is_local():
    cfg = SourceConfig(audio_root="/r")
    assert resolve(_yt(), cfg, {YTID: "/r/v.m4a"}) == ResolvedSource("/r/v.m4a", False)


def test_resolve_local_not_found_names_every_candidate():
    seg = _yt()
    exc = _failure(seg, SourceConfig(source="local", audio_root="/data/wavs"), {"other": "/x"})
    assert exc.reason is FailureReason.NOT_FOUND
    assert not exc.transient
    assert exc.detail == (f"no file named {YTID}_30000.*, Y{YTID}.* or {YTID}.* under /data/wavs")


def test_resolve_local_without_index_is_an_error():
    with pytest.raises(ValueError, match="--audio-root"):
        resolve(_yt(), SourceConfig(source="local"), None)


# --------------------------------------------------------------------------- manifest paths


def test_resolve_manifest_url_kept():
    seg = _path("https://host/a b.wav?x=1", kind="url")
    assert resolve(seg, SourceConfig(precut=True), None) == ResolvedSource(
        "https://host/a b.wav?x=1", True
    )


def test_resolve_relative_path_against_audio_root(tmp_path):
    cfg = SourceConfig(audio_root=str(tmp_path / "root"), manifest_dir=str(tmp_path / "man"))
    got = resolve(_path("dogs/a.wav"), cfg, None)
    assert got == ResolvedSource(str(tmp_path / "root" / "dogs" / "a.wav"), False)
    # '..' that stays inside the root is fine
    got = resolve(_path("dogs/../cats/b.wav"), cfg, None)
    assert got.location == str(tmp_path / "root" / "cats" / "b.wav")


def test_resolve_relative_path_against_manifest_dir(tmp_path):
    cfg = SourceConfig(manifest_dir=str(tmp_path / "man"))
    assert resolve(_path("x/y.flac"), cfg, None).location == str(tmp_path / "man" / "x" / "y.flac")


def test_resolve_relative_path_without_base_is_absolute_in_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve(_path("x/y.flac"), SourceConfig(), None).location == str(tmp_path / "x/y.flac")


@pytest.mark.parametrize("base", ["audio_root", "manifest_dir"])
def test_resolve_against_a_relative_folder_is_absolute(tmp_path, monkeypatch, base):
    """The ledger records the location as the clip's source: a later run from another working
    directory must read it as the same file."""
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    got = resolve(_path("dogs/a.wav"), SourceConfig(**{base: "../aud"}), None)
    assert got.location == str(tmp_path / "aud" / "dogs" / "a.wav")


@pytest.mark.parametrize(
    ("base", "where"), [("audio_root", "--audio-root"), ("manifest_dir", "the manifest's folder")]
)
def test_a_path_leaving_a_relative_folder_names_it_absolute(tmp_path, monkeypatch, base, where):
    monkeypatch.chdir(tmp_path)
    exc = _failure(_path("../x.wav"), SourceConfig(**{base: "data/audio"}))
    assert f"outside {where} {tmp_path / 'data' / 'audio'}: " in exc.detail


@pytest.mark.parametrize(
    "src", ["../secret.wav", "a/../../secret.wav", "../root2/x.wav", "a/b/../../../x.wav"]
)
@pytest.mark.parametrize("base", ["audio_root", "manifest_dir"])
def test_resolve_relative_path_escaping_the_root_is_refused(tmp_path, src, base):
    cfg = SourceConfig(**{base: str(tmp_path / "root")})
    exc = _failure(_path(src), cfg)
    assert exc.reason is FailureReason.VALIDATION
    where = "--audio-root" if base == "audio_root" else "the manifest's folder"
    assert f"path {src!r} is outside {where} {tmp_path / 'root'}: relative paths" in exc.detail


def test_resolve_relative_path_escaping_a_relative_root_is_refused():
    exc = _failure(_path("../x.wav"), SourceConfig(audio_root="data/audio"))
    assert exc.reason is FailureReason.VALIDATION


def test_resolve_absolute_and_remote_paths_kept(tmp_path):
    cfg = SourceConfig(audio_root=str(tmp_path / "root"), precut=True)
    assert resolve(_path("/elsewhere/a.wav"), cfg, None) == ResolvedSource("/elsewhere/a.wav", True)
    assert resolve(_path("s3://bucket/k/a.wav"), cfg, None) == ResolvedSource(
        "s3://bucket/k/a.wav", True
    )


def test_resolve_relative_path_under_remote_root():
    cfg = SourceConfig(audio_root="s3://bucket/audio/")
    assert resolve(_path("dogs/a.wav"), cfg, None).location == "s3://bucket/audio/dogs/a.wav"
    exc = _failure(_path("dogs/../../other/a.wav"), cfg)
    assert exc.reason is FailureReason.VALIDATION


# --------------------------------------------------------------------------- index_audio_root


def test_index_audio_root_mixed_folder(tmp_path):
    root = tmp_path / "root"
    write_media(root / "a.wav", 0.05, 8000)
    write_media(root / "a.flac", 0.05, 8000)  # same stem: the first name in sorted order wins
    write_media(root / "Y-x_Abc123de.mp3", 0.1, 8000)
    write_media(root / "UPPER.WAV", 0.05, 8000)
    write_media(root / "sub" / "nested.wav", 0.05, 8000)  # only files directly under root
    (root / "notes.txt").write_text("not audio")
    (root / "README").write_text("no extension")
    (root / "clip.m4a").write_bytes(b"\0" * 16)  # extension decides, not content
    (root / "video.webm").write_bytes(b"\0" * 16)
    assert index_audio_root(str(root)) == {
        "a": str(root / "a.flac"),
        "Y-x_Abc123de": str(root / "Y-x_Abc123de.mp3"),
        "UPPER": str(root / "UPPER.WAV"),
        "clip": str(root / "clip.m4a"),
        "video": str(root / "video.webm"),
    }


def test_index_audio_root_skips_directories_named_like_audio(tmp_path):
    root = tmp_path / "root"
    (root / f"{YTID}_30000.wav").mkdir(parents=True)  # a folder, not a clip
    write_media(root / f"Y{YTID}.wav", 0.05, 8000)
    index = index_audio_root(str(root))
    assert index == {f"Y{YTID}": str(root / f"Y{YTID}.wav")}


def test_index_audio_root_feeds_resolve(tmp_path):
    root = tmp_path / "root"
    write_media(root / f"Y{YTID}.wav", 0.05, 8000)
    index = index_audio_root(str(root))
    got = resolve(_yt(), SourceConfig(audio_root=str(root)), index)
    assert got == ResolvedSource(str(root / f"Y{YTID}.wav"), True)


def test_index_audio_root_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    assert index_audio_root(str(tmp_path / "empty")) == {}


# --------------------------------------------------------------------------- looks_like_manifest


AUDIOSET_TEXT = (
    "# Segments csv created Sun Mar  5 10:54:31 2017\n"
    "# num_ytids=2, num_segs=2, num_unique_labels=2, num_positive_labels=3\n"
    "# YTID, start_seconds, end_seconds, positive_labels\n"
    '--PJHxphWEs, 30.000, 40.000, "/m/a,/m/b"\n'
    '-x_Abc123de, 0.000, 10.000, "/m/b"\n'
)


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        (AUDIOSET_TEXT, "seg.csv", False),
        ("path,labels\na.wav,dog\n", "m.csv", True),
        ("url, start_seconds, end_seconds\nhttp://h/a.wav,0,1\n", "m.csv", True),
        ("\n# comment\n  labels , path \n", "m.csv", True),
        ('{"path": "a.wav"}\n', "m.jsonl", True),
        ("", "m.ndjson", True),
        ("", "m.csv", False),
        ("# only a comment\n", "m.csv", False),
        ("paths,urls\nx,y\n", "m.csv", False),
    ],
)
def test_looks_like_manifest(text, path, expected):
    assert looks_like_manifest(text, path) is expected


def test_quoted_manifest_header_is_a_manifest(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text('"path","labels"\n"a.wav","dog"\n')
    assert looks_like_manifest(m.read_text(), str(m))
    result = load_segment_list(str(m), ClassMap.from_names(["dog"]), "train")
    assert [s.source for s in result.segments] == ["a.wav"]


# --------------------------------------------------------------------------- folders


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """dogs/, cats/ and an unknown class folder, a top-level file and a nested folder; hidden
    files and folders, which are not read, under a hidden folder of its own."""
    root = tmp_path / ".work" / "audio"
    write_media(root / "dogs" / "bark 1.wav", 0.05, 8000)
    write_media(root / "dogs" / "bark2.flac", 0.05, 8000)
    write_media(root / "Cats" / "meow.ogg", 0.1, 8000)
    write_media(root / "birds" / "tweet.aiff", 0.05, 8000)
    write_media(root / "top.wav", 0.05, 8000)
    write_media(root / "dogs" / "puppies" / "yip.wav", 0.05, 8000)
    (root / "dogs" / "notes.txt").write_text("not audio")
    write_media(root / ".hidden" / "x.wav", 0.05, 8000)
    write_media(root / "dogs" / ".trash" / "old.wav", 0.05, 8000)
    write_media(root / "dogs" / "._bark 1.wav", 0.05, 8000)
    return root


def test_folder_labels(folder):
    assert folder_labels(str(folder)) == ["Cats", "birds", "dogs"]


def test_scan_folder_labels_from_class_folder(folder):
    cmap = ClassMap([ClassInfo(0, "/m/cat", "cats"), ClassInfo(1, "/m/dog", "dogs")])
    result = scan_folder(str(folder), cmap, "custom")
    by_rel = {os.path.relpath(s.source, folder): s for s in result.segments}
    assert sorted(by_rel) == sorted(
        [
            "Cats/meow.ogg",
            "birds/tweet.aiff",
            "dogs/bark 1.wav",
            "dogs/bark2.flac",
            "dogs/puppies/yip.wav",
            "top.wav",
        ]
    )
    assert by_rel["dogs/bark2.flac"].labels == (1,)
    assert by_rel["dogs/bark2.flac"].label_mids == ("/m/dog",)
    assert by_rel["Cats/meow.ogg"].labels == (0,)  # display names match case-insensitively
    assert by_rel["birds/tweet.aiff"].labels == ()  # not a class
    assert by_rel["top.wav"].labels == ()  # no parent folder
    assert by_rel["dogs/puppies/yip.wav"].labels == (1,)  # the folder under the root decides
    for rel, seg in by_rel.items():
        assert seg.source_kind == "path"
        assert seg.start_s is None and seg.end_s is None
        assert seg.split == "custom"
        assert seg.clip_id == sanitize_clip_id(rel)
        assert os.path.isabs(seg.source) and os.path.exists(seg.source)
        assert (seg.origin, seg.line) == (seg.source, 0)  # named by its file, not its place
    assert len({s.clip_id for s in result.segments}) == 6
    assert by_rel["dogs/bark 1.wav"].clip_id != "dogs_bark_1.wav_0"  # changed: digest appended
    assert result.malformed == []


def test_scan_folder_by_mid_folder_names(tmp_path):
    write_media(tmp_path / "a" / "x.wav", 0.05, 8000)
    cmap = ClassMap([ClassInfo(0, "a", "Alpha")])
    (seg,) = scan_folder(str(tmp_path), cmap, "train").segments
    assert seg.labels == (0,)


# --------------------------------------------------------------------------- class maps


def test_class_map_from_folder(folder):
    cmap = class_map_from_list(str(folder))
    assert cmap.display_names == ["Cats", "birds", "dogs"]
    assert cmap.mids == cmap.display_names


def test_class_map_from_csv_manifest(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text(
        'path,labels,start_seconds,end_seconds\na.wav,dog;cat,,\nb.wav,"bird, dog",0,1\nc.wav,,,\n'
    )
    assert class_map_from_list(str(m)).display_names == ["bird", "cat", "dog"]


def test_class_map_from_jsonl_manifest(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(
        json.dumps({"path": "a.wav", "labels": ["Speech", "Music"]})
        + "\n"
        + json.dumps({"url": "http://h/b.wav", "labels": "Dog"})
        + "\n"
    )
    assert class_map_from_list(str(m)).display_names == ["Dog", "Music", "Speech"]


def test_class_map_from_audioset_list_needs_classes(tmp_path):
    seg = tmp_path / "seg.csv"
    seg.write_text(AUDIOSET_TEXT)
    with pytest.raises(ValueError, match="needs --classes"):
        class_map_from_list(str(seg))


def test_class_map_from_unlabelled_manifest_and_folder(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("path\na.wav\n")
    with pytest.raises(ValueError, match="no labels found"):
        class_map_from_list(str(m))
    write_media(tmp_path / "flat" / "a.wav", 0.05, 8000)
    with pytest.raises(ValueError, match="no labels found"):
        class_map_from_list(str(tmp_path / "flat"))


# --------------------------------------------------------------------------- load_segment_list


def test_is_directory(tmp_path):
    (tmp_path / "f.csv").write_text("x")
    assert is_directory(str(tmp_path))
    assert not is_directory(str(tmp_path / "f.csv"))


def test_load_segment_list_audioset(tmp_path):
    seg = tmp_path / "seg.csv"
    seg.write_text(AUDIOSET_TEXT)
    cmap = ClassMap([ClassInfo(0, "/m/a", "A"), ClassInfo(1, "/m/b", "B")])
    result = load_segment_list(str(seg), cmap, "eval")
    assert [s.clip_id for s in result.segments] == ["--PJHxphWEs_30000", "-x_Abc123de_0"]
    assert [s.source_kind for s in result.segments] == ["youtube", "youtube"]
    assert [s.labels for s in result.segments] == [(0, 1), (1,)]
    assert {s.split for s in result.segments} == {"eval"}
    assert result.header["num_segs"] == 2


def test_load_segment_list_manifest(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text(
        "path,start_seconds,end_seconds,labels,split\n"
        "dogs/a.wav,1.5,4,dog,\n"
        "b.wav,,,cat,valid\n"
        "c.wav,1,,cat,\n"
    )
    cmap = ClassMap.from_names(["cat", "dog"])
    result = load_segment_list(str(m), cmap, "train")
    assert [
        (s.source, s.source_kind, s.start_s, s.end_s, s.labels, s.split) for s in result.segments
    ] == [
        ("dogs/a.wav", "path", 1.5, 4.0, (1,), "train"),
        ("b.wav", "path", None, None, (0,), "valid"),
    ]
    assert [(m.line, m.reason) for m in result.malformed] == [
        (4, "give both start_seconds and end_seconds, or neither")
    ]


def test_load_segment_list_jsonl_with_urls(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(
        json.dumps({"url": "http://h/x/a.wav", "labels": ["cat"]})
        + "\n"
        + json.dumps({"url": "s3://b/k.wav"})
        + "\n"
    )
    result = load_segment_list(str(m), ClassMap.from_names(["cat"]), "train")
    assert [(s.source_kind, s.labels) for s in result.segments] == [("url", (0,)), ("path", ())]


def test_load_segment_list_folder(folder):
    result = load_segment_list(str(folder), ClassMap.from_names(["dogs"]), "train")
    assert len(result.segments) == 6
    assert sum(s.labels == (0,) for s in result.segments) == 3  # dogs/ and dogs/puppies/


def test_load_segment_list_missing_file(tmp_path):
    with pytest.raises(InputFormatError, match="file not found"):
        load_segment_list(str(tmp_path / "nope.csv"), ClassMap.from_names(["a"]), "train")
    with pytest.raises(InputFormatError, match="file not found"):
        class_map_from_list(str(tmp_path / "nope.csv"))


def test_list_folder_of_local_paths_and_urls():
    assert list_folder("s3://bucket/lists/m.csv") == "s3://bucket/lists"
    assert list_folder("lists/m.csv") == "lists"
    assert list_folder("m.csv") == ""
    cfg = SourceConfig(manifest_dir=list_folder("s3://bucket/lists/m.csv"))
    assert resolve(_path("audio/a.wav"), cfg, None).location == "s3://bucket/lists/audio/a.wav"
