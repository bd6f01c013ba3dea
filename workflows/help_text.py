"""Command help laid out for the reader's terminal, whatever its width.

The commands' docstrings are wrapped at the source's line length. Typer joins the lines of a
help's first paragraph but keeps every line break of the others, and Rich then wraps each line
at the terminal's width, so on an 80-column terminal those paragraphs came out ragged (a line of
76 characters, then one of 12). :class:`ReflowingGroup` joins the lines of each paragraph before
the help is shown, so Rich wraps whole paragraphs.

Typer lays options out in a table whose columns Rich cuts off with '…' where a word does not
fit: at 80 columns an option's help column is about 20 characters wide, too narrow for a long
option name, a URL or a default. When a help is shown, :class:`WrappingTable` takes the place
of the table Typer makes: option names and types keep their width, the help column wraps, and a
word wider than its column is folded onto the next line rather than cut. A flag's negative name
(``--no-resume``) goes under its name rather than beside it: side by side, the pairs took half
of an 80-column table and left the help 15 characters.
"""

from __future__ import annotations

from typing import Any

from rich.columns import Columns
from rich.console import RenderableType
from rich.style import StyleType
from rich.table import Table
from rich.text import Text
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


class WrappingTable(Table):
    """A table that wraps, and folds, whatever does not fit its columns instead of cutting it.

    Where the table makes its own columns (Typer's option panels), every column but the last
    keeps its text on one line, so that option names and types are shown whole and the last
    column, the help, wraps.
    """

    def add_row(
        self,
        *renderables: RenderableType | None,
        style: StyleType | None = None,
        end_section: bool = False,
    ) -> None:
        """Add a row as :meth:`rich.table.Table.add_row`, its text folding (:func:`_folding`)."""
        renderables = _stacked_names(renderables)
        if not self.columns:
            for n in range(len(renderables)):
                self.add_column(no_wrap=n < len(renderables) - 1, overflow="fold")
        super().add_row(*map(_folding, renderables), style=style, end_section=end_section)


OPTION_ROW_CELLS = 6
"""Cells of a row of Typer's option tables (after the required mark, where a table has one):
names, short names, negative names, negative short names, type, help."""


def _stacked_names(cells: tuple[RenderableType | None, ...]) -> tuple[RenderableType | None, ...]:
    """An option row of Typer's with its four name cells made one: the names and short names
    on a line, the negative ones on the next. Other rows (commands) are returned as they are."""
    head = len(cells) - OPTION_ROW_CELLS
    names = cells[head : head + 4]
    if head not in (0, 1) or not all(isinstance(cell, Text) for cell in names):
        return cells
    lines = [
        Text(" ").join(cell for cell in pair if cell.plain)
        for pair in (names[:2], names[2:])
        if any(cell.plain for cell in pair)
    ]
    return (*cells[:head], Text("\n").join(lines), *cells[head + 4 :])


def _folding(renderable: RenderableType | None) -> RenderableType | None:
    """``renderable``, its text (the items' of a :class:`~rich.columns.Columns`) set to fold a
    word too wide for its column onto the next line: a table cuts it with '…' otherwise."""
    if isinstance(renderable, Text):
        renderable.overflow = "fold"
    elif isinstance(renderable, Columns):
        for item in renderable.renderables:
            _folding(item)
    return renderable


class _WrappingHelpContext(TyperGroup.context_class):
    """A command's context whose help lays its tables out as :class:`WrappingTable`."""

    def get_help(self) -> str:
        """The command's help, its tables made by :class:`WrappingTable`."""
        from typer import rich_utils  # here: Typer imports it only to show a help or an error

        rich_utils.Table = WrappingTable
        return super().get_help()


def _prepare_tree(command: Any) -> None:
    """Reflow the help of ``command`` and of every command under it, in place, and have each
    show its help through :class:`_WrappingHelpContext`."""
    if command.help:
        command.help = reflow(command.help)
    command.context_class = _WrappingHelpContext
    for sub in (getattr(command, "commands", None) or {}).values():
        _prepare_tree(sub)


class ReflowingGroup(TyperGroup):
    """The top command group: before running, reflows every command's help (:func:`reflow`)
    and has every help lay its option tables out whole (:class:`WrappingTable`)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        _prepare_tree(self)
        return super().main(*args, **kwargs)
