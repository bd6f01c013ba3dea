"""A stage whose inputs changed since it last ran is not up to date: a segment list with rows
added, a file added to an audio folder. Inputs are a stage's ``inputs:``, else what its
``audiomill`` command reads; folders are walked without hidden entries and without what the
workflow writes itself."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.shared_data import FSDD_RECORDINGS
from tests.workflow_helpers import calls, count_call
from workflows import runner
from workflows.cli import app
from workflows.runner import inputs_fingerprint
from workflows.workflow_resolve import resolve_workflow
from workflows.workflow_schema import WorkflowError, load_workflow

ROOT = typer.main.get_command(app)
FSDD = FSDD_RECORDINGS

WORKFLOW = """
vars: {{work: {work}, segments: {segments}, audio: {audio}}}
state: ${{work}}/state.json
stages:
  - name: ingest
    call: tests.test_workflow_inputs_changes:copy_rows
    kwargs:
      segments: ${{segments}}
      out: ${{work}}/ds/rows.txt
      counter: ${{work}}/c-ingest
    inputs: ["${{segments}}", "${{audio}}"]
    outputs: ["${{work}}/ds/rows.txt"]
  - name: train
    call: tests.test_workflow_inputs_changes:copy_rows
    kwargs:
      segments: ${{work}}/ds/rows.txt
      out: ${{work}}/run/rows.txt
      counter: ${{work}}/c-train
    outputs: ["${{work}}/run/rows.txt"]
