"""Python stages for the workflow-runner tests: each notes its calls in a counter file."""

from __future__ import annotations

from pathlib import Path

from tests.dataset_builders import make_dataset
from workflows.demo import make_demo


def count_call(counter: str | Path) -> int:
    """Append a line to ``counter`` and return how many calls it now records."""
    path = Path(counter)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write("call\n")
    return calls(path)


def calls(counter: str | Path) -> int:
    """How many calls ``counter`` records (0 when it does not exist)."""
    path = Path(counter)
    return len(path.read_text().splitlines()) if path.exists() else 0


def demo_audio(out_dir: str, counter: str, clips_per_class: int = 1) -> dict:
    """Short demo clips and their manifest; reports the number of clips."""
    count_call(counter)
    make_demo(out_dir, clips_per_class=clips_per_class, seconds=0.5)
    return {"clips": 5 * clips_per_class, "failures": 0, "manifest": f"{out_dir}/manifest.csv"}


def small_dataset(root: str, counter: str, clips: int = 3) -> dict:
    """A valid dataset of ``clips`` training clips, written without ingest."""
    count_call(counter)
    make_dataset(Path(root), {"train": [[i % 2] for i in range(clips)]}, num_classes=2,
                 failures={"train": [("unavailable", [0])]})  # fmt: skip
    return {"clips": clips, "failures": {"unavailable": 1}}


def explode(counter: str, message: str = "boom") -> None:
    """Fail like a broken stage would."""
    count_call(counter)
    raise RuntimeError(message)
