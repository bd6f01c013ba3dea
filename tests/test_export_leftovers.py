"""An export removes the SavedModel folders that exports killed while writing left in its
``--out`` (``.saved_model.XXXX/``, each as large as the model): a crash leaves only temporary
files, which the next run removes (DESIGN.md §3). One another export is writing stays: its
writer holds a lock beside it (:func:`modeling.process_lock.process_lock`), which dies with
it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modeling.export import export_run
from modeling.training import train
from schemas.classmap import ClassMap
from tests.training_fixtures import embedding_config, single_label_dataset

LIVE = "5f0c3c6ad0b84f7e9d1c2b3a4e5f6071"
HOLD = """
import sys, time
from modeling.process_lock import process_lock
with process_lock(sys.argv[1], "busy"):
    print("held", flush=True)
    time.sleep(600)
"""
EXPORTED = ["classes.csv", "export.json", "saved_model"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("export_leftovers")
    root = single_label_dataset(base / "ds", train=16, eval_clips=6).root
    config = embedding_config(root, task="singlelabel", steps=1, eval_every=1)
    train(config, base / "run", classes=ClassMap.load(root / "classes.csv"))
    return base / "run"


def _killed_export(out: Path, key: str, lock_left: bool = True) -> None:
    """What an export killed while writing its SavedModel leaves in ``out``."""
    (out / f".saved_model.{key}" / "saved_model" / "variables").mkdir(parents=True)
    (out / f".saved_model.{key}" / "saved_model" / "saved_model.pb").write_bytes(b"partial")
    if lock_left:
        (out / f".saved_model.{key}.lock").touch()


def _visible_and_hidden(out: Path) -> list[str]:
    return sorted(os.listdir(out))


def test_export_removes_what_killed_exports_left(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    _killed_export(out, "k3v9_x0q", lock_left=False)  # as mkdtemp named them
    _killed_export(out, "0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    (out / ".saved_model.00112233445566778899aabbccddeeff.lock").touch()  # killed before mkdir
    mine = [".saved_model.backup", "notes"]
    for name in mine:
        (out / name).mkdir()
    export_run(run, out)
    assert _visible_and_hidden(out) == sorted(EXPORTED + mine)
    export_run(run, out)
    assert _visible_and_hidden(out) == sorted(EXPORTED + mine)


def test_export_leaves_the_folder_another_export_is_writing(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    _killed_export(out, LIVE, lock_left=False)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out / f".saved_model.{LIVE}.lock")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        export_run(run, out)
        assert (out / f".saved_model.{LIVE}" / "saved_model" / "saved_model.pb").is_file()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    export_run(run, out)
    assert _visible_and_hidden(out) == EXPORTED