"""


def copy_rows(segments: str, out: str, counter: str) -> dict:
    """Copy ``segments`` to ``out`` when they differ, like an ingest that adds new rows only."""
    count_call(counter)
    text = Path(segments).read_text()
    path = Path(out)
    if path.exists() and path.read_text() == text:
        return {"clips": 0}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return {"clips": len(text.splitlines())}


def _setup(tmp_path: Path, audio: Path | None = None) -> tuple[Path, Path, Path, Path]:
    work, segments = tmp_path / "w", tmp_path / "fsdd80.csv"
    audio = audio or tmp_path / "audio"
    (audio / "bird").mkdir(parents=True, exist_ok=True)
    (audio / "bird" / "a.wav").write_bytes(b"a" * 10)
    segments.write_text("path,label\nbird/a.wav,bird\n")
    path = tmp_path / "wf.yaml"
    text = WORKFLOW.format(work=work, segments=segments, audio=audio)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path, work, segments, audio


def _run(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", str(path), *args])
    return result.exit_code, " ".join(result.output.split())


def test_rows_added_to_the_segment_list_rerun_the_stage_and_later_ones(tmp_path: Path):
    path, work, segments, _ = _setup(tmp_path)
    assert _run(path)[0] == 0
    code, output = _run(path, "--dry-run")
    assert code == 0 and output.count("skipped, up to date") == 2, output

    with segments.open("a") as fh:
        fh.write("bird/b.wav,bird\n")
    code, output = _run(path, "--dry-run")
    assert code == 0, output
    assert f"ingest: would run (inputs changed: {segments})" in output
    assert "train: would run ('ingest' runs before it)" in output
    assert calls(work / "c-ingest") == 1

    code, output = _run(path)
    assert code == 0 and f"ingest: running (inputs changed: {segments})" in output, output
    assert (work / "run" / "rows.txt").read_text().count("bird/") == 2
    code, output = _run(path)
    assert code == 0 and output.count("skipped, up to date") == 2, output
    assert calls(work / "c-ingest") == calls(work / "c-train") == 2


def test_a_rerun_on_changed_inputs_that_remakes_nothing_keeps_later_stages(tmp_path: Path):
    path, work, segments, _ = _setup(tmp_path)
    assert _run(path)[0] == 0
    os.utime(segments, ns=(1, 1))  # touched, same rows: ingest runs and re-makes nothing
    code, output = _run(path)
    assert code == 0 and "ingest: running (inputs changed:" in output, output
    assert "ingest: done in" in output and "outputs unchanged" in output
    assert "train: skipped, up to date" in output and calls(work / "c-train") == 1


def test_folder_inputs_see_files_added_not_hidden_ones_nor_the_workflows_own(tmp_path: Path):
    audio = tmp_path / "audio"
    path, work, _, _ = _setup(tmp_path, audio)
    text = path.read_text().replace(f"work: {work}", f"work: {audio}/out")
    path.write_text(text)  # the work folder inside the audio folder
    assert _run(path)[0] == 0
    (audio / ".DS_Store").write_text("x")
    (audio / "bird" / ".hidden.wav").write_text("x")
    code, output = _run(path)
    assert code == 0 and output.count("skipped, up to date") == 2, output

    shutil.copy(audio / "bird" / "a.wav", audio / "bird" / "new_clip.wav")
    code, output = _run(path, "--dry-run")
    assert f"ingest: would run (inputs changed: {audio})" in output, output
    (audio / "bird" / "new_clip.wav").unlink()
    code, output = _run(path, "--dry-run")
    assert output.count("skipped, up to date") == 2, output
    (audio / "bird" / "a.wav").write_bytes(b"b" * 11)  # rewritten
    code, output = _run(path, "--dry-run")
    assert f"ingest: would run (inputs changed: {audio})" in output, output


def test_records_without_input_fingerprints_adopt_them_then_follow_changes(tmp_path: Path):
    path, work, segments, _ = _setup(tmp_path)
    assert _run(path)[0] == 0
    state = json.loads((work / "state.json").read_text())
    for record in state["stages"].values():
        record.pop("inputs")  # as written before inputs were looked at
    (work / "state.json").write_text(json.dumps(state))
    code, output = _run(path)
    assert code == 0 and output.count("skipped, up to date") == 2, output
    assert (
        str(segments) in json.loads((work / "state.json").read_text())["stages"]["ingest"]["inputs"]
    )
    segments.write_text("path,label\n")
    code, output = _run(path, "--dry-run")
    assert f"inputs changed: {segments}" in output, output


def test_inputs_changed_after_a_failed_run_are_not_resumed(tmp_path: Path):
    path, work, segments, _ = _setup(tmp_path)
    plan = resolve_workflow(load_workflow(path, ROOT), {}, ROOT)
    stage = plan.stages[0]
    state = runner.WorkflowState(str(work / "state.json"), "wf")
    now = inputs_fingerprint(stage.inputs)
    state.stages["ingest"] = {"status": runner.FAILED, "digest": stage.digest, "upstream": {},
                              "inputs": now}  # fmt: skip
    assert runner.earlier_run(stage, (), state, set(), now) == runner.RESUMABLE
    segments.write_text("other\n")
    later = inputs_fingerprint(stage.inputs)
    assert runner.earlier_run(stage, (), state, set(), later) == runner.STALE


def _plan_inputs(tmp_path: Path, stage_text: str) -> tuple[str, ...]:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "vars: {empty: ''}\nstages:\n" + textwrap.indent(textwrap.dedent(stage_text), "  ")
    )
    return resolve_workflow(load_workflow(path, ROOT), {}, ROOT).stages[0].inputs


def test_command_stages_read_what_their_command_reads(tmp_path: Path):
    ingest = """
        - name: ingest
          command: ingest
          options:
            segments: fsdd80.csv
            audio_root: /data/fsdd
            out: work/dataset
            workers: 2
        """
    assert _plan_inputs(tmp_path, ingest) == ("fsdd80.csv", "/data/fsdd")
    assert _plan_inputs(tmp_path, ingest + "  inputs: []\n") == ()
    prepare = """
        - name: prepare
          command: prepare audioset
          args: [a.csv, b.csv]
          options: {classes: c.csv, out: prepared, audio_root: "s3://bucket/audio"}
        """
    assert _plan_inputs(tmp_path, prepare) == ("c.csv", "a.csv", "b.csv")  # URLs not looked at
    imported = """
        - name: import
          command: import audioset-tfrecord
          args: ["bal_train/*.tfrecord"]
          options: {classes: c.csv, out: ds, split: bal_train}
        """
    assert _plan_inputs(tmp_path, imported) == ("c.csv", "bal_train/*.tfrecord")
    packed = """
        - name: import
          command: import packed-h5
          args: [bal_train.h5]
          options: {classes: c.csv, out: ds, split: bal_train, segments: [s.csv]}
        """
    assert _plan_inputs(tmp_path, packed) == ("c.csv", "s.csv", "bal_train.h5")
    call = """
        - name: c
          call: tests.workflow_helpers:count_call
          kwargs: {counter: x}
        """
    assert _plan_inputs(tmp_path, call) == ()
    assert _plan_inputs(tmp_path, call + "  inputs: [a, '${empty}', a, b]\n") == ("a", "b")


def test_command_inputs_name_parameters_the_commands_have():
    from workflows.workflow_resolve import COMMAND_INPUTS
    from workflows.workflow_schema import find_command

    for path, names in COMMAND_INPUTS.items():
        params = {p.name for p in find_command(ROOT, tuple(path.split())).params}
        assert set(names) <= params, (path, set(names) - params)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [("{a: b}", "'inputs' must be a path or a list of paths"),
     ("['s3://b/*.csv']", "a pattern works for local files only")],
)  # fmt: skip
def test_bad_inputs_name_the_line(tmp_path: Path, inputs: str, message: str):
    stage = "- name: c\n  call: tests.workflow_helpers:count_call\n  kwargs: {counter: x}\n"
    stage += f"  inputs: {inputs}\n"
    with pytest.raises(WorkflowError, match=rf"wf.yaml:6: stage 'c': .*{message}"):
        _plan_inputs(tmp_path, stage)


def test_glob_inputs_and_the_walk_bound(tmp_path: Path, monkeypatch):
    (tmp_path / "r").mkdir()
    for name in ("a.tfrecord", "b.tfrecord", "c.txt"):
        (tmp_path / "r" / name).write_text(name)
    pattern = str(tmp_path / "r" / "*.tfrecord")
    before = inputs_fingerprint((pattern, str(tmp_path / "r"), str(tmp_path / "none")))
    assert before[str(tmp_path / "none")] is None
    (tmp_path / "r" / "c.txt").write_text("longer")
    after = inputs_fingerprint((pattern, str(tmp_path / "r")))
    assert (
        after[pattern] == before[pattern]
        and after[str(tmp_path / "r")] != before[str(tmp_path / "r")]
    )
    monkeypatch.setattr(runner, "MAX_INPUT_FILES", 2)  # the walk stops after 2 files
    bounded = inputs_fingerprint((str(tmp_path / "r"),))
    (tmp_path / "r" / "c.txt").write_text("longer still")
    assert inputs_fingerprint((str(tmp_path / "r"),)) == bounded


@pytest.mark.skipif(not FSDD.is_dir(), reason="needs the FSDD recordings")
def test_folder_recipe_sees_a_new_file_in_its_root(tmp_path: Path):
    fold = tmp_path / "fold"
    for label, names in (("bird", ["0_george_0", "0_george_1"]), ("dog", ["1_george_0"])):
        (fold / label).mkdir(parents=True)
        for name in names:
            shutil.copy(FSDD / f"{name}.wav", fold / label)
    args = ["recipes/folder", "--set", f"root={fold}", "--set", f"work={tmp_path / 'wf1'}"]
    code, output = _run(Path(args[0]), *args[1:], "--only", "prepare")
    assert code == 0, output
    shutil.copy(FSDD / "1_george_2.wav", fold / "bird" / "new_clip.wav")
    code, output = _run(Path(args[0]), *args[1:], "--dry-run")
    assert f"prepare: would run (inputs changed: {fold})" in output, output
    code, output = _run(Path(args[0]), *args[1:], "--only", "prepare")
    assert code == 0, output
    assert "new_clip.wav" in (tmp_path / "wf1" / "prepared" / "manifest.csv").read_text()
