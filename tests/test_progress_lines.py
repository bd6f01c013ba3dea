"""Progress without a terminal: ``progress_bar`` prints a plain line every so often."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from workflows import cli_common
from workflows.cli import app
from workflows.cli_common import progress_bar


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _console(monkeypatch, clock: Clock, terminal: bool) -> io.StringIO:
    text = io.StringIO()
    console = Console(file=text, width=300, get_time=clock, force_terminal=terminal)
    monkeypatch.setattr(cli_common, "console", console)
    return text


def _run(clock: Clock, total: int | None) -> None:
    """Ten clips a second for 84 s, a shard every 20 s; no update in the last 40 s."""
    with progress_bar("clips", line_every=30, shards=0) as (bar, task):
        bar.update(task, total=total)
        for second in range(1, 85):
            clock.now = second
            bar.update(task, completed=10 * second, shards=second // 20)
        clock.now = 124


def test_without_a_terminal_a_line_comes_every_interval_with_rate_and_time_left(monkeypatch):
    clock = Clock()
    text = _console(monkeypatch, clock, terminal=False)
    _run(clock, total=3000)
    lines = [line for line in text.getvalue().splitlines() if "elapsed" in line]
    assert lines == [
        "clips 300/3000 (10%), 1 shards, 10.0 clips/s, 0:30 elapsed, ~4:30 left",
        "clips 600/3000 (20%), 3 shards, 10.0 clips/s, 1:00 elapsed, ~4:00 left",
    ]


def test_without_a_total_the_line_says_what_is_known(monkeypatch):
    clock = Clock()
    text = _console(monkeypatch, clock, terminal=False)
    _run(clock, total=None)
    lines = [line for line in text.getvalue().splitlines() if "elapsed" in line]
    assert lines[0] == "clips 300, 1 shards, 10.0 clips/s, 0:30 elapsed"


def test_on_a_terminal_the_bar_alone_shows_progress(monkeypatch):
    clock = Clock()
    text = _console(monkeypatch, clock, terminal=True)
    _run(clock, total=3000)
    assert "elapsed" not in text.getvalue()
    assert "clips/s" in text.getvalue()


def test_a_block_failing_before_any_progress_leaves_no_empty_bar(monkeypatch):
    text = _console(monkeypatch, Clock(), terminal=False)
    try:
        with progress_bar("steps"):
            raise ValueError("bad input")
    except ValueError:
        pass
    assert text.getvalue() == ""


def test_a_block_failing_after_some_progress_shows_how_far_it_got(monkeypatch):
    text = _console(monkeypatch, Clock(), terminal=False)
    try:
        with progress_bar("steps") as (bar, task):
            bar.update(task, completed=7)
            raise ValueError("bad input")
    except ValueError:
        pass
    assert "steps" in text.getvalue() and "7" in text.getvalue()


def test_an_error_printed_under_a_bar_comes_after_it(monkeypatch):
    text = _console(monkeypatch, Clock(), terminal=False)
    with progress_bar("clips") as (bar, task):
        bar.update(task, completed=3)
        cli_common.print_error("the list is gone")
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    assert lines[-1] == "error: the list is gone"
    assert lines[0].startswith("clips") and "3" in lines[0]
    assert len(lines) == 2


def test_a_command_failing_up_front_prints_its_error_alone(tmp_path):
    missing = tmp_path / "missing.csv"
    args = ["ingest", "--segments", str(missing), "--out", str(tmp_path / "ds")]
    result = CliRunner().invoke(app, args, env={"GX_ANALYTICS_ENABLED": "false"})
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: {missing}: file not found"]
