"""A stage whose declared outputs changed outside the workflow since its success is out of date
(an ``audiomill ingest`` by hand into the workflow's dataset), and so are the stages after it;
what the workflow's own later stages change in them (embed rewrites the manifest) is not."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from tests.workflow_helpers import calls, count_call
from workflows.cli import app

WORKFLOW = """
vars: {{work: {work}}}
state: ${{work}}/state.json
stages:
  - name: ingest
    call: tests.test_workflow_outputs_changed:ingest
    kwargs: {{dataset: "${{work}}/ds", counter: "${{work}}/calls-ingest"}}
    outputs: ["${{work}}/ds/manifest.json"]
  - name: embed
    call: tests.test_workflow_outputs_changed:embed
    kwargs: {{dataset: "${{work}}/ds", counter: "${{work}}/calls-embed"}}
    outputs: ["${{work}}/ds/embeddings"]
  - name: train
    call: tests.workflow_helpers:count_call
    kwargs: {{counter: "${{work}}/calls-train"}}
    outputs: ["${{work}}/calls-train"]
    needs: [embed]
"""


def ingest(dataset: str, counter: str) -> dict:
    """Ten clips into a new dataset, none into one that has them (like ``audiomill ingest``)."""
    count_call(counter)
    manifest = Path(dataset) / "manifest.json"
    if manifest.exists():
        return {"clips": 0, "dataset_clips": json.loads(manifest.read_text())["clips"]}
    _write_manifest(manifest, {"clips": 10})
    return {"clips": 10, "dataset_clips": 10}


def embed(dataset: str, counter: str) -> dict:
    """Embeddings of every clip, noted in the manifest (as ``audiomill embed`` does)."""
    count_call(counter)
    manifest = Path(dataset) / "manifest.json"
    body = json.loads(manifest.read_text())
    (Path(dataset) / "embeddings").mkdir(exist_ok=True)
    (Path(dataset) / "embeddings" / "all.txt").write_text(str(body["clips"]))
    _write_manifest(manifest, {**body, "embedded": body["clips"]})
    return {"clips": body["clips"]}


def _write_manifest(manifest: Path, body: dict) -> None:
    """Replace ``manifest`` atomically, as the dataset store does (a new inode)."""
    manifest.parent.mkdir(parents=True, exist_ok=True)
    part = manifest.with_suffix(".part")
    part.write_text(json.dumps(body))
    part.replace(manifest)


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "w"
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW.format(work=work)).lstrip("\n"))
    return path, work


def _run(path: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["run", str(path), *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_outputs_changed_outside_the_workflow_make_the_stage_and_later_ones_stale(
    tmp_path: Path,
) -> None:
    path, work = _setup(tmp_path)
    assert "10 (10 in dataset)" in _run(path)
    output = _run(path)  # embed rewrote ingest's manifest: the workflow's own doing
    assert output.count("skipped, up to date") == 3, output

    _write_manifest(work / "ds" / "manifest.json", {"clips": 21, "embedded": 10})  # by hand
    output = _run(path, "--dry-run")
    manifest = work / "ds" / "manifest.json"
    assert f"ingest: would run (outputs changed: {manifest})" in output, output
    assert "embed: would run ('ingest' runs before it)" in output, output
    assert "train: would run ('embed' runs before it)" in output, output
    assert "in dataset" not in output, "a stale dataset total is shown as current"

    output = _run(path)
    assert "0 (21 in dataset)" in output, output
    assert "train: running ('embed' runs before it)" in output, output
    assert calls(work / "calls-embed") == calls(work / "calls-train") == 2
    assert (work / "ds" / "embeddings" / "all.txt").read_text() == "21"
    output = _run(path)
    assert output.count("skipped, up to date") == 3, output


def test_records_without_output_fingerprints_adopt_them(tmp_path: Path) -> None:
    path, work = _setup(tmp_path)
    _run(path)
    state = json.loads((work / "state.json").read_text())
    for record in state["stages"].values():
        del record["outputs"]
    (work / "state.json").write_text(json.dumps(state))
    output = _run(path)
    assert output.count("skipped, up to date") == 3, output
    _write_manifest(work / "ds" / "manifest.json", {"clips": 21})
    assert "ingest: would run (outputs changed" in _run(path, "--dry-run")
