"""A Beam worker's stderr drops the tracebacks of errors the command reports in one line."""

from __future__ import annotations

import io

from pipelines.beam_worker import ReportedTracebacksDropped


def test_only_reported_errors_tracebacks_and_their_newline_are_dropped() -> None:
    out = io.StringIO()
    stderr = ReportedTracebacksDropped(out)
    reported = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        "pipelines.storage.DatasetAccessError: cannot write a shard in /d: Permission denied\n"
    )
    other = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad\n'
    for text in (reported, "\n", other, "\n", "a line\n", "\n"):
        stderr.write(text)
    stderr.flush()
    assert out.getvalue() == other + "\na line\n\n"
