"""workflows/help_text.py: command help is wrapped by paragraph at the terminal's width."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from workflows.cli import app
from workflows.help_text import reflow


def test_reflow_joins_the_lines_of_each_paragraph() -> None:
    text = "First line\nof the first.\n\nSecond\nparagraph, three\nlines."
    assert reflow(text) == "First line of the first.\n\nSecond paragraph, three lines."


def test_reflow_keeps_lists_indented_text_and_click_no_rewrap_blocks() -> None:
    listed = "Steps:\n- fetch\n- decode"
    indented = "Example:\n    audiomill ingest --out x"
    kept = "\b\nline one\nline two"
    assert reflow(f"{listed}\n\n{indented}\n\n{kept}") == f"{listed}\n\n{indented}\n\n{kept}"


def test_help_paragraphs_wrap_at_the_terminal_width() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    prose = lines[lines.index("Train a classifier on a dataset's embedding or waveform shards.") :]
    prose = prose[2:]
    prose = prose[: prose.index("")]  # the second paragraph, as shown
    assert len(prose) > 3
    assert all(len(line) > 60 for line in prose[:-1]), prose  # no line cut short but the last


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``command`` and every command under it, each with the words naming it (the root: none)."""
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, (*path, name))


def test_every_help_is_whole_at_80_columns() -> None:
    runner = CliRunner()
    for path, command in _commands(typer.main.get_command(app)):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        assert "…" not in result.output, (path, result.output)
        words = result.output.split()
        names = [n for p in command.params if not p.hidden for n in p.opts + p.secondary_opts]
        assert all(n in words for n in names if n.startswith("--")), (path, result.output)


def test_negative_names_go_under_their_flags_at_80_columns() -> None:
    """Side by side, ``--class-weights --no-class-weights`` squeezed the help column to 15
    characters, and ``multi_level_attention`` was cut in two."""
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    cells = [line.strip("│ ").split() for line in result.output.splitlines()]
    flag = next(n for n, words in enumerate(cells) if words[:1] == ["--class-weights"])
    assert "--no-class-weights" not in cells[flag]
    assert cells[flag + 1][:1] == ["--no-class-weights"]
    assert "multi_level_attention" in result.output.split()
