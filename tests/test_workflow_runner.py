"""The workflow runner: schema errors with lines, substitution, skipping, re-running, failures."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.workflow_helpers import calls
from workflows.cli import app
from workflows.cli_run import workflow_file
from workflows.workflow_resolve import Plan, parse_overrides, resolve_workflow
from workflows.workflow_schema import WorkflowError, load_workflow

ROOT = typer.main.get_command(app)
HELPERS = "tests.workflow_helpers"


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def plan_of(path: Path, **overrides: str) -> Plan:
    return resolve_workflow(load_workflow(path, ROOT), overrides, ROOT)


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *map(str, args)])
    return result.exit_code, result.output


def records(work: Path) -> dict[str, dict]:
    return json.loads((work / "state.json").read_text())["stages"]


def run_ids(work: Path) -> dict[str, str]:
    return {name: rec["run_id"] for name, rec in records(work).items()}


# fmt: off
BAD = [
    # (file, line, expected message)
    ("""
     name: demo
     stages:
       - name: train
         command: dataset info
         stepz: 3
     """, 5, "stage 'train': unknown key 'stepz'"),
    ("""
     stages:
       - name: a
         command: dataset info
     stagez: []
     """, 4, "the workflow: unknown key 'stagez'"),
    ("""
     stages:
       - name: a
         args: [x]
     """, 2, "stage 'a': give exactly one of 'command'"),
    ("""
     stages:
       - name: a
         command: dataset info
         call: tests.workflow_helpers:calls
     """, 2, "give exactly one of 'command'"),
    ("""
     stages:
       - name: a
         command: dataset info
       - name: a
         command: dataset verify
     """, 4, "stage 'a': the name is used by an earlier stage"),
    ("""
     stages:
       - name: Train
         command: dataset info
     """, 2, "name must use lowercase letters"),
    ("""
     stages:
       - name: a
         command: dataset verfy
     """, 3, "unknown command 'dataset verfy': dataset has info, failures, verify"),
    ("""
     stages:
       - name: a
         command: dataset
     """, 3, "'dataset' needs a sub-command: info, failures, verify"),
    ("""
     stages:
       - name: a
         command: run
     """, 3, "'run' cannot run inside a workflow"),
    ("""
     stages:
       - name: a
         command: dataset info
         options:
           jsn: true
     """, 5, "stage 'a': unknown option 'jsn' for 'info'"),
    ("""
     stages:
       - name: a
         command: dataset info
         options: [json]
     """, 4, "stage 'a': options must be a mapping"),
    ("""
     stages:
       - name: a
         command: dataset info
         args: ds
     """, 4, "stage 'a': 'args' must be a list of values"),
    ("""
     stages:
       - name: a
         command: dataset info
         kwargs: {x: 1}
     """, 4, "'kwargs' goes with 'call'"),
    ("""
     stages:
       - name: a
         call: no_such_module_here:main
     """, 3, "no Python module 'no_such_module_here'"),
    ("""
     stages:
       - name: a
         command: dataset info
         needs: [b]
       - name: b
         command: dataset info
     """, 4, "needs 'b', which is not an earlier stage"),
    ("""
     stages:
       - name: a
         command: dataset info
         command: dataset verify
     """, 4, "key 'command' repeated (first on line 3)"),
    ("""
     stages:
       - name: a
         command: dataset info
         args: [x
     """, 5, "not valid YAML"),
    ("""
     vars:
       work: out
     stages:
       - name: a
         command: dataset info
         args:
           - ${work}/ok
           - ${wrok}/typo
     """, 8, "unknown variable 'wrok' (vars: work"),
    ("""
     stages:
       - name: a
         command: dataset info
         args: ["${open"]
     """, 4, "unterminated '${'"),
    ("""
     stages:
       - name: a
         command: ingest
         options:
           workers: true
     """, 5, "stage 'a': option 'workers' takes a value, not true"),
    ("""
     stages:
       - name: a
         command: dataset info
         options:
           json: yes please
     """, 5, "option 'json' is a flag: write true or false"),
    ("""
     vars:
       a: ${b}
       b: x${a}
     stages:
       - name: s
         command: dataset info
         args: ["${a}"]
     """, 3, "variables refer to each other: a -> b -> a"),
]
# fmt: on


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_schema_errors_name_the_line_and_key(tmp_path: Path, text: str, line: int, message: str):
    path = write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        plan_of(path)
    assert info.value.line == line, str(info.value)
    assert f"wf.yaml:{line}: " in str(info.value)
    assert message in str(info.value)


def test_cli_reports_schema_error_and_exits_2(tmp_path: Path):
    path = write(tmp_path, BAD[0][0])
    code, output = run(path)
    assert code == 2
    assert "wf.yaml:5: stage 'train': unknown key 'stepz'" in output.replace("\n", "")


SUBST = """
vars:
  work: out
  sub: ${work}/sub
  n: 3
  flag: false
  nothing: null
stages:
  - name: info
    command: predict
    args: ["${sub}/x", "$${literal}", "${env:WF_TEST_VALUE}", "${n}-${flag}"]
    options: {json: "${flag}"}
  - name: ingest
    command: ingest
    options:
      segments: ${work}/seg.csv
      out: ${work}/ds
      workers: ${n}
      precut: false
      exact_cuts: true
      retry_reason: [a, b]
      storage_options: {client_kwargs: {endpoint_url: "http://x"}}
      classes: ${nothing}
  - name: py
    call: tests.workflow_helpers:small_dataset
    kwargs: {counter: "${work}/c", root: "${work}/r", clips: "${n}"}
"""


def test_substitution_types_flags_and_overrides(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WF_TEST_VALUE", "from-env")
    path = write(tmp_path, SUBST)
    info, ingest, py = plan_of(path).stages
    assert info.argv == ("predict", "out/sub/x", "${literal}", "from-env", "3-false")
    assert ingest.argv == (
        "ingest", "--segments", "out/seg.csv", "--out", "out/ds", "--workers", "3",
        "--no-precut", "--exact-cuts", "--retry-reason", "a", "--retry-reason", "b",
        "--storage-options", '{"client_kwargs": {"endpoint_url": "http://x"}}',
    )  # fmt: skip
    assert py.kwargs == {"counter": "out/c", "root": "out/r", "clips": 3}

    again = plan_of(path, work="/w", n="5", flag="yes").stages
    assert again[0].argv == ("predict", "--json", "/w/sub/x", "${literal}", "from-env", "5-true")
    assert again[2].kwargs == {"counter": "/w/c", "root": "/w/r", "clips": 5}
    assert again[1].digest != ingest.digest and again[2].digest != py.digest
    assert plan_of(path).stages[1].digest == ingest.digest

    for bad, message in (({"n": "many"}, "n is a number"), ({"flag": "maybe"}, "true or false"),
                         ({"wrok": "x"}, "not a variable of this workflow")):  # fmt: skip
        with pytest.raises(WorkflowError, match=message):
            plan_of(path, **bad)
    assert parse_overrides(["a=1", "b=x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(WorkflowError, match="KEY=VALUE"):
        parse_overrides(["novalue"])


def test_dependencies_follow_outputs(tmp_path: Path):
    path = write(tmp_path, """
        vars: {work: w}
        stages:
          - name: make
            call: tests.workflow_helpers:calls
            kwargs: {counter: "${work}/a"}
            outputs: ["${work}/ds/manifest.json"]
          - name: check
            command: dataset verify
            args: ["${work}/ds"]
          - name: other
            call: tests.workflow_helpers:calls
            kwargs: {counter: "${work}/b"}
            outputs: []
          - name: last
            call: tests.workflow_helpers:calls
            kwargs: {counter: "${work}/c"}
            needs: [make]
        """)  # fmt: skip
    assert plan_of(path).depends == {
        "make": (),
        "check": ("make",),  # reads inside make's output directory
        "other": ("check",),  # check declares no outputs: everything after it depends on it
        "last": ("make", "check"),  # needs, and check again
    }


WORKFLOW = """
name: e2e
vars:
  work: {work}
  clips: 1
  top: 5
  size: 3
state: ${{work}}/state.json
stages:
  - name: dataset
    call: tests.workflow_helpers:small_dataset
    kwargs: {{root: "${{work}}/ds", counter: "${{work}}/calls-dataset", clips: "${{size}}"}}
    outputs: ["${{work}}/ds/manifest.json"]
  - name: info
    command: dataset info
    args: ["${{work}}/ds"]
    outputs: []
  - name: demo
    call: tests.workflow_helpers:demo_audio
    kwargs:
      out_dir: ${{work}}/demo
      counter: ${{work}}/calls-demo
      clips_per_class: ${{clips}}
    outputs: ["${{work}}/demo/manifest.csv"]
  - name: inspect
    command: segments inspect
    args: ["${{work}}/demo/manifest.csv"]
    options: {{classes: "${{work}}/demo/classes.csv", top: "${{top}}"}}
    outputs: []
"""


def test_run_end_to_end_skips_and_reruns_what_changed(tmp_path: Path):
    work = tmp_path / "w"
    path = write(tmp_path, WORKFLOW.format(work=work))
    code, output = run(path)
    assert code == 0, output
    flat = " ".join(output.split())  # rich wraps long paths at the terminal width
    assert "3 clips" in flat  # dataset info's own line
    assert "0 problem line(s)" in flat  # segments inspect's own line
    recs = records(work)
    assert all(r["status"] == "finished" for r in recs.values()) and len(recs) == 4
    assert recs["dataset"]["summary"] == {"clips": 3, "failures": {"unavailable": 1}}
    assert recs["demo"]["summary"]["clips"] == 5
    assert calls(work / "calls-dataset") == calls(work / "calls-demo") == 1
    first = run_ids(work)

    code, output = run(path)
    assert code == 0 and output.count("skipped") >= 4, output
    assert run_ids(work) == first
    assert calls(work / "calls-dataset") == calls(work / "calls-demo") == 1

    code, output = run(path, "--set", "top=3")  # only inspect's parameters change
    assert code == 0, output
    changed = {k for k, v in run_ids(work).items() if v != first[k]}
    assert changed == {"inspect"} and "parameters changed" in output
    second = run_ids(work)

    code, output = run(path, "--set", "top=3", "--set", "clips=2")  # demo changes, inspect reads it
    assert code == 0, output
    changed = {k for k, v in run_ids(work).items() if v != second[k]}
    assert changed == {"demo", "inspect"}
    assert calls(work / "calls-demo") == 2 and calls(work / "calls-dataset") == 1
    assert "'demo' runs before it" in output
    third = run_ids(work)

    (work / "demo" / "manifest.csv").unlink()  # a declared output gone: the stage re-runs
    code, output = run(path, "--set", "top=3", "--set", "clips=2")
    assert code == 0 and "is missing" in output
    assert {k for k, v in run_ids(work).items() if v != third[k]} == {"demo", "inspect"}


def test_from_and_only(tmp_path: Path):
    work = tmp_path / "w"
    path = write(tmp_path, WORKFLOW.format(work=work))
    assert run(path)[0] == 0
    first = run_ids(work)

    code, output = run(path, "--only", "dataset")
    assert code == 0 and "forced by --only" in output
    assert calls(work / "calls-dataset") == 2
    assert {k for k, v in run_ids(work).items() if v != first[k]} == {"dataset"}
    second = run_ids(work)

    code, output = run(path)  # info reads what dataset rewrote: it re-runs, the rest does not
    assert code == 0 and "'dataset' ran since" in output
    assert {k for k, v in run_ids(work).items() if v != second[k]} == {"info"}
    third = run_ids(work)

    code, output = run(path, "--from", "demo")
    assert code == 0
    assert {k for k, v in run_ids(work).items() if v != third[k]} == {"demo", "inspect"}
    assert calls(work / "calls-demo") == 2 and calls(work / "calls-dataset") == 2

    code, output = run(path, "--from", "nope")
    assert code == 2 and "stages: dataset, info, demo, inspect" in output
    code, output = run(path, "--from", "demo", "--only", "info")
    assert code == 2 and "do not go together" in output


def test_failing_stage_stops_the_run_and_keeps_earlier_records(tmp_path: Path):
    work = tmp_path / "w"
    path = write(tmp_path, f"""
        vars: {{work: {work}}}
        state: ${{work}}/state.json
        stages:
          - name: first
            call: {HELPERS}:count_call
            kwargs: {{counter: "${{work}}/calls-first"}}
          - name: bad
            command: dataset info
            args: ["${{work}}/missing"]
          - name: after
            call: {HELPERS}:count_call
            kwargs: {{counter: "${{work}}/calls-after"}}
        """)  # fmt: skip
    code, output = run(path)
    assert code == 1
    assert "stage 'bad' failed" in output.replace("\n", "")
    recs = records(work)
    assert recs["first"]["status"] == "finished"
    assert recs["bad"]["status"] == "failed" and recs["bad"]["exit_code"] == 2
    assert "after" not in recs and "not run" in output
    assert calls(work / "calls-first") == 1 and calls(work / "calls-after") == 0

    code, output = run(path)  # resumes at the failed stage
    assert code == 1 and calls(work / "calls-first") == 1
    assert records(work)["first"] == recs["first"]

    path.write_text(
        path.read_text()
        .replace("command: dataset info", f"call: {HELPERS}:explode")
        .replace('args: ["${work}/missing"]', 'kwargs: {counter: "${work}/x"}')
    )
    code, output = run(path)
    assert code == 1 and "RuntimeError: boom" in output
    assert "boom" in records(work)["bad"]["error"]


def test_dry_run_runs_and_writes_nothing(tmp_path: Path):
    work = tmp_path / "w"
    path = write(tmp_path, WORKFLOW.format(work=work))
    code, output = run(path, "--dry-run")
    assert code == 0, output
    assert "audiomill segments inspect --classes" in output.replace("\n", " ")
    assert output.count("would run") >= 4
    assert not work.exists()


def test_default_state_file_and_when(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, f"""
        name: plain
        vars: {{enabled: false}}
        stages:
          - name: one
            call: {HELPERS}:count_call
            kwargs: {{counter: calls-one}}
          - name: two
            when: ${{enabled}}
            call: {HELPERS}:count_call
            kwargs: {{counter: calls-two}}
        """)  # fmt: skip
    code, output = run(path)
    assert code == 0 and "'when' is false" in output
    state = json.loads((tmp_path / ".audiomill" / "plain.state.json").read_text())
    assert set(state["stages"]) == {"one"} and state["workflow"] == "plain"
    assert calls(tmp_path / "calls-two") == 0
    assert run(path, "--set", "enabled=true")[0] == 0
    assert calls(tmp_path / "calls-two") == 1 and calls(tmp_path / "calls-one") == 1


def test_builtin_quickstart_is_valid(tmp_path: Path):
    path = workflow_file("quickstart")
    plan = resolve_workflow(load_workflow(path, ROOT), {"work": str(tmp_path)}, ROOT)
    assert [s.name for s in plan.stages] == [
        "demo-audio", "ingest", "verify", "embed", "index", "report", "train-attention",
        "train-cnn", "evaluate-attention", "evaluate-cnn", "summary"]  # fmt: skip
    assert all(s.enabled for s in plan.stages)
    assert plan.state == f"{tmp_path}/workflow-state.json"
    stages = {s.name: s for s in plan.stages}
    assert "--tta" in stages["evaluate-cnn"].argv and "--mixup" in stages["train-attention"].argv
    assert set(plan.depends["summary"]) >= {"evaluate-attention", "evaluate-cnn"}
    with_ckpt = resolve_workflow(load_workflow(path, ROOT),
                                 {"work": str(tmp_path), "checkpoint": "m.ckpt"}, ROOT)  # fmt: skip
    assert dict(with_ckpt.stages[3].kwargs)["checkpoint"] == "m.ckpt"
    code, output = run("quickstart", "--dry-run", "--set", f"work={tmp_path}")
    assert code == 0 and "workflows.demo:make_demo" in output


INGEST_WORKFLOW = """
name: ingest-twice
state: {work}/state.json
stages:
  - name: demo
    call: tests.workflow_helpers:demo_audio
    kwargs: {{out_dir: "{work}/demo", counter: "{work}/calls-demo", clips_per_class: 1}}
    outputs: ["{work}/demo/manifest.csv"]
  - name: ingest
    command: ingest
    options:
      segments: {work}/demo/manifest.csv
      classes: {work}/demo/classes.csv
      audio-root: {work}/demo
      source: local
      clip-seconds: 0.5
      format: hdf5
      workers: 1
      out: {work}/ds
    outputs: ["{work}/ds/manifest.json"]
"""


def test_ingest_stage_reports_this_runs_clips_beside_the_dataset_total(tmp_path: Path):
    work = tmp_path / "w"
    path = write(tmp_path, INGEST_WORKFLOW.format(work=work))
    code, output = run(path)
    assert code == 0, output
    first = records(work)["ingest"]["summary"]
    assert first["clips"] == first["dataset_clips"] > 0 and first["failures"] == 0
    assert f"{first['clips']} ({first['clips']} in dataset)" in output

    code, output = run(path, "--only", "ingest")  # everything is committed already
    assert code == 0, output
    again = records(work)["ingest"]["summary"]
    assert again == {"clips": 0, "dataset_clips": first["clips"], "failures": 0}
    assert f"0 ({first['clips']} in dataset)" in output
