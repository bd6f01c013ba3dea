"""train, sweep, evaluate and export refuse an --out they cannot write with one error line, before
any work, and a write that fails later (a full disk) ends with one line too, not a traceback;
search whose scores cannot be cached in the run warns and lists its hits.

A folder is made unwritable with ``chattr +i``, which holds for root too (permission bits do
not); the tests are skipped where ``chattr`` is missing or the file system lacks the flag.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training_fixtures import single_label_dataset
from tests.unwritable import immutable
from workflows.cli import app


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small single-label dataset and a run of 2 steps on its embeddings."""
    base = tmp_path_factory.mktemp("unwritable")
    single_label_dataset(base / "ds", train=16, eval_clips=6)
    args = ["train", str(base / "ds"), "--out", str(base / "run"), "--steps", "2"]
    result = CliRunner().invoke(app, [*args, "--task", "singlelabel"])
    assert result.exit_code == 0, result.output
    return base / "ds", base / "run"


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[Path]:
    """An empty folder that cannot be written (:func:`immutable`)."""
    folder = tmp_path / "roe"
    folder.mkdir()
    with immutable(folder):
        yield folder


def _fill_disk(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """Let ``after`` fsyncs pass, then fail every later one as a full disk would."""
    synced = []

    def fsync(fd: int) -> None:
        synced.append(fd)
        if len(synced) > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def _args(command: str, dataset: Path, run: Path, out: Path) -> list[str]:
    training = [str(dataset), "--out", str(out), "--steps", "2", "--task", "singlelabel"]
    return {
        "train": ["train", *training],
        "sweep": ["sweep", *training],
        "evaluate": ["evaluate", str(run), str(dataset), "--out", str(out)],
        "export": ["export", str(run), "--out", str(out)],
    }[command]


@pytest.mark.parametrize("command", ["train", "sweep", "evaluate", "export"])
def test_an_out_that_cannot_be_made_is_refused_in_one_line_before_any_work(
    trained: tuple[Path, Path], frozen: Path, command: str
) -> None:
    out = frozen / "x"
    result = CliRunner().invoke(app, _args(command, *trained, out))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: --out {out}: {command} cannot write there: {frozen} is not writable"
    ]
    assert not out.exists()


def test_an_out_that_is_itself_unwritable_or_under_a_file_is_refused(
    trained: tuple[Path, Path], frozen: Path, tmp_path: Path
) -> None:
    dataset, run = trained
    result = CliRunner().invoke(app, _args("evaluate", dataset, run, frozen))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: --out {frozen}: evaluate cannot write there: {frozen} is not writable"
    ]
    (tmp_path / "file").write_text("mine\n")
    out = tmp_path / "file" / "exp"
    result = CliRunner().invoke(app, _args("export", dataset, run, out))
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: --out {out}: export cannot write there: {tmp_path / 'file'} is a file, not a "
        "folder"
    ]
    assert (tmp_path / "file").read_text() == "mine\n"


@pytest.mark.parametrize("command", ["train", "evaluate", "export"])
def test_a_write_that_fails_later_ends_in_one_line(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    _fill_disk(monkeypatch, after=0)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, _args(command, *trained, out))
    assert result.exit_code == 2, result.output
    line = f"error: --out {out}: {command} could not write its files: No space left on device"
    assert result.output.splitlines()[-1] == line
    assert "Traceback" not in result.output


def test_search_whose_scores_cannot_be_cached_still_lists_its_hits(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    dataset, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    scores = copy / "scores"
    scores.mkdir()
    with immutable(scores):
        result = CliRunner().invoke(app, ["search", str(copy), str(dataset), "sound"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert any(
        line.startswith(f"warning: scores not cached: cannot write {scores}/eval-")
        and line.endswith(": Operation not permitted")
        for line in lines
    ), result.output
    assert lines[-1] == "matched classes: sound 0; sound 1; sound 2"
    assert not list(scores.iterdir())


def _files(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_write_that_fails_leaves_the_earlier_output_whole(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    out = tmp_path / "out"
    args = _args(command, *trained, out)
    assert CliRunner().invoke(app, args).exit_code == 0
    before, folder = _files(out), out.stat().st_ino
    models = [path.stat().st_ino for path in out.glob("saved_model")]
    _fill_disk(monkeypatch, after=1)
    again = [*args, "--split", "train"] if command == "evaluate" else args  # other metrics
    result = CliRunner().invoke(app, again)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"error: --out {out}: {command} could not write its files: No space left on device"
    )
    assert _files(out) == before and out.stat().st_ino == folder
    assert [path.stat().st_ino for path in out.glob("saved_model")] == models
