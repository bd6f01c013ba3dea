"""Dataset recipes on tiny copies of each dataset's published layout (see tests/recipe_layouts)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from pipelines.recipes import (
    RecipeResult,
    download_audioset,
    prepare_audioset,
    prepare_folder,
    prepare_fsd2019,
    prepare_urbansound8k,
    prepare_whale,
)
from pipelines.recipes.common import hash_fraction, stratified_holdout
from pipelines.segment_loading import load_segment_list, scan_folder
from pipelines.sources import SourceConfig, resolve
from schemas.audioset import load_segments
from schemas.classmap import ClassMap
from schemas.errors import InputFormatError
from schemas.segments import Segment, sanitize_clip_id
from tests.http_media_server import MediaServer, Script
from tests.media import write_media
from tests.recipe_layouts import (
    FSD_CLASSES,
    URBAN_CLASSES,
    URBAN_HEADER,
    make_fsd2019,
    make_urbansound8k,
    make_whale,
)


def _as_ingest_reads(result: RecipeResult) -> dict[str, Segment]:
    """Parse the manifest exactly as ``audiomill ingest`` does and check the recipe's invariants.

    Every row parses, every label is in the class map, every path resolves under the audio root
    to a real file, clip ids are unique and the counts per split are the reported ones.
    """
    class_map = ClassMap.load(result.files["classes"])
    assert class_map.sha256 == json.loads(result.files["recipe"].read_text())["class_map_sha256"]
    seglist = load_segment_list(str(result.files["manifest"]), class_map, "train")
    assert seglist.malformed == []
    cfg = SourceConfig(source="local", audio_root=str(result.audio_root))
    for seg in seglist.segments:
        assert seg.unknown_labels == ()
        assert seg.start_s is None and seg.end_s is None
        assert Path(resolve(seg, cfg, None).location).is_file()
    ids = [s.clip_id for s in seglist.segments]
    assert len(ids) == len(set(ids)), "duplicate clip ids"
    assert Counter(s.split for s in seglist.segments) == Counter(result.clips_per_split)
    return {s.clip_id: s for s in seglist.segments}


def _names(result: RecipeResult, seg: Segment) -> list[str]:
    return [result.class_map[i].display_name for i in seg.labels]


def _skips(result: RecipeResult) -> list[str]:
    return [str(s) for s in result.skipped]


# UrbanSound8K


def test_urbansound8k_folds_are_splits_of_whole_files(tmp_path: Path):
    expected = make_urbansound8k(tmp_path / "UrbanSound8K", folds=3, per_fold=2)
    result = prepare_urbansound8k(tmp_path / "UrbanSound8K", tmp_path / "out")
    assert result.clips_per_split == expected
    assert result.class_map.display_names == list(URBAN_CLASSES)
    segs = _as_ingest_reads(result)
    seg = segs["100010-2-0-0"]
    assert seg.split == "fold1" and _names(result, seg) == ["children_playing"]
    assert seg.source == "audio/fold1/100010-2-0-0.wav"
    meta = "metadata/UrbanSound8K.csv"
    skips = _skips(result)
    assert any(s.endswith(f"{meta}:8: malformed line: 6 fields, header has 8") for s in skips)
    assert any(f"{meta}:9: missing audio file: " in s for s in skips)
    assert any(s.endswith(f"{meta}:10: bad value: classID 4 is not 'dog_bark'") for s in skips)
    assert any(s.endswith(f"{meta}:11: bad value: fold 11 is not 1..10") for s in skips)
    assert any(f"{meta}:12: bad value: slice_file_name" in s for s in skips)
    assert len(skips) == 5
    assert result.skipped_by_reason() == {
        "bad value": 3,
        "malformed line": 1,
        "missing audio file": 1,
    }
    skipped_csv = result.files["skipped"].read_text().splitlines()
    assert skipped_csv[0] == "file,line,reason,detail" and len(skipped_csv) == 6
    assert result.ingest_args[0][-2:] == ["--clip-seconds", "4"]


def test_urbansound8k_is_deterministic(tmp_path: Path):
    make_urbansound8k(tmp_path / "us", folds=2, per_fold=1)
    a = prepare_urbansound8k(tmp_path / "us", tmp_path / "a")
    b = prepare_urbansound8k(tmp_path / "us", tmp_path / "b")
    for role in ("classes", "manifest", "skipped"):
        assert a.files[role].read_bytes() == b.files[role].read_bytes()


def test_urbansound8k_bad_layouts_name_the_file_and_line(tmp_path: Path):
    with pytest.raises(InputFormatError, match="no such directory"):
        prepare_urbansound8k(tmp_path / "absent", tmp_path / "out")
    root = tmp_path / "us"
    root.mkdir()
    with pytest.raises(InputFormatError, match=r"UrbanSound8K\.csv: file not found"):
        prepare_urbansound8k(root, tmp_path / "out")
    (root / "metadata").mkdir()
    (root / "metadata" / "UrbanSound8K.csv").write_text("slice_file_name,fsID,start,end\n")
    with pytest.raises(InputFormatError, match=r"UrbanSound8K\.csv:1: header lacks .*fold"):
        prepare_urbansound8k(root, tmp_path / "out")
    huge = "x" * 200_000
    (root / "metadata" / "UrbanSound8K.csv").write_text(
        f'{URBAN_HEADER}a.wav,1,0,1,1,1,3,dog_bark\n"{huge}"\n'
    )
    with pytest.raises(InputFormatError, match=r"UrbanSound8K\.csv:3: unreadable CSV"):
        prepare_urbansound8k(root, tmp_path / "out")


# Whale calls


@pytest.mark.parametrize("task", ["binary", "singlelabel"])
def test_whale_tasks_and_stratified_split(tmp_path: Path, task: str):
    labels = make_whale(tmp_path / "data", positives=5, negatives=15)
    result = prepare_whale(tmp_path / "data", tmp_path / "out", task=task, eval_fraction=0.2)
    assert result.clips_per_split == {"eval": 4, "train": 16}
    segs = _as_ingest_reads(result)
    by_split = Counter((s.split, labels[f"{cid}.aiff"]) for cid, s in segs.items())
    assert by_split == {("eval", "1"): 1, ("eval", "0"): 3, ("train", "1"): 4, ("train", "0"): 12}
    for cid, seg in segs.items():
        positive = labels[f"{cid}.aiff"] == "1"
        if task == "binary":
            assert _names(result, seg) == (["Right whale call"] if positive else [])
        else:
            assert _names(result, seg) == ["Right whale call" if positive else "No call"]
    assert result.class_map.mids == (
        ["whale_call"] if task == "binary" else ["no_call", "whale_call"]
    )
    assert result.ingest_args[0][-4:] == ["--sample-rate", "2000", "--clip-seconds", "2"]


def test_whale_split_depends_on_seed_only_and_bad_rows_are_skipped(tmp_path: Path):
    make_whale(tmp_path / "k" / "data", positives=4, negatives=8)
    with open(tmp_path / "k" / "data" / "train.csv", "a") as fh:
        fh.write("train13.aiff,2\ntrain99.aiff,1\ntrain1.aiff,1\n")
    # The competition download's parent folder works too (train.csv is found in data/).
    a = prepare_whale(tmp_path / "k", tmp_path / "a", seed=0)
    b = prepare_whale(tmp_path / "k" / "data", tmp_path / "b", seed=0)
    c = prepare_whale(tmp_path / "k", tmp_path / "c", seed=1)
    assert a.files["manifest"].read_bytes() == b.files["manifest"].read_bytes()
    assert a.files["manifest"].read_bytes() != c.files["manifest"].read_bytes()
    skips = _skips(a)
    assert skips[0].endswith("train.csv:14: bad value: label '2' is not 0 or 1")
    assert "train.csv:15: missing audio file" in skips[1]
    assert skips[2].endswith("train.csv:16: duplicate clip id: 'train1' (first on line 2)")
    with pytest.raises(ValueError, match="task must be one of"):
        prepare_whale(tmp_path / "k", tmp_path / "d", task="multiclass")
    with pytest.raises(ValueError, match=r"eval_fraction must be in \[0, 1\)"):
        prepare_whale(tmp_path / "k", tmp_path / "d", eval_fraction=1.0)


def test_whale_audio_is_2khz_aiff(tmp_path: Path):
    import soundfile as sf

    make_whale(tmp_path / "data", positives=1, negatives=1)
    info = sf.info(tmp_path / "data" / "train" / "train1.aiff")
    assert (info.format, info.samplerate, info.duration) == ("AIFF", 2000, 2.0)


def test_stratified_holdout_takes_rounded_share_per_label():
    items = [(f"a{i}", "x") for i in range(10)] + [(f"b{i}", "y") for i in range(3)]
    held = stratified_holdout(items, 0.3, seed=5)
    assert len([k for k in held if k.startswith("a")]) == 3
    assert len([k for k in held if k.startswith("b")]) == 1
    assert held == stratified_holdout(reversed(items), 0.3, seed=5)
    assert 0.0 <= hash_fraction("x") < 1.0 and hash_fraction("x") == hash_fraction("x", 0)


# Freesound Audio Tagging 2019


def test_fsd2019_splits_class_order_and_multi_labels(tmp_path: Path):
    good = make_fsd2019(tmp_path / "fsd")
    result = prepare_fsd2019(tmp_path / "fsd", tmp_path / "out")
    assert result.class_map.display_names == list(FSD_CLASSES)
    assert result.class_map.mids == list(FSD_CLASSES)
    assert result.clips_per_split == {"curated": 3, "noisy": 2, "test": 2}
    segs = _as_ingest_reads(result)
    for split, clips in good.items():
        for fname, labels in clips.items():
            seg = segs[fname.removesuffix(".wav")]
            assert seg.split == split
            assert tuple(_names(result, seg)) == labels
    skips = _skips(result)  # in file order
    assert skips[0].endswith("train_curated.csv:5: unknown label: Not_a_class")
    assert "train_curated.csv:6: missing audio file" in skips[1]
    assert skips[2].endswith("train_noisy.csv:4: malformed line: 3 fields, header has 2")
    assert result.ingest_args[0][-2:] == ["--clip-seconds", "30"]


def test_fsd2019_without_submission_uses_sorted_labels_and_test_folder(tmp_path: Path):
    make_fsd2019(tmp_path / "fsd", submission=False)
    result = prepare_fsd2019(tmp_path / "fsd", tmp_path / "out", include_noisy=False)
    assert result.class_map.display_names == sorted(
        {"Bark", "Walk_and_footsteps", "Fill_(with_liquid)"}
    )
    assert result.clips_per_split == {"curated": 3, "test": 2}
    assert any("no 'noisy' split" in n for n in result.notes)
    assert result.skipped_by_reason() == {"missing audio file": 2}
    _as_ingest_reads(result)


def test_fsd2019_bad_submission_header_is_an_error(tmp_path: Path):
    make_fsd2019(tmp_path / "fsd")
    (tmp_path / "fsd" / "sample_submission.csv").write_text("name,Bark\n")
    with pytest.raises(InputFormatError, match=r"sample_submission\.csv:1: expected a header"):
        prepare_fsd2019(tmp_path / "fsd", tmp_path / "out")


# A folder of the user's audio


def _user_folder(root: Path) -> None:
    write_media(root / "dog" / "a.wav", 0.5, 8000)
    write_media(root / "dog" / "park" / "b.flac", 0.5, 8000)
    write_media(root / "Cat Purr" / "c d.ogg", 0.5, 8000)
    write_media(root / "loose.mp3", 0.5, 8000)
    write_media(root / ".hidden" / "x.wav", 0.5, 8000)
    (root / "dog" / "notes.txt").write_text("not audio")


def test_folder_labels_from_first_subfolder_like_ingest(tmp_path: Path):
    _user_folder(tmp_path / "audio")
    result = prepare_folder(tmp_path / "audio", tmp_path / "out")
    assert result.class_map.display_names == ["Cat Purr", "dog"]
    assert result.class_map.mids == ["Cat_Purr", "dog"]
    segs = _as_ingest_reads(result)
    assert result.clips_per_split == {"train": 4}
    by_path = {s.source: _names(result, s) for s in segs.values()}
    assert by_path == {
        "Cat Purr/c d.ogg": ["Cat Purr"],
        "dog/a.wav": ["dog"],
        "dog/park/b.flac": ["dog"],
        "loose.mp3": [],
    }
    scanned = scan_folder(str(tmp_path / "audio"), result.class_map, "train")
    assert {s.clip_id for s in scanned.segments if "/.hidden/" not in s.source} == set(segs)


def test_folder_eval_split_is_a_stable_hash_of_the_path(tmp_path: Path):
    for i in range(40):
        write_media(tmp_path / "audio" / ("a" if i % 2 else "b") / f"{i}.wav", 0.2, 8000)
    result = prepare_folder(tmp_path / "audio", tmp_path / "out", eval_fraction=0.25, seed=3)
    segs = _as_ingest_reads(result)
    held = {s.source for s in segs.values() if s.split == "eval"}
    assert held == {s.source for s in segs.values() if hash_fraction(s.source, 3) < 0.25}
    assert 3 <= len(held) <= 20
    (tmp_path / "audio" / "a" / "1.wav").unlink()
    again = _as_ingest_reads(
        prepare_folder(tmp_path / "audio", tmp_path / "o2", eval_fraction=0.25, seed=3)
    )
    assert {s.source for s in again.values() if s.split == "eval"} == held - {"a/1.wav"}


def test_folder_labels_from_csv(tmp_path: Path):
    _user_folder(tmp_path / "audio")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,labels\n"
        'dog/a.wav,"Bark; Dog, domestic"\n'
        "Cat Purr/c d.ogg,Purr\n"
        "loose.mp3,\n"
        "missing.wav,Bark\n"
        "../outside.wav,Bark\n"
        "dog/notes.txt,Bark\n"
        "too,many,fields\n"
        f"{tmp_path / 'audio' / 'dog' / 'a.wav'},Bark\n"
    )
    result = prepare_folder(tmp_path / "audio", tmp_path / "out", labels_csv=labels)
    assert result.class_map.display_names == ["Bark", "Dog, domestic", "Purr"]
    assert result.class_map.mids == ["Bark", "Dog_domestic", "Purr"]
    segs = _as_ingest_reads(result)
    assert {s.source: _names(result, s) for s in segs.values()} == {
        "dog/a.wav": ["Bark", "Dog, domestic"],
        "Cat Purr/c d.ogg": ["Purr"],
        "loose.mp3": [],
    }
    skips = _skips(result)  # sorted by file then line: audio/... before labels.csv
    assert "dog/park/b.flac: not listed in the labels CSV" in skips[0]
    assert "labels.csv:5: missing audio file" in skips[1]
    assert skips[2].endswith("labels.csv:6: path outside the root: '../outside.wav'")
    assert skips[3].endswith("labels.csv:7: bad value: 'dog/notes.txt' is not an audio file name")
    assert skips[4].endswith("labels.csv:8: malformed line: 3 fields, header has 2")
    dup = f"labels.csv:9: duplicate clip id: '{sanitize_clip_id('dog/a.wav')}' (first on line 2)"
    assert skips[5].endswith(dup)
    with pytest.raises(ValueError, match="labels_from='csv' needs labels_csv"):
        prepare_folder(tmp_path / "audio", tmp_path / "x", labels_from="csv")


def test_folder_without_labels_is_refused(tmp_path: Path):
    write_media(tmp_path / "audio" / "a.wav", 0.2, 8000)
    with pytest.raises(ValueError) as refused:
        prepare_folder(tmp_path / "audio", tmp_path / "out")
    assert str(refused.value).startswith(
        f"folder: no labelled clips found under {tmp_path / 'audio'}"
    )


# AudioSet


def _audioset_csvs(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    bal = root / "balanced_train_segments.csv"
    bal.write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=5, num_segs=5, num_unique_labels=3, num_positive_labels=7\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
        '-0RWZT-miFs, 420.000, 430.000, "/m/03v3yw,/m/0k4j"\n'
        'a_b-c_d_e_f, 0.000, 10.000, "/m/nope"\n'
        "broken line\n"
        'x1x1x1x1x1x, 10.000, 5.000, "/m/09x0r"\n'
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r"\n'
    )
    ev = root / "eval_segments.csv"
    ev.write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '-0RWZT-miFs, 420.000, 430.000, "/m/0k4j"\n'
        '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_,/m/0bt9lr,/m/0jbk"\n'
    )
    return bal, ev


def test_audioset_validates_counts_and_normalizes(tmp_path: Path, audioset_dir: Path):
    bal, ev = _audioset_csvs(tmp_path / "csv")
    classes = audioset_dir / "class_labels_indices.csv"
    result = prepare_audioset([bal, ev], classes, tmp_path / "out")
    assert result.clips_per_split == {"balanced_train": 2, "eval": 1}
    assert len(result.class_map) == 527
    assert result.files["classes"].read_text() == ClassMap.load(classes).to_csv_text()
    skips = _skips(result)
    assert skips[0].endswith("balanced_train_segments.csv:6: unknown label: /m/nope")
    assert skips[1].endswith("balanced_train_segments.csv:7: malformed line: expected 4 fields "
                             "(YTID, start, end, labels), found 1")  # fmt: skip
    assert skips[2].endswith(
        "balanced_train_segments.csv:8: bad value: segment 10.0..5.0 s is not 0 <= start < end"
    )
    assert skips[3].endswith(
        "balanced_train_segments.csv:9: duplicate clip id: '--PJHxphWEs_30000' "
        "(first on balanced_train_segments.csv:4)"
    )
    assert "eval_segments.csv:2: duplicate clip id: '-0RWZT-miFs_420000'" in skips[4]
    assert any("header says num_segs=5, found 6 rows" in n for n in result.notes)
    class_map = ClassMap.load(result.files["classes"])
    train = load_segments(result.files["segments:balanced_train_segments"], class_map)
    assert train.malformed == [] and train.header == {"num_segs": 2}
    assert [s.clip_id for s in train.segments] == ["--PJHxphWEs_30000", "-0RWZT-miFs_420000"]
    assert train.segments[0].label_mids == ("/m/09x0r", "/t/dd00088")
    evals = load_segments(result.files["segments:eval_segments"], class_map)
    assert [len(s.labels) for s in evals.segments] == [4]
    assert [a[a.index("--split") + 1] for a in result.ingest_args] == ["balanced_train", "eval"]
    recipe = json.loads(result.files["recipe"].read_text())
    assert recipe["clips_per_split"] == result.clips_per_split
    assert recipe["skipped_by_reason"]["duplicate clip id"] == 2


def test_audioset_real_balanced_csv_counts_match_its_header(tmp_path: Path, audioset_dir: Path):
    result = prepare_audioset(
        [audioset_dir / "balanced_train_segments.csv"],
        audioset_dir / "class_labels_indices.csv",
        tmp_path / "out",
        split_names=["bal"],
    )
    assert result.clips_per_split == {"bal": 22160}
    assert result.skipped == [] and result.notes == []


def test_audioset_split_names_must_be_distinct(tmp_path: Path, audioset_dir: Path):
    bal, ev = _audioset_csvs(tmp_path / "csv")
    classes = audioset_dir / "class_labels_indices.csv"
    with pytest.raises(ValueError, match="same split"):
        prepare_audioset([bal, ev], classes, tmp_path / "out", split_names=["a", "a"])
    with pytest.raises(ValueError, match=r"split name '\.\./x'"):
        prepare_audioset([bal], classes, tmp_path / "out", split_names=["../x"])


def _www(tmp_path: Path, audioset_dir: Path) -> Path:
    www = tmp_path / "www" / "csv"
    _audioset_csvs(www)
    (www / "unbalanced_train_segments.csv").write_text("# YTID, start_seconds, end_seconds\n")
    (www / "class_labels_indices.csv").write_bytes(
        (audioset_dir / "class_labels_indices.csv").read_bytes()
    )
    return www


def test_download_audioset_over_http_resumes(tmp_path: Path, audioset_dir: Path):
    www = _www(tmp_path, audioset_dir)
    with MediaServer(tmp_path / "www") as server:
        got = download_audioset(tmp_path / "dl", url_base=server.url("csv"))
        assert sorted(got.fetched) == sorted(p.name for p in www.iterdir())
        for name, path in got.files.items():
            assert path.read_bytes() == (www / name).read_bytes()
        again = download_audioset(tmp_path / "dl", url_base=server.url("csv") + "/")
        assert again.fetched == [] and len(again.present) == 4
        assert len(server.requests) == 4
    assert sorted(os.listdir(tmp_path / "dl")) == sorted(got.files)


def test_download_audioset_failures_leave_no_files(tmp_path: Path, audioset_dir: Path):
    _www(tmp_path, audioset_dir)
    with MediaServer(tmp_path / "www") as server:
        server.script("/csv/eval_segments.csv", Script(status=404))
        with pytest.raises(OSError, match=r"eval_segments\.csv: HTTP 404"):
            download_audioset(tmp_path / "dl", url_base=server.url("csv"))
        assert sorted(os.listdir(tmp_path / "dl")) == ["balanced_train_segments.csv"]
        (tmp_path / "www" / "csv" / "class_labels_indices.csv").write_text("<html>oops</html>")
        with pytest.raises(InputFormatError, match="expected header 'index,mid,display_name'"):
            download_audioset(
                tmp_path / "dl", url_base=server.url("csv"), files=["class_labels_indices.csv"]
            )
        assert sorted(os.listdir(tmp_path / "dl")) == ["balanced_train_segments.csv"]
    with pytest.raises(ValueError, match="http"):
        download_audioset(tmp_path / "dl", url_base="file:///etc")
