"""Later stages follow what an earlier stage's run did to its outputs: a stage that runs
again after a failure and re-makes nothing leaves the stages after it skipped."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from tests.workflow_helpers import calls, count_call
from workflows.cli import app
from workflows.runner import outputs_fingerprint

WORKFLOW = """
vars: {{work: {work}, fail: "", partial: false, note: a}}
state: ${{work}}/state.json
stages:
  - name: ingest
    call: tests.test_workflow_reruns:make_once
    kwargs: {{out: "${{work}}/ds/data.txt", counter: "${{work}}/calls-ingest"}}
    outputs: ["${{work}}/ds/data.txt"]
  - name: embed
    call: tests.test_workflow_reruns:make_once
    kwargs:
      out: ${{work}}/emb/data.txt
      source: ${{work}}/ds/data.txt
      counter: ${{work}}/calls-embed
      fail: ${{fail}}
      partial: ${{partial}}
      note: ${{note}}
    outputs: ["${{work}}/emb"]
  - name: train
    call: tests.test_workflow_reruns:make_once
    kwargs:
      out: ${{work}}/run/data.txt
      source: ${{work}}/emb
      counter: ${{work}}/calls-train
    outputs: ["${{work}}/run/data.txt"]
"""


def make_once(
    out: str,
    counter: str,
    source: str = "",
    fail: str = "",
    partial: bool = False,
    note: str = "",
) -> dict:
    """Write ``out`` unless it is there already, like a stage that skips work already done;
    with ``fail``, fail at once (after writing a stray file beside ``out`` if ``partial``)."""
    count_call(counter)
    path = Path(out)
    if fail:
        if partial:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_name("partial.txt").write_text(fail)
            path.unlink(missing_ok=True)
        raise RuntimeError(fail)
    made = not path.exists()
    if made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{source}:{note}")
    return {"clips": int(made)}


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "w"
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW.format(work=work)).lstrip("\n"))
    return path, work


def _run(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", str(path), *args])
    return result.exit_code, " ".join(result.output.split())


def _run_ids(work: Path) -> dict[str, str]:
    stages = json.loads((work / "state.json").read_text())["stages"]
    return {name: rec["run_id"] for name, rec in stages.items()}


def test_stage_rerun_after_failure_that_remakes_nothing_keeps_later_stages(tmp_path: Path):
    path, work = _setup(tmp_path)
    assert _run(path)[0] == 0
    code, output = _run(path)
    assert code == 0 and output.count("skipped, up to date") == 3, output
    first = _run_ids(work)

    code, output = _run(path, "--set", "fail=wrong PCA file")  # fails at once, writes nothing
    assert code == 1 and "RuntimeError: wrong PCA file" in output, output
    code, output = _run(path)
    assert code == 0, output
    assert "embed: running (failed last time)" in output
    assert "train: skipped, up to date" in output
    assert {k for k, v in _run_ids(work).items() if v != first[k]} == {"embed"}
    assert calls(work / "calls-embed") == 3 and calls(work / "calls-train") == 1

    code, output = _run(path, "--only", "embed")  # forced, re-makes nothing
    assert code == 0 and calls(work / "calls-embed") == 4, output
    code, output = _run(path)
    assert code == 0 and output.count("skipped, up to date") == 3, output
    assert calls(work / "calls-train") == 1


def test_rerun_that_remakes_outputs_still_reruns_later_stages(tmp_path: Path):
    path, work = _setup(tmp_path)
    assert _run(path)[0] == 0

    # the failed attempt left a stray file: what embed leaves is not what its success left
    code, output = _run(path, "--set", "fail=half written", "--set", "partial=true")
    assert code == 1, output
    code, output = _run(path)
    assert code == 0 and "train: running ('embed' runs before it)" in output, output
    assert calls(work / "calls-train") == 2

    # other parameters than the last success: later stages run, even if nothing was re-made
    code, output = _run(path, "--set", "note=b")
    assert code == 0 and "embed: running (parameters changed)" in output, output
    assert "train: running ('embed' runs before it)" in output
    assert calls(work / "calls-train") == 3

    # an output re-made by a forced run
    (work / "emb" / "data.txt").unlink()
    code, output = _run(path, "--set", "note=b", "--only", "embed")
    assert code == 0, output
    code, output = _run(path, "--set", "note=b")
    assert code == 0 and "train: running ('embed' ran since)" in output, output
    assert calls(work / "calls-train") == 4


def test_outputs_fingerprint_sees_files_added_rewritten_or_removed(tmp_path: Path):
    out = tmp_path / "out"
    assert outputs_fingerprint(None) is None and outputs_fingerprint(()) is None
    empty = outputs_fingerprint((str(out),))
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "a.txt").write_text("1")
    one = outputs_fingerprint((str(out),))
    assert one != empty and outputs_fingerprint((str(out),)) == one
    (out / "sub" / "a.txt").write_text("22")
    assert outputs_fingerprint((str(out),)) != one
    (out / "sub" / "a.txt").unlink()
    assert outputs_fingerprint((str(out),)) == empty

    url = "memory://wf-fingerprint/out"
    none = outputs_fingerprint((url,))
    import fsspec

    with fsspec.open(f"{url}/a.txt", "w") as fh:
        fh.write("1")
    made = outputs_fingerprint((url,))
    assert made != none and outputs_fingerprint((url,)) == made
    assert outputs_fingerprint((f"{url}/a.txt",)) != made
