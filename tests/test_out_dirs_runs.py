"""The folders train, sweep, evaluate and export write: never a dataset, never among other files.

``--restart`` moves only a run to ``RUN.previous`` and deletes only a run kept there.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeling.runs import RunDir, SetAside, check_out_dir
from schemas.classmap import ClassMap
from tests.training_fixtures import embedding_config, single_label_dataset
from workflows.cli import app


@dataclass(frozen=True)
class Served:
    """A small single-label dataset (``root``) and a run trained on its embeddings (``emb``)."""

    root: Path
    emb: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    from modeling.training import train

    base = tmp_path_factory.mktemp("out_dirs")
    root = base / "ds"
    single_label_dataset(root)
    config = embedding_config(root, task="singlelabel", steps=2, eval_every=2)
    train(config, base / "emb", classes=ClassMap.load(root / "classes.csv"))
    return Served(root, base / "emb")


def _tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (what a refusal must leave as it was)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _dataset_copy(served: Served, path: Path) -> Path:
    shutil.copytree(served.root, path)
    return path


def _fake_run(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "run.json").write_text("{}\n")
    (path / "history.jsonl").write_text("")
    return path


def test_check_out_dir_accepts_new_empty_and_matching_folders(tmp_path: Path) -> None:
    check_out_dir(tmp_path / "new", "train", "run")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_text("")
    for kind in ("run", "sweep", "output"):
        check_out_dir(tmp_path / "empty", "cmd", kind)
    check_out_dir(_fake_run(tmp_path / "run"), "train", "run", restart=True)
    _fake_run(tmp_path / "sweep" / "lr0.001-mixup0" / "all")
    check_out_dir(tmp_path / "sweep", "sweep", "sweep")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    check_out_dir(tmp_path / "other", "evaluate", "output")


DATASET_MANIFEST = '{"schema_version": 1, "splits": {}}'
"""The least of a dataset's manifest.json that makes its folder one."""


@pytest.mark.parametrize("kind", ["run", "sweep", "output"])
def test_check_out_dir_refuses_a_dataset_for_every_kind(tmp_path: Path, kind: str) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text(DATASET_MANIFEST)
    (tmp_path / "ds" / "run.json").write_text("{}")  # even one a bad train already wrote into
    with pytest.raises(FileExistsError, match=r"ds is a dataset \(it has manifest.json\)"):
        check_out_dir(tmp_path / "ds", "cmd", kind)


@pytest.mark.parametrize("kind", ["run", "sweep", "output"])
def test_check_out_dir_refuses_a_folder_inside_a_dataset_for_every_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    dataset = tmp_path / "ds"
    (dataset / "waveforms" / "eval").mkdir(parents=True)
    (dataset / "manifest.json").write_text(DATASET_MANIFEST)
    (tmp_path / "link").symlink_to(dataset / "waveforms")
    monkeypatch.chdir(dataset / "waveforms")
    inside = rf"is inside the dataset {dataset} \(it has manifest.json\): cmd would write"
    for out in (
        dataset / "sub",  # new
        dataset / "waveforms" / "eval",  # there already
        dataset / "a" / "b" / "c",
        Path("new"),  # relative, the working folder inside the dataset
        tmp_path / "link" / "eval",  # through a symbolic link
    ):
        with pytest.raises(FileExistsError, match=inside):
            check_out_dir(out, "cmd", kind)
    assert not (dataset / "sub").exists() and not (dataset / "a").exists()


def test_a_web_apps_manifest_above_out_is_no_dataset(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"name": "my extension", "manifest_version": 3}')
    check_out_dir(tmp_path / "runs" / "att", "cmd", "run")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(FileExistsError, match="is inside the dataset"):
        check_out_dir(tmp_path / "runs" / "att", "cmd", "run")
    assert not Path("new").exists()


