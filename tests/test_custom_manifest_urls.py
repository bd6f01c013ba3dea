"""A manifest ``url`` that cannot be requested as it is written (a raw space or control
character, no scheme or host, a scheme nothing fetches, a bad port) makes its line malformed,
with its number and reason, instead of failing as a transient network error on every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.classmap import ClassMap
from schemas.custom_manifest import parse_manifest_text
from tests.ingest_helpers import audiomill
from tests.media import write_media

CLASSES = ClassMap.from_names(["dog"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8765/sub/with space.wav", "holds a space: percent-encode it"),
        ("http://h/a\tb.wav", "holds whitespace or a control character ('\\t')"),
        ("example.com/a.wav", "is no URL (scheme://host/...): a local file goes in the 'path'"),
        ("ftps://h/a.wav", "scheme 'ftps' is not supported"),
        ("http:///a.wav", "names no host"),
        ("s3:///key.wav", "names no host"),
        ("http://h:99999/a.wav", "its port is no port number"),
    ],
)
def test_a_url_that_cannot_be_requested_is_a_malformed_line(url: str, reason: str) -> None:
    parsed = parse_manifest_text(f"url,labels\n{url},dog\n", CLASSES, path="m.csv")
    assert not parsed.segments
    [bad] = parsed.malformed
    assert (bad.line, bad.text) == (2, f"{url},dog")
    assert bad.reason.startswith(f"url {url!r}") and reason in bad.reason, bad.reason


def test_a_jsonl_url_with_a_newline_is_a_malformed_line() -> None:
    text = '{"url": "http://h/a.wav"}\n{"url": "http://h/b\\n.wav"}\n'
    parsed = parse_manifest_text(text, CLASSES, path="m.jsonl")
    assert [s.source for s in parsed.segments] == ["http://h/a.wav"]
    assert [(m.line, "control character ('\\n')" in m.reason) for m in parsed.malformed] == [
        (2, True)
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://h/with%20space.wav",
        "https://h:8443/a.wav?x=1&y=2",
        "s3://bucket/k.wav",
        "file:///a.wav",
    ],
)
def test_urls_that_can_be_requested_parse(url: str) -> None:
    parsed = parse_manifest_text(f"url,labels\n{url},dog\n", CLASSES, path="m.csv")
    assert not parsed.malformed
    assert [s.source for s in parsed.segments] == [url]


@pytest.mark.slow
def test_ingest_and_inspect_name_the_line_of_a_url_with_a_space(tmp_path: Path) -> None:
    write_media(tmp_path / "a.wav", 1.0, 8000)
    bad = "http://127.0.0.1:8765/sub/with space.wav"
    listed = tmp_path / "m.csv"
    listed.write_text(f"path,url,labels\na.wav,,dog\n,{bad},dog\n")
    reason = f"url {bad!r} holds a space: percent-encode it (a space as %20)"
    proc = audiomill(
        "ingest", "--segments", str(listed), "--out", str(tmp_path / "ds"), "--sample-rate",
        "8000", "--clip-seconds", "1", "--workers", "1",
    )  # fmt: skip
    assert f"malformed: {listed}:3: {reason}: ',{bad},dog'" in proc.stderr, proc.stderr
    assert "network_error" not in proc.stderr
    inspected = audiomill("segments", "inspect", str(listed), check=False)
    assert inspected.returncode == 1
    assert f"{listed}:3: {reason}" in inspected.stdout, inspected.stdout
