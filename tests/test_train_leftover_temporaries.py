"""A training run removes the temporaries that a run killed while writing (a checkpoint, its
history, its weights) left in its folder, when it starts or resumes: a crash leaves only
temporary files, which the next run removes (DESIGN.md §3). It holds the run's lock, so none is
a live writer's; files of the user's, and the scores cache that evaluate writes without the
lock, stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling.runs import RunDir
from modeling.training import train
from schemas.classmap import ClassMap
from tests.training_fixtures import embedding_config, single_label_dataset

LEFT_BY_KILLED_WRITES = (
    "checkpoints/.step-00000002.npz.k3v9_x0q.tmp",  # as mkstemp named them
    "checkpoints/.step-00000004.npz.5f0c3c6ad0b84f7e9d1c2b3a4e5f6071.tmp",
    ".history.jsonl.0a1b2c3d4e5f60718293a4b5c6d7e8f9.tmp",
    ".run.json.abcdefgh.tmp",
    ".tmp-best.weights.h5",
    ".tmp-last.weights.h5",
)
USERS = (
    "checkpoints/.notes.npz.tmp",
    "checkpoints/step-00000002.npz.bak",
    ".notes.txt.0a1b2c3d4e5f60718293a4b5c6d7e8f9.tmp",
    ".history.jsonl.old.tmp",
    "scores/.eval-0123456789abcdef.npz.5f0c3c6ad0b84f7e9d1c2b3a4e5f6071.tmp",
)


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    root = single_label_dataset(tmp_path / "ds", train=16, eval_clips=6).root
    run = tmp_path / "run"
    config = embedding_config(root, task="singlelabel", steps=2, eval_every=1)
    train(config, run, classes=ClassMap.load(root / "classes.csv"))
    return run


def _plant(run: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (run / name).parent.mkdir(exist_ok=True)
        (run / name).write_bytes(b"partial")


@pytest.mark.parametrize("steps", [2, 3], ids=["finished", "extended"])
def test_resume_removes_what_killed_writes_left(trained: Path, steps: int) -> None:
    _plant(trained, LEFT_BY_KILLED_WRITES + USERS)
    config = RunDir(trained).load_config()
    config.steps = steps
    train(config, trained, resume=True)
    assert not [name for name in LEFT_BY_KILLED_WRITES if (trained / name).exists()]
    assert all((trained / name).read_bytes() == b"partial" for name in USERS)
    assert RunDir(trained).trained_steps() == steps
