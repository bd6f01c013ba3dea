"""Great Expectations in a forked service process (``pipelines.expectations_service``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from pipelines import expectations_service

ROOT = Path(__file__).resolve().parents[1]
SEGMENTS = {
    "clip_id": ["a_0", "a_0", "b_0"],  # a duplicate id: rows 0 and 1 fail
    "source": ["a.wav", "a.wav", "b.wav"],
    "start_s": [0.0, 0.0, 5.0],
    "end_s": [10.0, 10.0, 2.0],  # b ends before it starts
    "labels": [[0], [0], [1]],
    "num_unknown_labels": [0, 0, 0],
    "split": ["train"] * 3,
}
SCRIPT = """
import json, sys
import pandas as pd
import pyarrow as pa
from pipelines import expectations_service as service

started = service.start()
frame = pd.DataFrame(json.loads(sys.argv[1]))
failures, result = service.validate(frame, "segments", {"max_duration_s": 60.0}, "segments")
html = service.render_html(result)
try:
    service.validate(frame, "segments", {"no_such_arg": 1}, "segments")
    error = None
except service.ValidationServiceError as exc:
    error = str(exc)
again = service.validate(frame, "segments", {"max_duration_s": 60.0}, "segments")[0]
table = pa.Table.from_pandas(frame, preserve_index=False)  # labels become list<int64>
as_table = service.validate(table, "segments", {"max_duration_s": 60.0}, "segments")[0]
serving = service.serving()
service._service._process.kill()  # the service dies: the next call fails, it does not hang
try:
    service.render_html(result)
    died = None
except service.ValidationServiceError as exc:
    died = str(exc)
service.stop()
print(json.dumps({
    "started": started, "serving": serving, "failures": failures, "again": again,
    "as_table": as_table,
    "html": html.startswith("<") and "clip_id" in html, "error": error, "died": died,
    "ge_imported_here": "great_expectations" in sys.modules, "after_stop": service.serving(),
}))
"""


def _run_script(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a new Python process with :data:`SEGMENTS` as its argument."""
    env = dict(os.environ, GX_ANALYTICS_ENABLED="false", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", script, json.dumps(SEGMENTS)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_service_validates_renders_and_reports_errors_without_importing_ge_here():
    done = _run_script(SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["started"] and got["serving"] and not got["ge_imported_here"]
    want, _ = expectations_service.validate(
        pd.DataFrame(SEGMENTS), "segments", {"max_duration_s": 60.0}, "segments"
    )  # in this process, without a service
    assert (
        {int(k): v for k, v in got["failures"].items()}
        == want
        == {int(k): v for k, v in got["again"].items()}
        == {int(k): v for k, v in got["as_table"].items()}
    )
    assert set(want) == {0, 1, 2} and got["html"]
    assert "Great Expectations failed in its process" in got["error"]
    assert "Traceback" in got["error"] and "no_such_arg" in got["error"]
    assert "the Great Expectations process ended" in got["died"] and not got["after_stop"]


def test_a_table_is_validated_as_its_dataframe_would_be():
    frame = pd.DataFrame(SEGMENTS)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert pa.types.is_list(table.schema.field("labels").type)
    args = ({"max_duration_s": 60.0}, "segments")
    assert (
        expectations_service.validate(table, "segments", *args)[0]
        == (expectations_service.validate(frame, "segments", *args)[0])
    )


def test_no_service_once_ge_is_imported_here():
    import great_expectations  # noqa: F401

    assert not expectations_service.start()
    assert not expectations_service.serving()
    expectations_service.stop()  # nothing to stop


def test_unknown_suite_is_refused():
    with pytest.raises(ValueError, match="suite must be one of segments, clips"):
        expectations_service.validate(pd.DataFrame(SEGMENTS), "nope", {}, "segments")


def test_no_service_while_other_threads_run(monkeypatch):
    monkeypatch.delitem(sys.modules, "great_expectations", raising=False)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not expectations_service.start() and not expectations_service.serving()
    finally:
        release.set()
        other.join()


KILLED_PARENT = """
import json, os, signal, sys
import pandas as pd
from pipelines import expectations_service as service

assert service.start()
frame = pd.DataFrame(json.loads(sys.argv[1]))
request = ("validate", frame, "segments", {"max_duration_s": 60.0}, "segments")
service._service._conn.send(request)  # in flight: the service answers a parent that is gone
print(service._service._process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_service_of_a_killed_parent_exits_without_a_traceback():
    done = _run_script(KILLED_PARENT)  # the service inherits stderr: read once it exits too
    assert done.returncode == -9, done.stderr[-3000:]
    assert done.stdout.strip().isdigit()
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
