"""A workflow train stage with no record of its run adopts the run its --out holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling.runs import RunDir
from tests.test_workflow_train import _run, _workflow
from tests.training_fixtures import single_label_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wf-adopt") / "ds"
    single_label_dataset(root, train=16, eval_clips=6)
    return root


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def _rename_train_stage(path: Path) -> None:
    text = path.read_text().replace("name: train", "name: fit")
    path.write_text(text.replace("needs: [train]", "needs: [fit]"))


@pytest.mark.parametrize("lost", ["state file", "stage renamed"])
def test_stage_without_a_record_keeps_a_run_trained_with_its_settings(
    dataset: Path, tmp_path: Path, lost: str
) -> None:
    path, work = _workflow(tmp_path, dataset, resume=False)
    _run(path)
    files = _files(work / "run")
    if lost == "state file":
        (work / "state.json").unlink()
    else:
        _rename_train_stage(path)
    output = _run(path)
    assert "already trained 2 steps; nothing to do" in output
    assert _files(work / "run") == files and not (work / "run.previous").exists()


def test_stage_without_a_record_starts_a_run_with_other_settings_over(
    dataset: Path, tmp_path: Path
) -> None:
    path, work = _workflow(tmp_path, dataset, resume=False)
    _run(path)
    (work / "state.json").unlink()
    output = _run(path, "--set", "steps=3")
    assert "kept as" in output
    assert RunDir(work / "run").load_summary()["step"] == 3
    assert RunDir(work / "run.previous").load_summary()["step"] == 2


def test_stage_without_a_record_resumes_an_unfinished_run_with_its_settings(
    dataset: Path, tmp_path: Path
) -> None:
    path, work = _workflow(tmp_path, dataset, resume=False)
    _run(path)
    (work / "run" / "summary.json").unlink()  # as a run stopped after its last checkpoint
    (work / "state.json").unlink()
    output = _run(path)
    assert "resumed from 2" in output and not (work / "run.previous").exists()
    assert RunDir(work / "run").finished