def test_check_out_dir_refuses_what_each_kind_would_damage(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other is not empty and not a training run"):
        check_out_dir(other, "train", "run")
    with pytest.raises(FileExistsError, match="other is not empty and not a sweep's folder"):
        check_out_dir(other, "sweep", "sweep")
    run = _fake_run(tmp_path / "run")
    with pytest.raises(FileExistsError, match=r"run is a training run \(it has run.json\)"):
        check_out_dir(run, "export", "output")
    with pytest.raises(FileExistsError, match="not a sweep's folder"):
        check_out_dir(run, "sweep", "sweep")
    (tmp_path / "run.previous").mkdir()
    (tmp_path / "run.previous" / "notes.txt").write_text("mine")
    check_out_dir(run, "train", "run")  # not started over: run.previous stays as it is
    with pytest.raises(FileExistsError, match=r"run.previous is not a training run"):
        check_out_dir(run, "train", "run", restart=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="file is a file, not a folder"):
        check_out_dir(tmp_path / "file", "export", "output")


def test_set_aside_moves_and_deletes_only_runs(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"other is not a training run \(no run.json\)"):
        RunDir(other).set_aside()
    assert (other / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "other.previous").exists()

    dataset = _fake_run(tmp_path / "ds")
    (dataset / "manifest.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"ds is not a training run \(a dataset"):
        RunDir(dataset).set_aside()
    assert (dataset / "manifest.json").exists()

    run = _fake_run(tmp_path / "run")
    kept = tmp_path / "run.previous"
    kept.mkdir()
    (kept / "manifest.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"run.previous is not a training run"):
        RunDir(run).set_aside()
    assert (kept / "manifest.json").exists() and (run / "run.json").exists()
    (kept / "manifest.json").unlink()
    with pytest.raises(FileExistsError, match=r"run.previous is not a training run"):
        RunDir(run).set_aside()
    assert kept.is_dir() and (run / "run.json").exists()

    shutil.rmtree(kept)
    _fake_run(kept)
    assert RunDir(run).set_aside() == SetAside(kept)
    assert not run.exists() and (kept / "run.json").exists()


def _run_of(path: Path, steps: int, trained: int | None) -> Path:
    """A run asked for ``steps`` steps; with ``trained``, its final weights and a summary of that
    step (``trained`` short of ``steps``: a run extended by ``--resume --steps``, unfinished)."""
    RunDir(path).save_config(embedding_config(path, steps=steps, eval_every=1))
    if trained is not None:
        (path / "last.weights.h5").write_text("weights")
        (path / "summary.json").write_text(f'{{"step": {trained}}}')
    return path


@pytest.mark.parametrize(
    ("run_trained", "previous_trained", "deleted"),
    [
        (None, 400, True),  # interrupted, with a finished run kept: the finished run stays
        (303, 400, True),  # an extension of a finished run, interrupted
        (1200, 400, False),
        (1200, None, False),
        (None, None, False),  # neither finished: the newer one is kept
    ],
)
def test_set_aside_keeps_a_finished_previous_over_an_unfinished_run(
    tmp_path: Path, run_trained: int | None, previous_trained: int | None, deleted: bool
) -> None:
    run = _run_of(tmp_path / "att", 1200, run_trained)
    kept = _run_of(tmp_path / "att.previous", 400 if previous_trained else 1200, previous_trained)
    run_files, kept_files = _tree(run), _tree(kept)
    aside = RunDir(run).set_aside()
    assert aside == SetAside(kept, deleted=deleted)
    assert not run.exists()
    assert _tree(kept) == (kept_files if deleted else run_files)
    assert [p.name for p in tmp_path.iterdir()] == ["att.previous"]


def test_set_aside_without_a_previous_run_moves_an_unfinished_one(tmp_path: Path) -> None:
    run = _run_of(tmp_path / "att", 1200, None)
    files = _tree(run)
    assert RunDir(run).set_aside() == SetAside(tmp_path / "att.previous")
    assert _tree(tmp_path / "att.previous") == files and not run.exists()


def test_train_refuses_a_dataset_or_foreign_folder_and_writes_nothing(
    served: Served, tmp_path: Path
) -> None:
    runner = CliRunner()
    copy = _dataset_copy(served, tmp_path / "dscopy")
    before = _tree(copy)
    for extra in ([], ["--restart"], ["--resume"]):
        args = ["train", str(copy), "--out", str(copy), "--steps", "2", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "is a dataset (it has manifest.json)" in result.output
        assert "train would write its files into it" in result.output
    assert _tree(copy) == before
    assert not (tmp_path / "dscopy.previous").exists()

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    args = ["train", str(served.root), "--out", str(other), "--steps", "2", "--restart"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not empty and not a training run" in result.output
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_train_restart_keeps_a_previous_that_is_not_a_run(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "r"
    args = ["train", str(served.root), "--out", str(run), "--steps", "2", "--eval-every", "2"]
    assert runner.invoke(app, args).exit_code == 0
    previous = _dataset_copy(served, tmp_path / "r.previous")
    before, run_before = _tree(previous), _tree(run)
    result = runner.invoke(app, [*args, "--restart"])
    assert result.exit_code == 2, result.output
    assert "r.previous is not a training run (no run.json)" in result.output
    assert _tree(previous) == before and _tree(run) == run_before


def test_sweep_refuses_a_dataset_or_foreign_folder(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    copy = _dataset_copy(served, tmp_path / "dscopy")
    before = _tree(copy)
    result = runner.invoke(app, ["sweep", str(copy), "--out", str(copy), "--steps", "2"])
    assert result.exit_code == 2 and "is a dataset (it has manifest.json)" in result.output
    assert _tree(copy) == before

    sweep = tmp_path / "sweep"
    (sweep / "lr0.001-mixup0" / "all").mkdir(parents=True)
    (sweep / "lr0.001-mixup0" / "all" / "notes.txt").write_text("mine")
    _fake_run(sweep / "lr0.0003-mixup0" / "all")
    args = ["sweep", str(served.root), "--out", str(sweep), "--lr", "3e-4,1e-3", "--steps", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "all is not empty and not a training run" in result.output
    assert [p.name for p in (sweep / "lr0.001-mixup0" / "all").iterdir()] == ["notes.txt"]
    kept = sweep / "lr0.0003-mixup0" / "all"
    assert {p.name for p in kept.iterdir()} == {"history.jsonl", "run.json"}


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_evaluate_and_export_refuse_a_dataset_or_a_run(
    served: Served, tmp_path: Path, command: str
) -> None:
    runner = CliRunner()
    copy = _dataset_copy(served, tmp_path / "dscopy")
    run = tmp_path / "runcopy"
    shutil.copytree(served.emb, run)
    extra = [str(served.root)] if command == "evaluate" else []
    for target, reason in (
        (copy, "is a dataset (it has manifest.json)"),
        (run, "is a training run"),
    ):
        before = _tree(target)
        result = runner.invoke(app, [command, str(served.emb), *extra, "--out", str(target)])
        assert result.exit_code == 2, result.output
        assert f"{target.name} {reason}" in " ".join(result.output.split())
        assert _tree(target) == before
    inside = run / command
    result = runner.invoke(app, [command, str(served.emb), *extra, "--out", str(inside)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("command", "inside"),
    [
        ("train", "sub"),
        ("sweep", "sub"),
        ("evaluate", "waveforms/eval"),
        ("export", "exported"),
    ],
)
def test_every_command_refuses_an_out_inside_a_dataset_and_writes_nothing(
    served: Served, tmp_path: Path, command: str, inside: str
) -> None:
    copy = _dataset_copy(served, tmp_path / "dscopy")
    before = _tree(copy)
    out = copy / inside
    existed = out.exists()
    args = {
        "train": ["train", str(copy), "--steps", "2", "--eval-every", "2"],
        "sweep": ["sweep", str(copy), "--steps", "2"],
        "evaluate": ["evaluate", str(served.emb), str(copy), "--split", "eval"],
        "export": ["export", str(served.emb)],
    }[command]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (
        f"error: --out {out} is inside the dataset {copy} (it has manifest.json): {command} "
        "would write its files into it; choose a folder outside the dataset"
    )
    assert _tree(copy) == before and out.exists() == existed


def test_export_refuses_a_folder_with_another_saved_model(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    other = tmp_path / "other"
    (other / "saved_model").mkdir(parents=True)
    (other / "saved_model" / "mine.pb").write_text("mine")
    result = runner.invoke(app, ["export", str(served.emb), "--out", str(other)])
    assert result.exit_code == 2 and "holds a saved_model of no earlier export" in result.output
    assert (other / "saved_model" / "mine.pb").read_text() == "mine"
    out = tmp_path / "exp"
    for _ in range(2):  # an earlier export is replaced
        result = runner.invoke(app, ["export", str(served.emb), "--out", str(out)])
        assert result.exit_code == 0, result.output
