"""``predict`` scores every file it can: one that fails is reported, not fatal to the others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from modeling.inference import predict_files
from schemas.failures import ClipFailure, FailureReason
from tests.inference_fixtures import Served, served_runs, vggish_files
from workflows.cli import app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def _tone(path: Path, seconds: float = 0.3, rate: int = 16000, hz: float = 440.0) -> str:
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate), rate)
    return str(path)


def _corrupt(path: Path) -> str:
    """A WAV header cut short: bytes no decoder reads."""
    path.write_bytes(b"RIFF\xd8\x17\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f")
    return str(path)


def _manifest(path: Path) -> str:
    path.write_text("path,labels,split\n/data/a.wav,dog,train\n")
    return str(path)


def test_failed_files_are_reported_and_the_others_scored(served: Served, tmp_path: Path) -> None:
    good = _tone(tmp_path / "good.wav")
    other = _tone(tmp_path / "other.flac", 0.2, 22050, 900.0)
    corrupt, manifest = _corrupt(tmp_path / "corrupt.wav"), _manifest(tmp_path / "list.csv")
    empty = tmp_path / "empty.wav"
    empty.touch()
    failures: list[tuple[str, ClipFailure]] = []
    got = predict_files(
        served.wave,
        [good, corrupt, other, manifest, str(empty)],
        on_failure=lambda source, failure: failures.append((source, failure)),
    )
    assert [p.source for p in got] == [good, other]
    alone = predict_files(served.wave, [good, other])
    for p, want in zip(got, alone, strict=True):
        np.testing.assert_allclose(p.scores, want.scores, atol=1e-6)
    assert [source for source, _ in failures] == [corrupt, manifest, str(empty)]
    assert {f.reason for _, f in failures} == {FailureReason.DECODE_ERROR}
    assert failures[0][1].detail.startswith(f"{corrupt}: not readable")
    detail = failures[1][1].detail
    assert detail == f"{manifest}: not audio: a text file beginning 'path,labels,split'"
    assert failures[2][1].detail == f"{empty}: file is empty (0 bytes)"
    with pytest.raises(ClipFailure, match=re.escape(f"{corrupt}: not readable")):
        predict_files(served.wave, [good, corrupt])


@pytest.fixture(scope="module")
def vggish(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[str, str]:
    return vggish_files(tmp_path_factory, worker_id)


def test_failed_files_of_an_embedding_run_are_reported_too(
    served: Served, vggish: tuple[str, str], tmp_path: Path
) -> None:
    checkpoint, pca = vggish
    good, corrupt = _tone(tmp_path / "good.wav", 1.0), _corrupt(tmp_path / "corrupt.wav")
    failures: list[str] = []
    got = predict_files(
        served.emb,
        [corrupt, good],
        checkpoint=checkpoint,
        pca_params=pca,
        on_failure=lambda source, failure: failures.append(source),
    )
    assert [p.source for p in got] == [good] and failures == [corrupt]


def test_a_folder_is_refused_before_scoring(served: Served, tmp_path: Path) -> None:
    message = f"^{re.escape(str(tmp_path))}: a folder, not an audio file"
    with pytest.raises(ValueError, match=message):
        predict_files(served.wave, [_tone(tmp_path / "good.wav"), str(tmp_path)])


def test_predict_cli_prints_every_result_and_exits_1_on_a_failed_file(
    served: Served, tmp_path: Path
) -> None:
    runner = CliRunner()
    good, corrupt = _tone(tmp_path / "good.wav"), _corrupt(tmp_path / "corrupt.wav")
    manifest = _manifest(tmp_path / "list.csv")
    args = ["predict", str(served.wave), good, corrupt, manifest, "--top-k", "2"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    scored, failed, text = json.loads(result.stdout)
    assert scored["input"] == good and len(scored["top"]) == 2 and "error" not in scored
    assert failed == {
        "input": corrupt,
        "kind": "file",
        "error": {"reason": "decode_error", "detail": failed["error"]["detail"]},
    }
    assert failed["error"]["detail"].startswith(f"{corrupt}: not readable by soundfile or ffmpeg")
    assert text["error"]["detail"].startswith(f"{manifest}: not audio: a text file")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: not scored: decode_error: {failed['error']['detail']}",
        f"warning: not scored: decode_error: {text['error']['detail']}",
    ]
    assert not [line for line in result.stderr.splitlines() if line.startswith("error:")]

    table = runner.invoke(app, args)
    assert table.exit_code == 1, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == f"{good} (5 windows)" and "rank" in table.stdout
    at = lines.index(f"{corrupt} (not scored)")
    assert lines[at + 1] == f"decode_error: {failed['error']['detail']}"
    assert f"{manifest} (not scored)" in lines

    fine = runner.invoke(app, args[:3])
    assert fine.exit_code == 0, fine.output


def test_predict_cli_refuses_a_folder_up_front(served: Served, tmp_path: Path) -> None:
    good = _tone(tmp_path / "good.wav")
    result = CliRunner().invoke(app, ["predict", str(served.wave), good, str(tmp_path)])
    assert result.exit_code == 2 and result.stdout == ""
    message = (
        f"error: {tmp_path}: a folder, not an audio file: predict takes audio files (paths or "
        "URLs), or with --dataset clip ids of a dataset"
    )
    assert result.stderr.splitlines() == [message]
