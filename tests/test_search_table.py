"""``search`` and ``predict`` tables keep clip ids, ranks and scores whole on a narrow console."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import modeling.inference
import workflows.cli_inference
from modeling.inference import Prediction, SearchHit, SearchResult
from schemas.classmap import ClassInfo, ClassMap
from workflows.cli import app

IDS = [f"work_shared_data_fsdd_recordings_8_jackson_{i}.wav" for i in (12, 3)]
CLASSES = ClassMap.from_names(["Vehicle horn, car horn, honking", "eight"])


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the commands print on stdout, a console no terminal, of ``width`` columns."""
    text = io.StringIO()
    monkeypatch.setattr(workflows.cli_inference, "_load", lambda run, weights: SimpleNamespace(
        classes=CLASSES, config=SimpleNamespace(input="embeddings")))  # fmt: skip
    monkeypatch.setattr(workflows.cli_inference, "out", Console(file=text, width=48))
    return text


def test_search_keeps_every_clip_id_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, narrow: io.StringIO
):
    hits = [SearchHit(rank, clip, 0.9876 / rank, "eight", "/m/8", ["eight", "nine"])
            for rank, clip in enumerate(IDS, 1)]  # fmt: skip
    result = SearchResult("eight", "test", [ClassInfo(1, "/m/8", "eight")], hits, 300, True,
                          tmp_path / "scores")  # fmt: skip
    monkeypatch.setattr(modeling.inference, "search", lambda *args, **kwargs: result)
    run = CliRunner().invoke(app, ["search", str(tmp_path), str(tmp_path), "eight"])
    assert run.exit_code == 0, run.output
    printed = narrow.getvalue()
    assert "…" not in printed
    for clip in IDS:
        assert clip in printed
    assert "0.9876" in printed and "0.4938" in printed


def test_predict_keeps_mids_and_scores_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, narrow: io.StringIO
):
    scores = np.array([0.123456, 0.9], np.float32)
    found = [Prediction(IDS[0], "clip", scores, labels=[1], split="test")]
    monkeypatch.setattr(modeling.inference, "predict_clips", lambda *args, **kwargs: found)
    monkeypatch.setattr(workflows.cli_inference, "out", Console(file=narrow, width=20))
    run = CliRunner().invoke(app, ["predict", str(tmp_path), IDS[0], "--dataset", str(tmp_path)])
    assert run.exit_code == 0, run.output
    printed = narrow.getvalue()
    assert "…" not in printed
    assert IDS[0] in printed and "0.9000" in printed and "0.1235" in printed
    assert all(mid in printed for mid in CLASSES.mids)


def test_search_separates_class_names_holding_commas_with_semicolons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["Dog", "Whimper (dog)", "Canidae, dogs, wolves"]
    classes = ClassMap.from_names(names)
    text = io.StringIO()
    monkeypatch.setattr(workflows.cli_inference, "_load", lambda run, weights: SimpleNamespace(
        classes=classes, config=SimpleNamespace(input="embeddings")))  # fmt: skip
    monkeypatch.setattr(workflows.cli_inference, "out", Console(file=text, width=200))
    hits = [SearchHit(1, IDS[0], 0.5, "Dog", "/m/0", names)]
    result = SearchResult("dog", "eval", list(classes), hits, 3, False, tmp_path / "scores")
    monkeypatch.setattr(modeling.inference, "search", lambda *args, **kwargs: result)
    run = CliRunner().invoke(app, ["search", str(tmp_path), str(tmp_path), "dog"])
    assert run.exit_code == 0, run.output
    assert "Dog; Whimper (dog); Canidae, dogs, wolves │" in text.getvalue()
    assert run.output.splitlines()[-2:] == [
        "matched classes: Dog; Whimper (dog); Canidae, dogs, wolves",
        f"scores cached for next time in {tmp_path / 'scores'}",
    ]


def test_predict_separates_a_clips_labels_with_semicolons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, narrow: io.StringIO
) -> None:
    found = [Prediction(IDS[0], "clip", np.array([0.1, 0.9], np.float32), labels=[0, 1], split="t")]
    monkeypatch.setattr(modeling.inference, "predict_clips", lambda *args, **kwargs: found)
    monkeypatch.setattr(workflows.cli_inference, "out", Console(file=narrow, width=200))
    run = CliRunner().invoke(app, ["predict", str(tmp_path), IDS[0], "--dataset", str(tmp_path)])
    assert run.exit_code == 0, run.output
    assert "labels: Vehicle horn, car horn, honking; eight" in narrow.getvalue()
