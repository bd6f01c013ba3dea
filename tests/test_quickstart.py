"""The README's first command: the embedded default job, offline, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ingest_helpers import audiomill, manifest
from workflows.demo import make_demo
from workflows.quickstart_steps import embed_demo, held_out_examples


@pytest.mark.slow
def test_quickstart_runs_the_whole_chain_offline(tmp_path: Path):
    out = tmp_path / "qs"
    proc = audiomill("quickstart", "--out", str(out), "--clips-per-class", "4",
                     "--set", "embedding_steps=60", "--set", "waveform_steps=30",
                     cwd=tmp_path)  # fmt: skip
    text = proc.stdout + proc.stderr
    assert "SEEDED RANDOM" in " ".join(text.split())  # the stand-in weights are announced
    m = manifest(out / "dataset")
    # 4 clips of each of 5 classes (the second of each held out) and 10 mixtures (every 4th held
    # out); the 4 broken files land in the ledger, not the shards.
    assert m["splits"]["train"]["num_clips"] == 15 + 8
    assert m["splits"]["eval"]["num_clips"] == 5 + 2
    assert m["formats"] == ["hdf5", "parquet"]
    assert set(m["embeddings"]["vggish"]) == {"train", "eval"}
    info = json.loads(audiomill("dataset", "info", str(out / "dataset"), "--json").stdout)
    assert info["splits"]["train"]["failed"] == 4
    for run, steps in (("attention", 60), ("small-cnn", 30)):
        summary = json.loads((out / "runs" / run / "summary.json").read_text())
        assert summary["step"] == steps
        metrics = json.loads((out / "evaluation" / run / "metrics.json").read_text())
        assert metrics["num_clips"] == 7 and 0.0 <= metrics["metrics"]["mAP"] <= 1.0
    page = (out / "summary.html").read_text()
    assert "SEEDED RANDOM" in page and "sine_wave_1" in page and "audiomill search" in page
    assert 'href="report/index.html"' in page and 'href="evaluation/small-cnn/report.html"' in page
    reports = sorted((out / "dataset" / "reports" / "validation").rglob("*.html"))
    assert len(reports) > 2  # the segment list's and each shard's clips, all linked
    for report in reports:
        assert f'href="{report.relative_to(out)}"' in page
    assert 'href="runs/attention"' in page and 'href="runs/small-cnn"' in page

    again = audiomill("quickstart", "--out", str(out), "--clips-per-class", "4",
                      "--set", "embedding_steps=60", "--set", "waveform_steps=30",
                      cwd=tmp_path)  # fmt: skip
    assert " ".join((again.stdout + again.stderr).split()).count("skipped") >= 11


def test_held_out_examples_take_eval_clips_of_two_classes_and_a_mixture(tmp_path: Path):
    demo = make_demo(tmp_path / "demo", clips_per_class=3, mixtures=4)
    picked = held_out_examples(str(demo))
    assert [p.name for p in picked] == ["sine_wave_1.flac", "echo_1.wav",
                                        "mix_sine_wave+echo_3.mp3"]  # fmt: skip
    assert all(p.is_file() for p in picked)
    assert held_out_examples(str(demo), count=1) == picked[:1]
    no_eval = tmp_path / "train-only.csv"
    no_eval.write_text("path,labels,split\naudio/echo_0.wav,Echo,train\n")
    with pytest.raises(ValueError, match="no rows in the eval split"):
        held_out_examples(str(no_eval))


def test_embed_demo_wants_both_vggish_files_or_neither(tmp_path: Path):
    with pytest.raises(ValueError, match="both checkpoint and pca_params"):
        embed_demo(str(tmp_path / "ds"), str(tmp_path), checkpoint="m.ckpt")
