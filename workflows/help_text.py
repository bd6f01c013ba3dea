"""Command help laid out for the reader's terminal, whatever its width.

The commands' docstrings are wrapped at the source's line length. Typer joins the lines of a
help's first paragraph but keeps every line break of the others, and Rich then wraps each line
at the terminal's width, so on an 80-column terminal those paragraphs came out ragged (a line of
76 characters, then one of 12). :class:`ReflowingGroup` joins the lines of each paragraph before
the help is shown, so Rich wraps whole paragraphs.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


def reflow(text: str) -> str:
    """Join the lines of each paragraph of ``text`` with spaces; paragraphs stay apart.

    A paragraph whose lines after the first are indented or start a list item (``-``, ``*``)
    keeps its line breaks, as does one that follows a line holding only ``\\b`` (Click's mark
    for text not to rewrap).

    Parameters
    ----------
    text : str
        Help text, paragraphs separated by blank lines.

    Returns
    -------
    str
        The text with one line per paragraph, where that keeps its meaning.
    """
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.split("\n")
        laid_out = lines[0].strip() == "\b" or any(
            line.startswith((" ", "\t", "- ", "* ")) for line in lines[1:]
        )
        paragraphs.append(paragraph if laid_out else " ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _reflow_tree(command: Any) -> None:
    """Reflow the help of ``command`` and of every command under it, in place."""
    if command.help:
        command.help = reflow(command.help)
    for sub in (getattr(command, "commands", None) or {}).values():
        _reflow_tree(sub)


class ReflowingGroup(TyperGroup):
    """The top command group: reflows every command's help (:func:`reflow`) before running."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        _reflow_tree(self)
        return super().main(*args, **kwargs)
