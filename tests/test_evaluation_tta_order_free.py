"""evaluate --tta on models blind to frame order: one warning, scored once, recorded as no TTA."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from modeling import evaluation
from modeling.evaluation import MAX_TTA, ORDER_FREE_MODELS, evaluate_run
from modeling.models import build_model, model_names
from tests.inference_fixtures import Served, served_runs
from workflows.cli import app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


@pytest.fixture
def scored_with(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The shifts of every :func:`modeling.evaluation.with_tta` call, in order."""
    calls: list[list[int]] = []
    with_tta = evaluation.with_tta

    def spy(model: object, shifts: list[int]) -> object:
        calls.append(list(shifts))
        return with_tta(model, shifts)

    monkeypatch.setattr(evaluation, "with_tta", spy)
    return calls


def test_order_free_models_are_registered_embedding_models_blind_to_frame_order() -> None:
    embedding_models = {name for name, kind in model_names() if kind == "embedding"}
    assert ORDER_FREE_MODELS.issubset(embedding_models)
    x = np.random.default_rng(0).integers(0, 256, (2, 10, 128)).astype("float32")
    for name in sorted(ORDER_FREE_MODELS):
        model = build_model(name, "embedding", 3, hidden=16, input_dtype="float32")
        plain = model.predict(x, verbose=0)
        shifted = model.predict(np.roll(x, 3, axis=1), verbose=0)
        np.testing.assert_allclose(shifted, plain, atol=1e-5, err_msg=name)


def test_tta_on_an_order_free_run_warns_and_scores_once(
    served: Served, tmp_path: Path, scored_with: list[list[int]]
) -> None:
    warnings: list[str] = []
    result = evaluate_run(
        served.emb,
        served.root,
        "eval",
        tta=2,
        which="last",  # best weights scored on their eval split warn of that too
        out_dir=tmp_path / "ev",
        warn=warnings.append,
    )
    assert warnings == [
        "--tta 2 changes nothing for model multi_level_attention "
        "(it pools its frames regardless of their order): scored once"
    ]
    assert scored_with == [[0]]
    assert result["tta"] == 0 and result["tta_shifts"] == [0]
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["tta"] == 0 and saved["tta_shifts"] == [0]
    assert "test-time augmentation</td><td>none" in (tmp_path / "ev" / "report.html").read_text()

    scored_with.clear()
    result = evaluate_run(served.wave, served.root, "eval", tta=2, out_dir=tmp_path / "wave")
    assert scored_with == [[0, 400]] and result["tta"] == 2


def test_evaluate_cli_tta_warns_for_an_embedding_run_only(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()

    def evaluate(run: Path, out: str) -> object:
        args = ["evaluate", str(run), str(served.root), "--out", str(tmp_path / out)]
        args += ["--weights", "last"]  # no warning of best weights scored on their eval split
        result = runner.invoke(app, [*args, "--tta", "2"])
        assert result.exit_code == 0, result.output
        return result

    emb = evaluate(served.emb, "emb")
    assert "warning: --tta 2 changes nothing for model multi_level_attention" in emb.output
    assert re.search(r"test-time augmentation\s*│\s*none", emb.stdout)
    wave = evaluate(served.wave, "wave")
    assert "warning" not in wave.output and "2 variants" in wave.stdout


def test_tta_beyond_the_frames_of_an_order_free_run_warns_and_scores_once(
    served: Served, scored_with: list[list[int]]
) -> None:
    warnings: list[str] = []
    result = evaluate_run(
        served.emb, served.root, "eval", tta=11, which="last", warn=warnings.append
    )
    assert warnings == [
        "--tta 11 changes nothing for model multi_level_attention "
        "(it pools its frames regardless of their order): scored once"
    ]
    assert scored_with == [[0]] and result["tta"] == 0
    with pytest.raises(ValueError, match=rf"--tta {MAX_TTA + 1}: at most {MAX_TTA} variants"):
        evaluate_run(served.emb, served.root, "eval", tta=MAX_TTA + 1)
    with pytest.raises(ValueError, match="--tta must be >= 0"):
        evaluate_run(served.emb, served.root, "eval", tta=-1)
