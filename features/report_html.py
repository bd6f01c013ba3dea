"""Pieces of the offline HTML reports: Agg figures as embedded PNG, tables, notes, style."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 90

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.none { color: #777; font-style: italic; }
img { max-width: 100%; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
"""


def figure(width: float = 8.0, height: float = 3.5) -> Figure:
    """A Matplotlib figure on the Agg canvas (no display needed), in inches."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_base64(fig: Figure) -> str:
    """The figure as base64 PNG text."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.1)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def shorten(name: str, width: int = 28) -> str:
    """``name`` cut to ``width`` characters with an ellipsis."""
    return name if len(name) <= width else name[: width - 1] + "…"


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table; ints get thousands separators, None shows as a dash."""

    def cell(v: object) -> str:
        return "–" if v is None else html.escape(f"{v:,}" if isinstance(v, int) else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_img(png: str, alt: str) -> str:
    """An ``<img>`` embedding base64 PNG text."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def html_note(text: str) -> str:
    """A greyed-out paragraph (for "nothing to show")."""
    return f'<p class="none">{html.escape(text)}</p>'
