"""Evaluation of trained runs: metrics equal to the saved scores', report, TTA, CLI."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve as sk_precision_recall_curve
from typer.testing import CliRunner

from modeling import evaluation
from modeling.evaluation import (
    MAX_TTA,
    evaluate_run,
    load_run,
    open_split,
    score_split,
    tta_shifts,
)
from modeling.evaluation_report import precision_recall_curve
from modeling.readers import to_float
from modeling.scoring import task_metrics
from tests.inference_fixtures import Served, served_runs
from workflows.cli import app

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Served:
    return served_runs(tmp_path_factory, worker_id)


def test_evaluate_writes_metrics_equal_to_its_saved_scores_and_a_report(
    served: Served, tmp_path: Path
) -> None:
    result = evaluate_run(served.emb, served.root, "eval", out_dir=tmp_path / "ev")
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    with np.load(tmp_path / "ev" / "scores.npz") as npz:
        ids, scores, targets = npz["clip_ids"].tolist(), npz["scores"], npz["targets"]
    assert saved["metrics"] == task_metrics("singlelabel", targets, scores)
    assert saved["metrics"] == result["metrics"]
    assert len(ids) == len(set(ids)) == saved["num_clips"] == 24
    assert targets.argmax(axis=1).tolist() == [i % 3 for i in range(24)]
    assert saved["metrics"]["accuracy"] >= 0.95, "the separable run classifies eval clips"
    assert saved["split"] == "eval" and saved["tta"] == 0 and saved["weights"] == "best.weights.h5"
    assert np.asarray(saved["metrics"]["confusion_matrix"]).sum() == 24

    with open(tmp_path / "ev" / "per_class.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["display_name"] for r in rows] == ["sound 0", "sound 1", "sound 2"]
    assert [int(r["positives"]) for r in rows] == [8, 8, 8]
    assert [float(r["ap"]) for r in rows] == pytest.approx(saved["metrics"]["ap_per_class"])

    page = (tmp_path / "ev" / "report.html").read_text()
    images = PNG.findall(page)
    assert len(images) == 4, "PR curves, AP vs frequency, training curves, confusion matrix"
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)
    for heading in ("Precision-recall", "AP against class frequency", "Training curves"):
        assert heading in page
    assert "Confusion matrix" in page and "sound 2" in page


def test_tta_averages_circular_shifts(served: Served, tmp_path: Path) -> None:
    assert tta_shifts("waveform", 800, 0) == tta_shifts("waveform", 800, 1) == [0]
    assert tta_shifts("waveform", 800, 4) == [0, 200, 400, 600]
    assert tta_shifts("embedding", 10, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"clips have 10 frames$"):
        tta_shifts("embedding", 10, 11)
    with pytest.raises(ValueError, match=r"clips have 1 frame$"):
        tta_shifts("embedding", 1, 2)
    with pytest.raises(ValueError, match=">= 0"):
        tta_shifts("waveform", 800, -1)

    wave = load_run(served.wave)
    reader = open_split(wave, served.root, "eval")
    plain = score_split(wave.model, reader).scores
    shifts = tta_shifts("waveform", 800, 4)
    tta = score_split(wave.model, reader, shifts=shifts).scores
    x = to_float(reader.read_all()[0])
    want = np.mean([wave.model.predict(np.roll(x, s, axis=1), verbose=0) for s in shifts], axis=0)
    np.testing.assert_allclose(tta, want, atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-4, "the CNN sees where in the clip a sound is"

    # Attention pooling ignores frame order, so frame shifts leave its scores as they were.
    emb = load_run(served.emb)
    reader = open_split(emb, served.root, "eval")
    np.testing.assert_allclose(
        score_split(emb.model, reader, shifts=tta_shifts("embedding", 10, 3)).scores,
        score_split(emb.model, reader).scores,
        atol=1e-5,
    )
    result = evaluate_run(served.wave, served.root, "eval", tta=2, out_dir=tmp_path)
    assert result["tta"] == 2 and result["tta_shifts"] == [0, 400]
    assert json.loads((tmp_path / "metrics.json").read_text())["tta"] == 2


def test_tta_refuses_repeated_shifts_and_more_variants_than_its_cap(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(set(tta_shifts("waveform", MAX_TTA, MAX_TTA))) == MAX_TTA
    with pytest.raises(ValueError, match=r"--tta 5 needs 5 distinct shifts but clips have 4 sam"):
        tta_shifts("waveform", 4, 5)
    with pytest.raises(ValueError, match=rf"--tta {MAX_TTA + 1}: at most {MAX_TTA} variants"):
        tta_shifts("waveform", 10**6, MAX_TTA + 1)

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused --tta must not build the model")

    monkeypatch.setattr(evaluation, "load_trained_model", no_model)
    with pytest.raises(ValueError, match=rf"--tta 100000: at most {MAX_TTA} variants"):
        evaluate_run(served.wave, served.root, "eval", tta=100000, out_dir=tmp_path / "a")
    with pytest.raises(ValueError, match=rf"--tta {MAX_TTA + 1}: at most {MAX_TTA} variants"):
        evaluate_run(served.emb, served.root, "eval", tta=MAX_TTA + 1, out_dir=tmp_path / "b")
    args = ["evaluate", str(served.wave), str(served.root), "--out", str(tmp_path / "c")]
    refused = CliRunner().invoke(app, [*args, "--tta", "100000"])
    assert refused.exit_code == 2 and f"at most {MAX_TTA} variants" in refused.output
    assert not (tmp_path / "c").exists()


def test_precision_recall_curve_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200), 1)  # many ties
    precision, recall = precision_recall_curve(y, s)
    want_p, want_r, _ = sk_precision_recall_curve(y, s)
    np.testing.assert_allclose(precision, want_p[:-1][::-1])
    np.testing.assert_allclose(recall, want_r[:-1][::-1])
    assert precision_recall_curve(np.zeros(3, bool), np.ones(3))[0].size == 0


def test_evaluate_cli(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ev"
    args = ["evaluate", str(served.emb), str(served.root), "--out", str(out), "--batch-size", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "sound 1" in result.stdout
    assert "report.html" in result.stdout
    assert {p.name for p in out.iterdir()} == {
        "metrics.json",
        "per_class.csv",
        "scores.npz",
        "report.html",
    }
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "nope"), str(served.root), *args[3:]])
    assert missing.exit_code == 2 and "not a training run" in missing.output
    split = runner.invoke(app, [*args, "--split", "test"])
    assert split.exit_code == 2
    assert "no committed shards" in split.output and "[eval, train]" in split.output
    bad = runner.invoke(app, [*args, "--tta", "-1"])
    assert bad.exit_code == 2 and "--tta must be >= 0" in bad.output
