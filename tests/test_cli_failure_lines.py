"""workflows/cli.py: a failed clip's line names its list as the run was given it."""

from __future__ import annotations

from workflows.cli import _failure_line


def test_a_failure_line_names_the_list_by_the_path_given_and_its_line():
    row = {
        "origin": "quickstart-out/demo-audio/url-manifest.csv",
        "line": 52,
        "clip_id": "broken_0",
        "reason": "decode_error",
        "detail": "not audio",
    }
    assert _failure_line(row) == (
        "quickstart-out/demo-audio/url-manifest.csv:52: broken_0: decode_error: not audio"
    )


def test_a_folder_clip_names_its_file_and_an_unknown_origin_nothing():
    row = {"origin": "audio/dog/a.wav", "line": 0, "clip_id": "dog_a", "reason": "r", "detail": "d"}
    assert _failure_line(row) == "audio/dog/a.wav: dog_a: r: d"
    assert _failure_line({**row, "origin": ""}) == "dog_a: r: d"
